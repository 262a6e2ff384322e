// sim run: measure and unpack in the foreground (so errors come back directly), then fork a
// daemonized supervisor that owns the NSM and the enclave and reports readiness on a pipe.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cgroups.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/eif/describe.h"
#include "shield_nitro/eif/reader.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/sim/image.h"
#include "shield_nitro/sim/launcher.h"
#include "shield_nitro/sim/pcrs.h"
#include "shield_nitro/sim/simulator.h"
#include "state.h"

namespace shield_nitro::sim {

namespace {

using Json = nlohmann::ordered_json;

// Everything decided before the fork.
struct Prepared {
  RunOptions opts;
  StatePaths paths;
  EnclaveImage image;
  eif::Measurements measurements;
  std::string name, enclave_id;
  uint64_t memory_mib = 0;
  unsigned cpus = 0;
};

std::string default_name(const std::string& eif_path) {
  std::string base = std::filesystem::path(eif_path).filename().string();
  return base.ends_with(".eif") ? base.substr(0, base.size() - 4) : base;
}

std::string make_enclave_id(const std::string& instance_id) {
  std::string inst = instance_id.empty() ? "i-00000000000000000" : instance_id;
  return inst + "-enc" + hex_encode(os_random().bytes(8));
}

void validate(const RunOptions& o) {
  if (o.cid < 4 || o.cid == 0xFFFFFFFFu) throw Error(Errc::kUsage, "--cid must be between 4 and 4294967294 (3 is the parent)");
  if (o.state_dir.empty()) throw Error(Errc::kUsage, "--state is required");
  for (const std::string* s : {&o.role_arn, &o.instance_id, &o.name})
    if (s->find_first_of("\n\r") != std::string::npos) throw Error(Errc::kUsage, "identifiers must be one line");
}

void refuse_running(const StatePaths& p) {
  if (!std::filesystem::is_directory(p.dir)) return;
  auto rec = load_record(p);
  if (rec && rec->value("state", "") == "RUNNING" && supervisor_alive(*rec))
    throw Error(Errc::kUsage, "an enclave is already running in " + p.dir + " (sim terminate --state " + p.dir + ")");
}

// A fresh state folder: clears what a previous run left.
void reset_state(const StatePaths& p) {
  make_dirs(p.dir, 0700);
  if (auto rec = load_record(p)) remove_leftovers(p, *rec);
  std::error_code ec;
  for (const auto& f : {p.record, p.enclave_json, p.console, p.supervisor_log}) std::filesystem::remove(f, ec);
  std::filesystem::remove_all(p.image, ec);
  make_dirs(p.vsock, 0755);
  make_dirs(p.nsm, 0700);
}

std::string mib_text(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// nitro-cli refuses an enclave with less memory than 4 times its EIF's size (the image is
// loaded into, and unpacked in, enclave memory): the same floor, before anything starts.
constexpr uint64_t kMemoryPerEifByte = 4;

void check_memory(const Prepared& p) {
  std::error_code ec;
  uint64_t eif_bytes = std::filesystem::file_size(p.opts.eif_path, ec);
  if (ec) throw Error(Errc::kIo, "cannot size " + p.opts.eif_path + ": " + ec.message());
  uint64_t need_mib = (eif_bytes * kMemoryPerEifByte + (1 << 20) - 1) >> 20;
  if (p.memory_mib >= need_mib) return;
  std::string asked = p.opts.memory_mib ? "--memory " + std::to_string(p.memory_mib) + " MiB"
                                        : "the EIF's default memory (" + std::to_string(p.memory_mib) + " MiB)";
  throw Error(Errc::kUsage, asked + " is too small for " + p.opts.eif_path + " (" + mib_text(eif_bytes) +
                                "): an enclave needs at least 4 times its EIF's size, " + std::to_string(need_mib) +
                                " MiB (as nitro-cli)");
}

// Validates and measures; touches nothing on disk.
Prepared prepare(const RunOptions& o) {
  validate(o);
  Prepared p{o, StatePaths(std::filesystem::absolute(o.state_dir).string()), {}, {}, {}, {}, 0, 0};
  auto reader = eif::EifReader::open(o.eif_path);
  p.measurements = reader.scan().measurements;
  p.name = o.name.empty() ? default_name(o.eif_path) : o.name;
  p.enclave_id = make_enclave_id(o.instance_id);
  p.memory_mib = o.memory_mib ? o.memory_mib : reader.header().default_mem >> 20;
  size_t avail = available_cpus().size();
  p.cpus = o.cpus ? o.cpus : static_cast<unsigned>(std::min<uint64_t>(reader.header().default_cpus, avail));
  check_cpu_count(p.cpus);
  check_memory(p);
  // The NSM's unix socket lives in the folder: a path too long for it would only fail in the
  // supervisor, after unpacking.
  if (p.paths.nsm_socket.size() >= sizeof(sockaddr_un{}.sun_path))
    throw Error(Errc::kUsage, "--state " + p.paths.dir + " is too long: the NSM socket " + p.paths.nsm_socket +
                                  " must fit in " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
  return p;
}

// Removes what a failed run made in the state folder: the unpacked image, the files of this
// run, and the folders it created (all of them when the state folder itself is new). The NSM
// chain of a folder used before is kept, so a verifier trusting its root.pem keeps working.
class UndoOnFailure {
 public:
  explicit UndoOnFailure(const StatePaths& p)
      : p_(p),
        had_dir_(std::filesystem::exists(p.dir)),
        had_vsock_(std::filesystem::exists(p.vsock)),
        had_nsm_(std::filesystem::exists(p.nsm)) {}
  ~UndoOnFailure() {
    if (done_) return;
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!had_dir_) {
      fs::remove_all(p_.dir, ec);
      return;
    }
    fs::remove_all(p_.image, ec);
    for (const auto& f : {p_.record, p_.enclave_json, p_.console, p_.supervisor_log, p_.nsm_socket}) fs::remove(f, ec);
    if (!had_vsock_) fs::remove_all(p_.vsock, ec);
    if (!had_nsm_) fs::remove_all(p_.nsm, ec);
  }
  UndoOnFailure(const UndoOnFailure&) = delete;
  UndoOnFailure& operator=(const UndoOnFailure&) = delete;
  void dismiss() { done_ = true; }

 private:
  const StatePaths& p_;
  bool had_dir_, had_vsock_, had_nsm_;
  bool done_ = false;
};

std::vector<std::string> enclave_env(const Prepared& p) {
  std::vector<std::string> ours = {std::string("SHIELD_NITRO_NSM=sim:") + kNsmDirInside,
                                   std::string("SHIELD_NITRO_VSOCK_DIR=") + kVsockDirInside,
                                   "SHIELD_NITRO_VSOCK_CID=" + std::to_string(p.opts.cid)};
  std::vector<std::string> env;
  for (const auto& e : p.image.env) {
    std::string key = e.substr(0, e.find('=') + 1);
    bool overridden = false;
    for (const auto& o : ours) overridden = overridden || o.starts_with(key);
    if (!overridden) env.push_back(e);
  }
  env.insert(env.end(), ours.begin(), ours.end());
  return env;
}

EnclaveSpec enclave_spec(const Prepared& p) {
  EnclaveSpec spec;
  spec.rootfs = p.image.rootfs;
  spec.argv = p.image.cmd;
  spec.env = enclave_env(p);
  spec.console_path = p.paths.console;
  spec.binds = {{p.paths.vsock, kVsockDirInside, false},
                {p.paths.nsm_socket, std::string(kNsmDirInside) + "/nsm.sock", true}};
  spec.memory_mib = p.memory_mib;
  spec.cpus = p.cpus;
  spec.name = "enclave";
  return spec;
}

nsm::BootPcrs boot_pcrs(const Prepared& p) {
  PcrInputs in{p.measurements, p.opts.role_arn, p.opts.instance_id, p.opts.debug_mode};
  nsm::BootPcrs boot;
  boot.debug = p.opts.debug_mode;
  for (auto& [i, v] : enclave_pcrs(in)) boot.values[static_cast<uint16_t>(i)] = v;
  return boot;
}

Json run_json(const Prepared& p, pid_t supervisor, const AppliedLimits& limits) {
  Json j;
  j["EnclaveName"] = p.name;
  j["EnclaveID"] = p.enclave_id;
  j["ProcessID"] = supervisor;
  j["EnclaveCID"] = p.opts.cid;
  j["NumberOfCPUs"] = limits.cpu_ids.size();
  j["CPUIDs"] = limits.cpu_ids;
  j["MemoryMiB"] = p.memory_mib;
  return j;
}

Json initial_record(const Prepared& p, const EnclaveProcess& enclave) {
  ProcessId self = ProcessId::self();
  Json rec;
  rec["run"] = run_json(p, self.pid, enclave.limits());
  rec["state"] = "RUNNING";
  rec["flags"] = p.opts.debug_mode ? "DEBUG_MODE" : "NONE";
  rec["measurements"] = eif::measurements_json(p.measurements, p.opts.hash_label);
  rec["supervisor"] = {{"pid", self.pid}, {"start", self.start}};
  rec["enclave_pid"] = enclave.pid();
  rec["eif"] = std::filesystem::absolute(p.opts.eif_path).string();
  rec["limits"] = {{"memory", enclave.limits().memory}, {"cpu", enclave.limits().cpu},
                   {"cgroups", enclave.limits().cgroup_dirs}};
  return rec;
}

// The status line the supervisor sends to the waiting CLI: "ok" or "<errc>\t<message>".
// Sent once: the descriptor is closed after, so the CLI sees the end of the line.
void report(UniqueFd& fd, const std::string& line) {
  if (!fd) return;
  (void)!::write(fd.get(), line.data(), line.size());
  fd.reset();
}

void redirect_std_streams(const StatePaths& paths) {
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  UniqueFd log_fd(::open(paths.supervisor_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (null_fd) {
    ::dup2(null_fd.get(), 0);
    ::dup2(null_fd.get(), 1);
  }
  if (log_fd) ::dup2(log_fd.get(), 2);
}

// Blocks the signals the supervisor waits for (before any thread starts, so all inherit it).
sigset_t supervisor_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Until the enclave exits by itself or a termination signal arrives (then `requested`).
void wait_for_end(EnclaveProcess& enclave, const sigset_t& set, bool& requested) {
  for (;;) {
    int status = 0;
    if (enclave.try_wait(status)) return;
    siginfo_t info;
    struct timespec tick{1, 0};
    int sig = ::sigtimedwait(&set, &info, &tick);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      log_info("terminating the enclave (signal " + std::to_string(sig) + ")");
      requested = true;
      enclave.kill();
      enclave.wait();
      return;
    }
  }
}

// How the enclave ended, as describe shows it ("Ended").
Json ending(const EnclaveProcess& enclave, bool requested, uint64_t memory_mib) {
  if (requested && !enclave.command_reported()) return {{"By", "terminate"}, {"Text", "stopped by sim terminate"}};
  int status = enclave.command_status();
  if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    return {{"By", "exit"}, {"ExitCode", code}, {"Text", "the command exited with status " + std::to_string(code)}};
  }
  int sig = WTERMSIG(status);
  const char* abbrev = ::sigabbrev_np(sig);
  std::string name = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
  // The OOM killer's signal is SIGKILL; the cgroup's counter says whether it sent it.
  bool oom = sig == SIGKILL && enclave.oom_kills() > 0;
  std::string text = "the command was killed by " + name;
  if (oom) text += ": out of memory (the enclave's limit is " + std::to_string(memory_mib) + " MiB)";
  return {{"By", "signal"}, {"Signal", name}, {"SignalNumber", sig}, {"OomKilled", oom}, {"Text", text}};
}

[[noreturn]] void supervise(const Prepared& p, UniqueFd status_fd) {
  ::setsid();
  redirect_std_streams(p.paths);
  set_log_component("sim-supervisor");
  sigset_t set = supervisor_signals();
  int code = 0;
  Json rec;
  try {
    auto nsm = nsm::SimulatedNsm::create(p.paths.nsm, boot_pcrs(p));
    auto server = nsm->serve(p.paths.nsm_socket);
    EnclaveProcess enclave = launch_enclave(enclave_spec(p));
    rec = initial_record(p, enclave);
    save_record(p.paths, rec);
    write_file_atomic(p.paths.enclave_json, as_bytes(rec["run"].dump(2) + "\n"), 0644);
    log_info("enclave " + p.enclave_id + " running; memory: " + enclave.limits().memory + "; cpu: " + enclave.limits().cpu);
    report(status_fd, "ok");
    bool requested = false;
    wait_for_end(enclave, set, requested);
    rec["ended"] = ending(enclave, requested, p.memory_mib);
    log_info("enclave " + p.enclave_id + " ended: " + rec["ended"]["Text"].get<std::string>());
    server->stop();
  } catch (const Error& e) {
    log_error(e.what());
    report(status_fd, std::string(errc_name(e.code())) + "\t" + e.what());
    code = 1;
  } catch (const std::exception& e) {
    log_error(e.what());
    report(status_fd, std::string("internal\t") + e.what());
    code = 1;
  }
  if (!rec.is_null()) {
    remove_leftovers(p.paths, rec);
    rec["state"] = "TERMINATED";
    save_record(p.paths, rec);
  }
  ::_exit(code);
}

// Waits for the supervisor's status line; an EOF without one means it died.
void await_supervisor(UniqueFd fd) {
  std::string line;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  fd.reset();
  if (line == "ok") return;
  size_t tab = line.find('\t');
  if (tab == std::string::npos) throw Error(Errc::kInternal, "the simulator's supervisor exited during start-up");
  throw Error(errc_from_name(line.substr(0, tab)), line.substr(tab + 1));
}

}  // namespace

nlohmann::ordered_json run_enclave(const RunOptions& options) {
  Prepared p = prepare(options);
  refuse_running(p.paths);
  UndoOnFailure undo(p.paths);
  reset_state(p.paths);
  p.image = unpack_image(options.eif_path, p.paths.image);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(Errc::kIo, "pipe failed");
  UniqueFd status_r(fds[0]), status_w(fds[1]);
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) throw Error(Errc::kEnvironment, "fork failed");
  if (child == 0) {
    status_r.reset();
    ::setsid();
    // The grandchild: no terminal, no parent to wait for it.
    if (::fork() == 0) supervise(p, std::move(status_w));
    ::_exit(0);
  }
  status_w.reset();
  int st = 0;
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  await_supervisor(std::move(status_r));
  undo.dismiss();  // the enclave runs: its folder is the supervisor's now
  auto rec = load_record(p.paths);
  if (!rec) throw Error(Errc::kInternal, "the supervisor started but wrote no record");
  return (*rec)["run"];
}

}  // namespace shield_nitro::sim
