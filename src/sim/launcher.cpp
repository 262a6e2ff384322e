// The enclave launcher. Everything the child does between clone() and execve() is prepared by
// the parent first (paths, argv, envp, a list of steps), because the supervisor is
// multi-threaded (the NSM thread) and a cloned child may only make plain system calls.
#include "shield_nitro/sim/launcher.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <utility>

#include "cgroups.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::sim {

namespace {

enum class StepKind { kMount, kMkdir, kTouch, kSymlink, kLoopbackUp, kHostname, kPivotRoot };

// One system call of the child's setup, with every argument already built.
struct Step {
  StepKind kind;
  const char* what;  // for the error message
  const char* a = nullptr;
  const char* b = nullptr;
  const char* fstype = nullptr;
  unsigned long flags = 0;
  const char* data = nullptr;
};

// What the child reports through the error pipe when a step fails. step == -1: exec.
struct ChildFailure {
  int step;
  int err;
};

// Owns the strings the steps point into (a deque never moves its elements).
class Plan {
 public:
  const char* keep(std::string s) { return store_.emplace_back(std::move(s)).c_str(); }
  void add(Step s) { steps.push_back(s); }
  std::vector<Step> steps;

 private:
  std::deque<std::string> store_;
};

std::string errno_text(int err) { return std::strerror(err); }

std::string join_path(const std::string& root, const std::string& inside) {
  return root + (inside.starts_with("/") ? inside : "/" + inside);
}

bool is_dir(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void add_tmpfs(Plan& plan, const std::string& root, const char* dir, const char* opts) {
  const char* target = plan.keep(join_path(root, dir));
  plan.add({StepKind::kMkdir, dir, target});
  plan.add({StepKind::kMount, dir, "tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, opts});
}

// A minimal /dev: the character devices programs expect, bind-mounted from the host.
void add_dev(Plan& plan, const std::string& root) {
  add_tmpfs(plan, root, "/dev", "mode=755,size=64k");
  for (const char* dev : {"null", "zero", "full", "random", "urandom"}) {
    std::string host = std::string("/dev/") + dev;
    const char* target = plan.keep(join_path(root, host));
    plan.add({StepKind::kTouch, plan.keep(host), target});
    plan.add({StepKind::kMount, plan.keep(host), plan.keep(host), target, nullptr, MS_BIND, nullptr});
  }
  for (auto [name, to] : {std::pair{"/dev/fd", "/proc/self/fd"}, {"/dev/stdin", "/proc/self/fd/0"},
                          {"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"}}) {
    plan.add({StepKind::kSymlink, name, to, plan.keep(join_path(root, name))});
  }
  add_tmpfs(plan, root, "/dev/shm", "mode=1777");
}

void check_bind_target(const BindMount& b) {
  if (!(b.target.starts_with("/run/") || b.target.starts_with("/tmp/")) || b.target.find("..") != std::string::npos)
    throw Error(Errc::kUsage, "bind target " + b.target + " must lie under /run/ or /tmp/ inside the enclave");
  if (::access(b.source.c_str(), F_OK) != 0)
    throw Error(Errc::kIo, "cannot bind " + b.source + " into the enclave: " + errno_text(errno));
}

void add_bind(Plan& plan, const std::string& root, const BindMount& b) {
  check_bind_target(b);
  // Parents of the target, on the /run or /tmp tmpfs.
  for (size_t pos = b.target.find('/', 5); pos != std::string::npos; pos = b.target.find('/', pos + 1)) {
    plan.add({StepKind::kMkdir, "bind target parent", plan.keep(join_path(root, b.target.substr(0, pos)))});
  }
  const char* target = plan.keep(join_path(root, b.target));
  const char* what = plan.keep(b.target);
  plan.add({is_dir(b.source) ? StepKind::kMkdir : StepKind::kTouch, what, target});
  plan.add({StepKind::kMount, what, plan.keep(b.source), target, nullptr, MS_BIND, nullptr});
  if (b.read_only)
    plan.add({StepKind::kMount, what, nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr});
}

void build_plan(Plan& plan, const EnclaveSpec& spec) {
  const std::string& root = spec.rootfs;
  const char* r = plan.keep(root);
  plan.add({StepKind::kMount, "make / private", nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr});
  plan.add({StepKind::kMount, "bind the root filesystem", r, r, nullptr, MS_BIND | MS_REC, nullptr});
  const char* proc = plan.keep(join_path(root, "/proc"));
  plan.add({StepKind::kMkdir, "/proc", proc});
  plan.add({StepKind::kMount, "/proc", "proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr});
  add_dev(plan, root);
  add_tmpfs(plan, root, "/tmp", "mode=1777");
  add_tmpfs(plan, root, "/run", "mode=755");
  for (const auto& b : spec.binds) add_bind(plan, root, b);
  plan.add({StepKind::kLoopbackUp, "bring up loopback"});
  plan.add({StepKind::kHostname, "set the hostname", plan.keep(spec.name)});
  plan.add({StepKind::kPivotRoot, "pivot_root into the image", r});
}

int loopback_up() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return -1;
  struct ifreq ifr{};
  std::memcpy(ifr.ifr_name, "lo", 3);
  int rc = ::ioctl(fd.get(), SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    rc = ::ioctl(fd.get(), SIOCSIFFLAGS, &ifr);
  }
  int saved = errno;
  fd.reset();
  errno = saved;
  return rc;
}

int pivot_into(const char* root) {
  if (::chdir(root) != 0) return -1;
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return -1;
  if (::umount2(".", MNT_DETACH) != 0) return -1;
  return ::chdir("/");
}

// Runs in the child: plain system calls only.
int run_step(const Step& s) {
  switch (s.kind) {
    case StepKind::kMount:
      return ::mount(s.a, s.b, s.fstype, s.flags, s.data);
    case StepKind::kMkdir:
      return (::mkdir(s.a, 0755) == 0 || errno == EEXIST) ? 0 : -1;
    case StepKind::kTouch: {
      UniqueFd fd(::open(s.a, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      return fd ? fd.close() : -1;
    }
    case StepKind::kSymlink:
      return ::symlink(s.a, s.b);
    case StepKind::kLoopbackUp:
      return loopback_up();
    case StepKind::kHostname:
      return ::sethostname(s.a, std::strlen(s.a));
    case StepKind::kPivotRoot:
      return pivot_into(s.a);
  }
  return -1;
}

// Everything the child needs, built before clone().
struct ChildContext {
  std::vector<Step> steps;
  std::vector<std::vector<char*>> candidates;  // one argv per program path to try; argv[0] differs
  std::vector<char*> envp;
  int go_fd = -1;
  int err_fd = -1;
  int console_fd = -1;
  int status_fd = -1;  // PID 1 writes the command's wait status here
  bool use_rlimit = false;
  rlim_t rlimit_as = 0;
  bool use_affinity = false;
  cpu_set_t affinity{};
};

[[noreturn]] void child_fail(const ChildContext& c, int step) {
  ChildFailure f{step, errno};
  (void)!::write(c.err_fd, &f, sizeof f);
  ::_exit(126);
}

[[noreturn]] void exec_app(const ChildContext& c) {
  ::setsid();
  // The supervisor blocks the signals it waits for, and a mask survives fork and exec: the
  // command starts with none blocked, as under the Nitro init, so SIGTERM can stop it.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd > 0) {
    ::dup2(null_fd, 0);
    ::close(null_fd);
  }
  ::dup2(c.console_fd, 1);
  ::dup2(c.console_fd, 2);
  if (c.use_rlimit) {
    struct rlimit rl{c.rlimit_as, c.rlimit_as};
    ::setrlimit(RLIMIT_AS, &rl);
  }
  int first_err = ENOENT;
  for (const auto& argv : c.candidates) {
    ::execve(argv[0], argv.data(), const_cast<char* const*>(c.envp.data()));
    if (errno != ENOENT || first_err == ENOENT) first_err = errno;
  }
  errno = first_err;
  child_fail(c, -1);
}

// Closes every descriptor above 2 except the four the child needs, so nothing the supervisor
// holds (the CLI's status pipe, NSM sockets) leaks into the enclave.
void close_inherited_fds(const ChildContext& c) {
  int keep[4] = {c.go_fd, c.err_fd, c.console_fd, c.status_fd};
  std::sort(keep, keep + 4);
  unsigned lo = 3;
  for (int k : keep) {
    if (k >= static_cast<int>(lo)) {
      if (k > static_cast<int>(lo)) ::syscall(SYS_close_range, lo, static_cast<unsigned>(k - 1), 0u);
      lo = static_cast<unsigned>(k) + 1;
    }
  }
  ::syscall(SYS_close_range, lo, ~0u, 0u);
}

// PID 1 of the enclave: set up the world, start the command, reap, and exit with its status.
[[noreturn]] void enclave_init(const ChildContext& c) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  close_inherited_fds(c);
  char go = 0;
  if (::read(c.go_fd, &go, 1) != 1) ::_exit(125);  // the parent gave up
  for (size_t i = 0; i < c.steps.size(); ++i) {
    if (run_step(c.steps[i]) != 0) child_fail(c, static_cast<int>(i));
  }
  if (c.use_affinity) ::sched_setaffinity(0, sizeof c.affinity, &c.affinity);
  pid_t app = ::fork();
  if (app < 0) child_fail(c, static_cast<int>(c.steps.size()));
  if (app == 0) exec_app(c);
  ::close(c.err_fd);
  ::close(c.console_fd);
  for (;;) {
    int status = 0;
    pid_t p = ::waitpid(-1, &status, 0);
    if (p == app) {
      // The exit code below cannot tell "killed by signal N" from "exited 128+N": the
      // supervisor gets the exact status here.
      (void)!::write(c.status_fd, &status, sizeof status);
      ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    if (p < 0 && errno != EINTR) ::_exit(125);
  }
}

std::vector<std::string> program_candidates(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return {prog};
  std::vector<std::string> out;
  for (const char* dir : {"/sbin", "/usr/sbin", "/bin", "/usr/bin"}) out.push_back(std::string(dir) + "/" + prog);
  return out;
}

void fill_exec_args(ChildContext& c, Plan& plan, const EnclaveSpec& spec) {
  for (const auto& path : program_candidates(spec.argv[0])) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(plan.keep(path)));
    for (size_t i = 1; i < spec.argv.size(); ++i) argv.push_back(const_cast<char*>(plan.keep(spec.argv[i])));
    argv.push_back(nullptr);
    c.candidates.push_back(std::move(argv));
  }
  for (const auto& e : spec.env) c.envp.push_back(const_cast<char*>(plan.keep(e)));
  c.envp.push_back(nullptr);
}

void apply_fallback_limits(ChildContext& c, const EnclaveSpec& spec, AppliedLimits& limits) {
  if (spec.memory_mib > 0 && limits.memory.empty()) {
    c.use_rlimit = true;
    c.rlimit_as = static_cast<rlim_t>(spec.memory_mib) << 20;
    limits.memory = "RLIMIT_AS=" + std::to_string(c.rlimit_as) + " per process (no writable memory cgroup)";
  }
  if (spec.cpus > 0 && limits.cpu.empty()) {
    c.use_affinity = true;
    CPU_ZERO(&c.affinity);
    for (int id : limits.cpu_ids) CPU_SET(id, &c.affinity);
    limits.cpu = "affinity " + cpu_list_text(limits.cpu_ids) + " (no writable cpuset cgroup)";
  }
  if (limits.memory.empty()) limits.memory = "none";
  if (limits.cpu.empty()) limits.cpu = "none";
}

std::string failure_message(const ChildFailure& f, const ChildContext& c, const EnclaveSpec& spec) {
  if (f.step == -1) {
    std::string msg = "cannot start the enclave command " + spec.argv[0] + ": " + errno_text(f.err);
    return f.err == ENOENT ? msg + " (not in the image, or its loader/libraries are missing)" : msg;
  }
  const char* what = f.step < static_cast<int>(c.steps.size()) ? c.steps[f.step].what : "fork the command";
  return std::string("enclave setup failed at '") + what + "': " + errno_text(f.err);
}

Errc failure_code(const ChildFailure& f) {
  if (f.step == -1) return f.err == ENOENT ? Errc::kNotFound : Errc::kIo;
  return (f.err == EPERM || f.err == EACCES) ? Errc::kEnvironment : Errc::kIo;
}

pid_t clone_into_namespaces() {
  long flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  // fork()-like clone: the child continues here on a copy of this stack.
  return static_cast<pid_t>(::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr));
}

void validate_spec(const EnclaveSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) throw Error(Errc::kUsage, "the enclave command is empty");
  if (!is_dir(spec.rootfs)) throw Error(Errc::kIo, "enclave root filesystem " + spec.rootfs + " is not a folder");
  if (spec.rootfs.empty() || spec.rootfs[0] != '/')
    throw Error(Errc::kUsage, "the enclave root filesystem must be an absolute path: " + spec.rootfs);
}

}  // namespace

EnclaveProcess::EnclaveProcess(EnclaveProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      reaped_(o.reaped_),
      status_(o.status_),
      status_fd_(std::move(o.status_fd_)),
      command_reported_(o.command_reported_),
      command_status_(o.command_status_),
      oom_kills_(o.oom_kills_),
      limits_(std::move(o.limits_)) {}

EnclaveProcess& EnclaveProcess::operator=(EnclaveProcess&& o) noexcept {
  if (this == &o) return *this;
  pid_ = std::exchange(o.pid_, -1);
  reaped_ = o.reaped_;
  status_ = o.status_;
  status_fd_ = std::move(o.status_fd_);
  command_reported_ = o.command_reported_;
  command_status_ = o.command_status_;
  oom_kills_ = o.oom_kills_;
  limits_ = std::move(o.limits_);
  return *this;
}

void EnclaveProcess::kill() {
  if (running()) ::kill(pid_, SIGKILL);
}

void EnclaveProcess::finish() {
  reaped_ = true;
  // PID 1 has exited: its report is in the pipe already, or it never came (killed first).
  if (status_fd_) {
    int reported = 0;
    ssize_t n;
    do n = ::read(status_fd_.get(), &reported, sizeof reported);
    while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof reported)) {
      command_reported_ = true;
      command_status_ = reported;
    }
    status_fd_.reset();
  }
  oom_kills_ = oom_kill_count(limits_);  // before the cgroup goes
  release_cgroups(limits_);
}

int EnclaveProcess::wait() {
  if (pid_ <= 0 || reaped_) return status_;
  while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
  }
  finish();
  return status_;
}

bool EnclaveProcess::try_wait(int& status) {
  if (pid_ <= 0) return false;
  if (!reaped_) {
    pid_t p = ::waitpid(pid_, &status_, WNOHANG);
    if (p != pid_) return false;
    finish();
  }
  status = status_;
  return true;
}

void release_cgroups(const AppliedLimits& limits) {
  for (const auto& dir : limits.cgroup_dirs) remove_cgroup(dir);
}

EnclaveProcess launch_enclave(const EnclaveSpec& spec) {
  validate_spec(spec);
  Plan plan;
  build_plan(plan, spec);
  ChildContext c;
  c.steps = plan.steps;
  fill_exec_args(c, plan, spec);

  UniqueFd console(::open(spec.console_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (console.get() < 0) throw Error(Errc::kIo, "cannot open the console log " + spec.console_path + ": " + errno_text(errno));
  int go[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
  bool piped = ::pipe2(go, O_CLOEXEC) == 0 && ::pipe2(err, O_CLOEXEC) == 0 && ::pipe2(st, O_CLOEXEC) == 0;
  int pipe_errno = errno;
  UniqueFd go_r(go[0]), go_w(go[1]), err_r(err[0]), err_w(err[1]), st_r(st[0]), st_w(st[1]);
  if (!piped) throw Error(Errc::kIo, std::string("pipe: ") + errno_text(pipe_errno));
  c.go_fd = go_r.get();
  c.err_fd = err_w.get();
  c.console_fd = console.get();
  c.status_fd = st_w.get();

  AppliedLimits limits = create_cgroups(spec.name, spec.memory_mib, spec.cpus);
  apply_fallback_limits(c, spec, limits);

  pid_t pid = clone_into_namespaces();
  if (pid == 0) enclave_init(c);
  if (pid < 0) {
    int e = errno;
    release_cgroups(limits);
    throw Error(Errc::kEnvironment, "cannot create the enclave's namespaces (needs root or CAP_SYS_ADMIN, and "
                                    "unshare allowed): clone: " + errno_text(e));
  }
  EnclaveProcess proc(pid, limits, std::move(st_r));
  go_r.reset();
  err_w.reset();
  st_w.reset();
  console.reset();
  join_cgroups(limits, pid);
  char one = 1;
  ChildFailure f{};
  ssize_t n = -1;
  if (::write(go_w.get(), &one, 1) == 1) {
    do n = ::read(err_r.get(), &f, sizeof f);
    while (n < 0 && errno == EINTR);
  }
  if (n == 0) return proc;
  proc.kill();
  proc.wait();
  if (n != static_cast<ssize_t>(sizeof f)) throw Error(Errc::kIo, "the enclave's init died during setup");
  throw Error(failure_code(f), failure_message(f, c, spec));
}

}  // namespace shield_nitro::sim
