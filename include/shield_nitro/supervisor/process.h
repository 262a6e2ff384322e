// The supervisor's process core: it starts the app and stays its parent until the app is done.
//
//   supervisor::block_supervisor_signals();          // first thing in main, before any thread
//   supervisor::LogRouter logs({.buffer_bytes = 1 << 20});
//   supervisor::AppProcess app(spec, restart, logs);
//   int status = app.run();                          // the app's exit code, or 128 + signal
//
// What run() does:
// - makes this process the child subreaper (PR_SET_CHILD_SUBREAPER): orphans of the app are
//   re-parented here, and every child that ends is reaped, zombies of descendants included;
// - starts the app in its own session (setsid) with the environment given, stdin /dev/null,
//   stdout/stderr to pipes read here line by line into the LogRouter (which never blocks, so
//   neither does the app), as spec.uid/gid (setgroups, setgid, setuid) when spec.set_user, in
//   spec.workdir; no signal blocked or ignored, no descriptor of the supervisor inherited;
// - forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the app. SIGTERM, SIGINT
//   and SIGQUIT also mean "stop": the app is not restarted after it exits;
// - when the app exits, kills what is left of its process group (SIGKILL), so nothing of one
//   run outlives it into the next, and logs app_exited with its status;
// - restart policy on-failure: a non-zero status starts the app again after
//   backoff_ms * 2^(restarts so far), at most max_backoff_ms, up to max_restarts times.
// Events logged: app_started {pid, restarts, since_start_us}, signal {signal, pid},
// app_exited {status, code | signal, pid}, app_restarting {restarts, delay_ms},
// restart_limit {restarts}, exec_failed {error}.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "shield_nitro/runtime/config.h"
#include "shield_nitro/supervisor/logs.h"

namespace shield_nitro::supervisor {

struct AppSpec {
  std::vector<std::string> argv;  // argv[0] without '/' is searched in the env's PATH
  std::vector<std::string> env;   // NAME=value, the app's whole environment
  std::string workdir = "/";
  bool set_user = false;          // false: the app runs as the supervisor's own user
  uint32_t uid = 65534;
  uint32_t gid = 65534;
};

struct RestartOptions {
  runtime::RestartPolicy policy = runtime::RestartPolicy::kNever;
  uint32_t max_restarts = 5;
  uint32_t backoff_ms = 500;
  uint32_t max_backoff_ms = 30'000;
};

// The delay before restart number `restarts_so_far + 1`: backoff_ms doubled per earlier
// restart, at most max_backoff_ms.
uint32_t restart_delay_ms(const RestartOptions& options, uint32_t restarts_so_far);

// The app's environment: `base` (NAME=value entries, e.g. the supervisor's own environ), then
// each of `overrides` in order replacing or adding a NAME. Entries without '=' are dropped.
std::vector<std::string> merge_environment(char** base, const std::vector<std::pair<std::string, std::string>>& overrides);

// The signals the process core forwards, plus SIGCHLD: blocked in the calling thread (and so in
// every thread started after) so that only AppProcess::run() receives them; SIGPIPE ignored.
// Call first thing in main.
void block_supervisor_signals();

// If SIGTERM, SIGINT or SIGQUIT is pending (the start sequence, before the app exists), takes
// it and returns it; else waits up to `wait_ms` for one and returns 0 when none came. The
// start sequence's retry loops sleep through this, so a stop request is never missed.
int wait_for_stop_signal(int wait_ms);

class AppProcess {
 public:
  // start_ns: when the supervisor started (monotonic_ns), for app_started's since_start_ms.
  AppProcess(AppSpec spec, RestartOptions restart, LogRouter& logs, int64_t start_ns = 0);

  // Runs the app (and its restarts) to the end; see above. Returns the status the supervisor
  // exits with: the last run's exit code, or 128 + the signal that killed it. Throws
  // Error(kEnvironment) when the app cannot be started at all (not executable, no such user or
  // folder: reported by the child, logged as exec_failed).
  int run();

  // The current app's pid, 0 when none runs (for tests).
  pid_t pid() const { return pid_; }

 private:
  struct Prepared;
  struct Pipes;
  Pipes start(const Prepared& p, uint32_t restarts);
  AppSpec spec_;
  RestartOptions restart_;
  LogRouter& logs_;
  int64_t start_ns_;
  pid_t pid_ = 0;
};

}  // namespace shield_nitro::supervisor
