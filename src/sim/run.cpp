// sim run: measure and unpack in the foreground (so errors come back directly), then fork a
// daemonized supervisor that owns the NSM and the enclave and reports readiness on a pipe.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "cgroups.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/eif/describe.h"
#include "shield_nitro/eif/reader.h"
#include "shield_nitro/nsm/simulator.h"
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

// A fresh state folder: refuses a running enclave, clears what a previous run left.
void reset_state(const StatePaths& p) {
  make_dirs(p.dir, 0700);
  if (auto rec = load_record(p)) {
    if (rec->value("state", "") == "RUNNING" && supervisor_alive(*rec))
      throw Error(Errc::kUsage, "an enclave is already running in " + p.dir + " (sim terminate --state " + p.dir + ")");
    remove_leftovers(p, *rec);
  }
  std::error_code ec;
  for (const auto& f : {p.record, p.enclave_json, p.console, p.supervisor_log}) std::filesystem::remove(f, ec);
  std::filesystem::remove_all(p.image, ec);
  make_dirs(p.vsock, 0755);
  make_dirs(p.nsm, 0700);
}

Prepared prepare(const RunOptions& o) {
  validate(o);
  Prepared p{o, StatePaths(std::filesystem::absolute(o.state_dir).string()), {}, {}, {}, {}, 0, 0};
  auto reader = eif::EifReader::open(o.eif_path);
  p.measurements = reader.scan().measurements;
  reset_state(p.paths);
  p.image = unpack_image(o.eif_path, p.paths.image);
  p.name = o.name.empty() ? default_name(o.eif_path) : o.name;
  p.enclave_id = make_enclave_id(o.instance_id);
  p.memory_mib = o.memory_mib ? o.memory_mib : reader.header().default_mem >> 20;
  size_t avail = available_cpus().size();
  p.cpus = o.cpus ? o.cpus : static_cast<unsigned>(std::min<uint64_t>(reader.header().default_cpus, avail));
  return p;
}

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
void report(int fd, const std::string& line) {
  if (fd < 0) return;
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

void redirect_std_streams(const StatePaths& paths) {
  int null_fd = ::open("/dev/null", O_RDWR);
  int log_fd = ::open(paths.supervisor_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
  if (null_fd >= 0) {
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
  }
  if (log_fd >= 0) ::dup2(log_fd, 2);
}

// Blocks the signals the supervisor waits for (before any thread starts, so all inherit it).
sigset_t supervisor_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Until the enclave exits by itself or a termination signal arrives.
int wait_for_end(EnclaveProcess& enclave, const sigset_t& set) {
  for (;;) {
    int status = 0;
    if (enclave.try_wait(status)) return status;
    siginfo_t info;
    struct timespec tick{1, 0};
    int sig = ::sigtimedwait(&set, &info, &tick);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      log_info("terminating the enclave (signal " + std::to_string(sig) + ")");
      enclave.kill();
      return enclave.wait();
    }
  }
}

[[noreturn]] void supervise(const Prepared& p, int status_fd) {
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
    status_fd = -1;
    int status = wait_for_end(enclave, set);
    rec["exit_status"] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
void await_supervisor(int fd) {
  std::string line;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (line == "ok") return;
  size_t tab = line.find('\t');
  if (tab == std::string::npos) throw Error(Errc::kInternal, "the simulator's supervisor exited during start-up");
  throw Error(errc_from_name(line.substr(0, tab)), line.substr(tab + 1));
}

}  // namespace

nlohmann::ordered_json run_enclave(const RunOptions& options) {
  Prepared p = prepare(options);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(Errc::kIo, "pipe failed");
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) throw Error(Errc::kEnvironment, "fork failed");
  if (child == 0) {
    ::close(fds[0]);
    ::setsid();
    if (::fork() == 0) supervise(p, fds[1]);  // the grandchild: no terminal, no parent to wait for it
    ::_exit(0);
  }
  ::close(fds[1]);
  int st = 0;
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  await_supervisor(fds[0]);
  auto rec = load_record(p.paths);
  if (!rec) throw Error(Errc::kInternal, "the supervisor started but wrote no record");
  return (*rec)["run"];
}

}  // namespace shield_nitro::sim
