// The process core. Between fork() and execve() the child makes plain system calls only (the
// supervisor has threads: the log writers, the KMS key generator), so everything it needs is
// built before the fork.
#include "shield_nitro/supervisor/process.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/unique_fd.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace shield_nitro::supervisor {
namespace {

constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGQUIT};
// A longer line is logged in pieces of this size: a log record must fit the host link's 4 KiB
// line with its JSON escaping and the other members.
constexpr size_t kMaxLine = 3 << 10;

bool is_stop_signal(int sig) { return std::find(std::begin(kStopSignals), std::end(kStopSignals), sig) != std::end(kStopSignals); }

sigset_t supervisor_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kForwarded) sigaddset(&set, s);
  sigaddset(&set, SIGCHLD);
  return set;
}

// What the child reports through the error pipe when a step before exec fails.
struct ChildFailure {
  int step;
  int err;
};
const char* const kStepNames[] = {"setgroups", "setgid", "setuid", "chdir", "exec"};
enum ChildStep { kSetgroups, kSetgid, kSetuid, kChdir, kExec };

std::string status_text(int status) {
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

int exit_status(int status) { return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status); }

std::string env_value(const std::vector<std::string>& env, const std::string& name) {
  for (const auto& e : env)
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') return e.substr(name.size() + 1);
  return "";
}

// One pipe end of the app's output, split into lines.
struct Stream {
  const char* name;
  UniqueFd fd;
  std::string partial;

  // Reads what is there (non-blocking). Returns false at end of file or error (fd closed).
  bool pump(LogRouter& logs) {
    char buf[65536];
    for (int rounds = 0; rounds < 16; ++rounds) {  // bounded, so the other pipe and signals get their turn
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        feed(logs, std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      flush(logs);
      fd.reset();
      return false;
    }
    return true;
  }

  void feed(LogRouter& logs, std::string_view data) {
    while (!data.empty()) {
      size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        partial.append(data);
        while (partial.size() >= kMaxLine) {
          logs.app_line(name, std::string_view(partial).substr(0, kMaxLine));
          partial.erase(0, kMaxLine);
        }
        return;
      }
      if (partial.empty()) {
        logs.app_line(name, data.substr(0, nl));
      } else {
        partial.append(data.substr(0, nl));
        logs.app_line(name, partial);
        partial.clear();
      }
      data.remove_prefix(nl + 1);
    }
  }

  void flush(LogRouter& logs) {
    if (!partial.empty()) logs.app_line(name, partial);
    partial.clear();
  }
};

}  // namespace

struct AppProcess::Pipes {
  Stream out{"stdout", {}, {}};
  Stream err{"stderr", {}, {}};
};

// Everything the child uses, built before fork (the deque never moves its strings).
struct AppProcess::Prepared {
  std::deque<std::string> store;
  std::vector<std::vector<char*>> candidates;  // one argv per program path to try
  std::vector<char*> envp;
  const char* workdir = "/";
  char* keep(std::string s) { return store.emplace_back(std::move(s)).data(); }
};

uint32_t restart_delay_ms(const RestartOptions& o, uint32_t restarts_so_far) {
  uint64_t d = o.backoff_ms;
  for (uint32_t i = 0; i < restarts_so_far && d < o.max_backoff_ms; ++i) d *= 2;
  return static_cast<uint32_t>(std::min<uint64_t>(d, o.max_backoff_ms));
}

std::vector<std::string> merge_environment(char** base, const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> out;
  auto set = [&](const std::string& name, const std::string& entry) {
    for (auto& e : out)
      if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
        e = entry;
        return;
      }
    out.push_back(entry);
  };
  for (char** e = base; e && *e; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    set(entry.substr(0, eq), entry);
  }
  for (const auto& [name, value] : overrides)
    if (!name.empty() && name.find('=') == std::string::npos) set(name, name + "=" + value);
  return out;
}

void block_supervisor_signals() {
  sigset_t set = supervisor_signal_set();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

int wait_for_stop_signal(int wait_ms) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kStopSignals) sigaddset(&set, s);
  timespec ts{wait_ms / 1000, static_cast<long>(wait_ms % 1000) * 1'000'000};
  for (;;) {
    int sig = ::sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EINTR) continue;  // (the remaining time is not tracked: a retry sleeps a bit longer)
    return 0;
  }
}

AppProcess::AppProcess(AppSpec spec, RestartOptions restart, LogRouter& logs, int64_t start_ns)
    : spec_(std::move(spec)), restart_(restart), logs_(logs), start_ns_(start_ns) {
  if (spec_.argv.empty() || spec_.argv[0].empty()) throw Error(Errc::kUsage, "no command to run: give it after --");
}

AppProcess::Pipes AppProcess::start(const Prepared& p, uint32_t restarts) {
  int out[2], err[2], report[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw Error(Errc::kEnvironment, std::string("pipe: ") + std::strerror(errno));
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) throw Error(Errc::kEnvironment, std::string("pipe: ") + std::strerror(errno));
  UniqueFd err_r(err[0]), err_w(err[1]);
  if (::pipe2(report, O_CLOEXEC) != 0) throw Error(Errc::kEnvironment, std::string("pipe: ") + std::strerror(errno));
  UniqueFd report_r(report[0]), report_w(report[1]);
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) throw Error(Errc::kEnvironment, std::string("/dev/null: ") + std::strerror(errno));
  const AppSpec& s = spec_;

  pid_t pid = ::fork();
  if (pid < 0) throw Error(Errc::kEnvironment, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // The child: plain system calls only.
    auto fail = [&](int step) {
      ChildFailure f{step, errno};
      (void)!::write(report_w.get(), &f, sizeof f);
      ::_exit(127);
    };
    ::setsid();
    for (int sig = 1; sig < 32; ++sig)
      if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);  // SIGPIPE was ignored here
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(devnull.get(), 0);
    ::dup2(out_w.get(), 1);
    ::dup2(err_w.get(), 2);
    if (s.set_user) {
      if (::setgroups(0, nullptr) != 0) fail(kSetgroups);
      if (::setgid(s.gid) != 0) fail(kSetgid);
      if (::setuid(s.uid) != 0) fail(kSetuid);
    }
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // after setuid, which clears it
    if (::chdir(p.workdir) != 0) fail(kChdir);
    // Nothing of the supervisor's (sockets, the NSM, key files) reaches the app; the report pipe
    // closes at exec.
    ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
    int first_err = ENOENT;
    for (const auto& argv : p.candidates) {
      ::execve(argv[0], argv.data(), p.envp.data());
      if (errno != ENOENT) first_err = errno;
    }
    errno = first_err;
    fail(kExec);
  }
  report_w.reset();
  out_w.reset();
  err_w.reset();
  ChildFailure f{};
  ssize_t n;
  do n = ::read(report_r.get(), &f, sizeof f);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof f)) {
    ::waitpid(pid, nullptr, 0);
    std::string what = kStepNames[std::clamp(f.step, 0, 4)];
    if (f.step == kChdir) what += " " + s.workdir;
    if (f.step == kExec) what += " " + s.argv[0];
    if (f.step <= kSetuid) what += " to " + std::to_string(s.uid) + ":" + std::to_string(s.gid);
    std::string why = "cannot start the app: " + what + ": " + std::strerror(f.err);
    logs_.event("exec_failed", why, {{"error", why}});
    throw Error(Errc::kEnvironment, why);
  }
  pid_ = pid;
  int64_t since_us = start_ns_ ? (monotonic_ns() - start_ns_) / 1000 : 0;
  logs_.event("app_started",
              "app started: pid " + std::to_string(pid) + (restarts ? ", restart " + std::to_string(restarts) : ""),
              {{"pid", int64_t{pid}}, {"restarts", int64_t{restarts}}, {"since_start_us", since_us}});
  for (int fd : {out_r.get(), err_r.get()}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  Pipes pipes;
  pipes.out.fd = std::move(out_r);
  pipes.err.fd = std::move(err_r);
  return pipes;
}

int AppProcess::run() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    throw Error(Errc::kEnvironment, std::string("PR_SET_CHILD_SUBREAPER: ") + std::strerror(errno));
  sigset_t set = supervisor_signal_set();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sfd) throw Error(Errc::kEnvironment, std::string("signalfd: ") + std::strerror(errno));

  Prepared p;
  std::string path = env_value(spec_.env, "PATH");
  if (path.empty()) path = "/sbin:/usr/sbin:/bin:/usr/bin";  // what the Nitro init gives
  std::vector<std::string> programs;
  if (spec_.argv[0].find('/') != std::string::npos) {
    programs.push_back(spec_.argv[0]);
  } else {
    for (size_t b = 0; b <= path.size();) {
      size_t e = path.find(':', b);
      if (e == std::string::npos) e = path.size();
      std::string dir = path.substr(b, e - b);
      programs.push_back((dir.empty() ? "." : dir) + "/" + spec_.argv[0]);
      b = e + 1;
    }
  }
  for (const auto& prog : programs) {
    std::vector<char*> argv{p.keep(prog)};
    for (size_t i = 1; i < spec_.argv.size(); ++i) argv.push_back(p.keep(spec_.argv[i]));
    argv.push_back(nullptr);
    p.candidates.push_back(std::move(argv));
  }
  for (const auto& e : spec_.env) p.envp.push_back(p.keep(e));
  p.envp.push_back(nullptr);
  p.workdir = p.keep(spec_.workdir.empty() ? "/" : spec_.workdir);

  uint32_t restarts = 0;
  bool stopping = false;
  int last_status = 0;
  Pipes pipes = start(p, 0);
  std::optional<int> exited;                        // the app's wait status, once it ended
  bool waiting = false;                             // to restart, at restart_at
  std::chrono::steady_clock::time_point restart_at{};

  for (;;) {
    if (exited) {
      // Lines written just before the exit are still in the pipes: take them, then close.
      for (Stream* s : {&pipes.out, &pipes.err})
        if (s->fd) {
          s->pump(logs_);
          s->flush(logs_);
          s->fd.reset();
        }
      ::kill(-pid_, SIGKILL);  // its process group (setsid: the pgid is its pid)
      int st = *exited;
      last_status = exit_status(st);
      EventFields fields = {{"status", int64_t{last_status}}, {"pid", int64_t{pid_}}};
      if (WIFSIGNALED(st))
        fields["signal"] = int64_t{WTERMSIG(st)};
      else
        fields["code"] = int64_t{WEXITSTATUS(st)};
      logs_.event("app_exited", "app " + status_text(st), fields);
      pid_ = 0;
      exited.reset();
      bool failed = last_status != 0;
      if (stopping || restart_.policy == runtime::RestartPolicy::kNever || !failed) return last_status;
      if (restarts >= restart_.max_restarts) {
        logs_.event("restart_limit", "not restarting: " + std::to_string(restarts) + " restarts already (app.max_restarts)",
                    {{"restarts", int64_t{restarts}}});
        return last_status;
      }
      uint32_t delay = restart_delay_ms(restart_, restarts);
      logs_.event("app_restarting", "restarting the app in " + std::to_string(delay) + " ms",
                  {{"restarts", int64_t{restarts} + 1}, {"delay_ms", int64_t{delay}}});
      restart_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
      waiting = true;
    }
    if (waiting && std::chrono::steady_clock::now() >= restart_at) {
      waiting = false;
      pipes = start(p, ++restarts);
    }

    pollfd fds[3] = {{sfd.get(), POLLIN, 0}, {pipes.out.fd.get(), POLLIN, 0}, {pipes.err.fd.get(), POLLIN, 0}};
    int timeout = -1;
    if (waiting) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(restart_at - std::chrono::steady_clock::now());
      timeout = static_cast<int>(std::max<int64_t>(0, left.count()) + 1);
    }
    if (::poll(fds, 3, timeout) < 0 && errno != EINTR)
      throw Error(Errc::kEnvironment, std::string("poll: ") + std::strerror(errno));
    if (fds[1].revents) pipes.out.pump(logs_);
    if (fds[2].revents) pipes.err.pump(logs_);
    if (!(fds[0].revents & POLLIN)) continue;
    signalfd_siginfo si;
    while (::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD) {
        // Every child that ended: the app, and orphans re-parented here.
        int st = 0;
        for (pid_t r; (r = ::waitpid(-1, &st, WNOHANG)) > 0;)
          if (r == pid_) exited = st;
        continue;
      }
      if (is_stop_signal(sig)) stopping = true;
      if (pid_ > 0) {
        ::kill(pid_, sig);
        logs_.event("signal", std::string("forwarded ") + strsignal(sig) + " to the app", {{"signal", int64_t{sig}}, {"pid", int64_t{pid_}}});
      } else if (stopping) {
        logs_.event("signal", std::string(strsignal(sig)) + " while waiting to restart: not restarting", {{"signal", int64_t{sig}}});
        return last_status;
      }
    }
  }
}

}  // namespace shield_nitro::supervisor
