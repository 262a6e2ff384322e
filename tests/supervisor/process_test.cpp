// The supervisor's process core: exit status, logs, environment, user, restarts, signals,
// orphan reaping, and a log flood that must not block the app. Each test runs the core in a
// forked child (subreaper, signal mask and signalfd are process-wide), as
// `shield-nitro-enclave run` does, and reads the JSON lines it logs to a file (the console) and,
// for the flood, to a socket standing in for the host link.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/supervisor/logs.h"
#include "shield_nitro/supervisor/process.h"
#include "support/root.h"
#include "support/temp_dir.h"

extern char** environ;

namespace {

using namespace shield_nitro;
using namespace shield_nitro::supervisor;
using Json = nlohmann::json;
using shield_nitro::test_support::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<Json> json_lines(const std::string& text) {
  std::vector<Json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(Json::parse(line));
  return out;
}

std::vector<Json> events_named(const std::vector<Json>& lines, const std::string& name) {
  std::vector<Json> out;
  for (const auto& j : lines)
    if (j.value("event", "") == name) out.push_back(j);
  return out;
}

std::vector<std::string> app_lines(const std::vector<Json>& lines, const std::string& stream) {
  std::vector<std::string> out;
  for (const auto& j : lines)
    if (j["source"] == "app" && j["stream"] == stream) out.push_back(j["line"]);
  return out;
}

AppSpec shell(const std::string& script) {
  AppSpec s;
  s.argv = {"sh", "-c", script};
  s.env = merge_environment(environ, {});
  return s;
}

struct Supervised {
  pid_t pid = -1;
  std::string console;

  // Waits for the supervisor's exit (bounded: a hang is a failure, not a stuck test run).
  int wait() {
    for (int i = 0; i < 6000; ++i) {
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
    ADD_FAILURE() << "the supervisor did not finish in 60 s; console:\n" << read_file(console);
    return -1;
  }
  // Waits until the console holds `text` (bounded).
  bool wait_console(const std::string& text) {
    for (int i = 0; i < 3000; ++i) {
      if (read_file(console).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "no '" << text << "' on the console:\n" << read_file(console);
    return false;
  }
  std::vector<Json> lines() { return json_lines(read_file(console)); }
  ~Supervised() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// Runs the process core in a child process. Exit 200: run() threw (exec_failed is logged).
Supervised supervise(const TempDir& dir, AppSpec spec, RestartOptions restart = {}, int host_fd = -1,
                     size_t buffer = 1 << 20) {
  Supervised s;
  s.console = dir / "console.jsonl";
  s.pid = ::fork();
  if (s.pid == 0) {
    block_supervisor_signals();
    int cfd = ::open(s.console.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    int status = 200;
    {
      LogRouter logs({.buffer_bytes = buffer, .console_fd = cfd, .flush_timeout = std::chrono::seconds(30)});
      if (host_fd >= 0) logs.add_host([host_fd] { return UniqueFd(::fcntl(host_fd, F_DUPFD_CLOEXEC, 3)); });
      try {
        AppProcess app(std::move(spec), restart, logs);
        status = app.run();
      } catch (const Error& e) {
        logs.event("test_error", e.what());
      }
      logs.close(std::chrono::seconds(30));
    }
    ::_exit(status);
  }
  return s;
}

TEST(SupervisorProcess, ExitsWithTheAppsCode) {
  TempDir dir;
  auto s = supervise(dir, shell("exit 7"));
  EXPECT_EQ(s.wait(), 7);
  auto exited = events_named(s.lines(), "app_exited");
  ASSERT_EQ(exited.size(), 1u);
  EXPECT_EQ(exited[0]["status"], 7);
  EXPECT_EQ(exited[0]["code"], 7);
  EXPECT_EQ(events_named(s.lines(), "app_started").size(), 1u);
}

TEST(SupervisorProcess, AKilledAppIs128PlusTheSignal) {
  TempDir dir;
  auto s = supervise(dir, shell("kill -KILL $$"));
  EXPECT_EQ(s.wait(), 128 + SIGKILL);
  auto exited = events_named(s.lines(), "app_exited");
  ASSERT_EQ(exited.size(), 1u);
  EXPECT_EQ(exited[0]["signal"], SIGKILL);
  EXPECT_EQ(exited[0]["status"], 137);
}

TEST(SupervisorProcess, StdoutAndStderrBecomeLogLines) {
  TempDir dir;
  auto s = supervise(dir, shell("echo out-1; echo err-1 >&2; echo out-2; printf 'no-newline'"));
  ASSERT_EQ(s.wait(), 0);
  auto lines = s.lines();
  EXPECT_EQ(app_lines(lines, "stdout"), (std::vector<std::string>{"out-1", "out-2", "no-newline"}));
  EXPECT_EQ(app_lines(lines, "stderr"), (std::vector<std::string>{"err-1"}));
  for (const auto& j : lines) {
    EXPECT_TRUE(j.contains("time")) << j.dump();
    EXPECT_TRUE(j["source"] == "app" || j["source"] == "supervisor") << j.dump();
  }
}

TEST(SupervisorProcess, EnvironmentWorkdirAndNoInheritedDescriptors) {
  TempDir dir;
  AppSpec spec = shell("echo \"$FROM_CONFIG|$PATH_SET|$(pwd)\"; ls /proc/self/fd | wc -l");
  spec.env = merge_environment(environ, {{"FROM_CONFIG", "a b=c"}, {"PATH_SET", "yes"}});
  spec.workdir = dir.path();
  auto s = supervise(dir, spec);
  ASSERT_EQ(s.wait(), 0);
  auto out = app_lines(s.lines(), "stdout");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], "a b=c|yes|" + dir.path());
  // ls sees 0, 1, 2 and its own directory descriptor: nothing of the supervisor's.
  EXPECT_EQ(out[1], "4");
}

TEST(SupervisorProcess, MergeEnvironmentOverridesInOrder) {
  const char* base_c[] = {"A=1", "B=2", "junk", "=x", nullptr};
  auto env = merge_environment(const_cast<char**>(base_c), {{"B", "3"}, {"C", "4"}, {"B", "5"}, {"BAD=", "6"}});
  EXPECT_EQ(env, (std::vector<std::string>{"A=1", "B=5", "C=4"}));
}

TEST(SupervisorProcess, RunsAsTheConfiguredUserWithoutSupplementaryGroups) {
  SN_SKIP_UNLESS_ROOT("setuid/setgid to another user");
  TempDir dir;
  AppSpec spec = shell("id -u; id -g; id -G");
  spec.set_user = true;
  spec.uid = 65534;
  spec.gid = 65533;
  auto s = supervise(dir, spec);
  ASSERT_EQ(s.wait(), 0);
  EXPECT_EQ(app_lines(s.lines(), "stdout"), (std::vector<std::string>{"65534", "65533", "65533"}));
}

TEST(SupervisorProcess, AnAppThatCannotStartIsAnErrorNotARestartLoop) {
  TempDir dir;
  AppSpec spec = shell("exit 0");
  spec.argv = {dir / "no-such-program"};
  auto s = supervise(dir, spec, {.policy = runtime::RestartPolicy::kOnFailure, .max_restarts = 5, .backoff_ms = 1});
  EXPECT_EQ(s.wait(), 200);
  auto failed = events_named(s.lines(), "exec_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0]["line"].get<std::string>().find("No such file"), std::string::npos) << failed[0].dump();
  EXPECT_TRUE(events_named(s.lines(), "app_started").empty());

  AppSpec bad_dir = shell("exit 0");
  bad_dir.workdir = dir / "missing";
  auto s2 = supervise(dir, bad_dir);
  EXPECT_EQ(s2.wait(), 200);
  ASSERT_EQ(events_named(s2.lines(), "exec_failed").size(), 1u);
  EXPECT_NE(events_named(s2.lines(), "exec_failed")[0]["line"].get<std::string>().find("chdir"), std::string::npos);
}

TEST(SupervisorProcess, RestartDelayDoublesUpToTheCap) {
  RestartOptions o{.backoff_ms = 500};
  EXPECT_EQ(restart_delay_ms(o, 0), 500u);
  EXPECT_EQ(restart_delay_ms(o, 1), 1000u);
  EXPECT_EQ(restart_delay_ms(o, 5), 16000u);
  EXPECT_EQ(restart_delay_ms(o, 6), 30000u);
  EXPECT_EQ(restart_delay_ms(o, 4'000'000'000u), 30000u);
  EXPECT_EQ(restart_delay_ms({.backoff_ms = 0}, 10), 0u);
}

TEST(SupervisorProcess, OnFailureRestartsWithBackoffUpToTheLimit) {
  TempDir dir;
  auto s = supervise(dir, shell("exit 3"), {.policy = runtime::RestartPolicy::kOnFailure, .max_restarts = 3, .backoff_ms = 1});
  EXPECT_EQ(s.wait(), 3);
  auto lines = s.lines();
  EXPECT_EQ(events_named(lines, "app_started").size(), 4u);
  auto restarting = events_named(lines, "app_restarting");
  ASSERT_EQ(restarting.size(), 3u);
  EXPECT_EQ(restarting[0]["delay_ms"], 1);
  EXPECT_EQ(restarting[1]["delay_ms"], 2);
  EXPECT_EQ(restarting[2]["delay_ms"], 4);
  EXPECT_EQ(restarting[2]["restarts"], 3);
  EXPECT_EQ(events_named(lines, "restart_limit").size(), 1u);
}

TEST(SupervisorProcess, OnFailureStopsRestartingOnceTheAppSucceeds) {
  TempDir dir;
  std::string counter = dir / "runs";
  auto s = supervise(dir, shell("n=$(cat " + counter + " 2>/dev/null || echo 0); echo $((n+1)) > " + counter + "; [ $n -ge 2 ]"),
                     {.policy = runtime::RestartPolicy::kOnFailure, .max_restarts = 10, .backoff_ms = 1});
  EXPECT_EQ(s.wait(), 0);
  EXPECT_EQ(events_named(s.lines(), "app_started").size(), 3u);
  EXPECT_TRUE(events_named(s.lines(), "restart_limit").empty());
}

TEST(SupervisorProcess, NeverMeansOneRun) {
  TempDir dir;
  auto s = supervise(dir, shell("exit 4"), {.policy = runtime::RestartPolicy::kNever, .max_restarts = 5, .backoff_ms = 1});
  EXPECT_EQ(s.wait(), 4);
  EXPECT_EQ(events_named(s.lines(), "app_started").size(), 1u);
  EXPECT_TRUE(events_named(s.lines(), "app_restarting").empty());
}

TEST(SupervisorProcess, ForwardsSignalsAndSigtermStopsRestarts) {
  TempDir dir;
  auto s = supervise(dir,
                     shell("trap 'echo got-usr1' USR1; trap 'echo got-hup' HUP; trap 'exit 5' TERM; echo ready; "
                           "while :; do sleep 0.01; done"),
                     {.policy = runtime::RestartPolicy::kOnFailure, .max_restarts = 5, .backoff_ms = 1});
  ASSERT_TRUE(s.wait_console("\"ready\""));
  ::kill(s.pid, SIGUSR1);
  ASSERT_TRUE(s.wait_console("got-usr1"));
  ::kill(s.pid, SIGHUP);
  ASSERT_TRUE(s.wait_console("got-hup"));
  ::kill(s.pid, SIGTERM);
  EXPECT_EQ(s.wait(), 5);  // failed, but SIGTERM means stop: no restart
  auto lines = s.lines();
  EXPECT_EQ(events_named(lines, "app_started").size(), 1u);
  EXPECT_TRUE(events_named(lines, "app_restarting").empty());
  auto forwarded = events_named(lines, "signal");
  ASSERT_EQ(forwarded.size(), 3u);
  EXPECT_EQ(forwarded[0]["signal"], SIGUSR1);
  EXPECT_EQ(forwarded[2]["signal"], SIGTERM);
}

// Between a failure and its restart there is no app: SIGTERM ends the wait, with the last status.
TEST(SupervisorProcess, SigtermWhileWaitingToRestartEndsIt) {
  TempDir dir;
  auto s = supervise(dir, shell("exit 6"), {.policy = runtime::RestartPolicy::kOnFailure, .max_restarts = 5, .backoff_ms = 600000});
  ASSERT_TRUE(s.wait_console("app_restarting"));
  ::kill(s.pid, SIGTERM);
  EXPECT_EQ(s.wait(), 6);  // (a 10-minute backoff otherwise: wait() gives up after 60 s)
  EXPECT_EQ(events_named(s.lines(), "app_started").size(), 1u);
}

TEST(SupervisorProcess, AnUnhandledSigtermKillsTheAppAndIsItsStatus) {
  TempDir dir;
  auto s = supervise(dir, shell("echo ready; while :; do sleep 0.01; done"));
  ASSERT_TRUE(s.wait_console("\"ready\""));
  ::kill(s.pid, SIGTERM);
  EXPECT_EQ(s.wait(), 128 + SIGTERM);
}

// An orphan of the app is re-parented to the supervisor (child subreaper) and reaped when it
// ends: the app sees its grandchild's parent, kills it, and waits for it to vanish from /proc
// (a zombie nobody reaps stays there).
TEST(SupervisorProcess, AdoptsAndReapsOrphanedGrandchildren) {
  TempDir dir;
  std::string pidfile = dir / "orphan.pid";
  auto s = supervise(dir, shell("(sleep 30 & echo $! > " + pidfile + "); pid=$(cat " + pidfile +
                                "); echo \"ppid=$(awk '/^PPid/ {print $2}' /proc/$pid/status)\"; kill $pid; "
                                "i=0; while [ -e /proc/$pid ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; "
                                "[ -e /proc/$pid ] && echo zombie && exit 9; echo reaped"));
  pid_t supervisor_pid = s.pid;
  EXPECT_EQ(s.wait(), 0);
  auto out = app_lines(s.lines(), "stdout");
  ASSERT_EQ(out.size(), 2u) << read_file(s.console);
  EXPECT_EQ(out[0], "ppid=" + std::to_string(supervisor_pid));
  EXPECT_EQ(out[1], "reaped");
}

// What is left of the app's process group when it exits does not outlive it.
TEST(SupervisorProcess, TheAppsProcessGroupEndsWithIt) {
  TempDir dir;
  std::string pidfile = dir / "bg.pid";
  auto s = supervise(dir, shell("sleep 30 & echo $! > " + pidfile + "; exit 0"));
  EXPECT_EQ(s.wait(), 0);
  pid_t bg = std::stoi(read_file(pidfile));
  // Killed by the supervisor; its zombie went to init when the supervisor exited.
  bool gone = false;
  for (int i = 0; i < 3000 && !gone; ++i) {
    std::string st = read_file("/proc/" + std::to_string(bg) + "/stat");
    gone = st.empty() || st.find(") Z ") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "the app's background process " << bg << " still runs";
}

// A flood of output into a host that does not read: the app still runs to its end (it never
// waits on the log buffer), the lines that did not fit are dropped and counted, and every line
// is accounted for at the host once it reads: delivered + reported dropped = written.
TEST(SupervisorProcess, ALogFloodNeverBlocksTheAppAndDropsAreCounted) {
  TempDir dir;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  constexpr int kLines = 100000;
  auto s = supervise(dir, shell("seq 1 " + std::to_string(kLines)), {}, sv[1], 4096);
  ::close(sv[1]);
  // The app's exit is logged while the host has read nothing yet.
  ASSERT_TRUE(s.wait_console("app_exited"));
  std::string host;
  char buf[65536];
  for (ssize_t n; (n = ::read(sv[0], buf, sizeof buf)) > 0;) host.append(buf, static_cast<size_t>(n));
  ::close(sv[0]);
  EXPECT_EQ(s.wait(), 0);
  auto lines = json_lines(host);
  auto delivered = app_lines(lines, "stdout");
  uint64_t dropped = 0;
  for (const auto& d : events_named(lines, "logs_dropped")) dropped += d["count"].get<uint64_t>();
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(delivered.size() + dropped, static_cast<size_t>(kLines));
  // In order, none repeated.
  for (size_t i = 1; i < delivered.size(); ++i) ASSERT_LT(std::stoi(delivered[i - 1]), std::stoi(delivered[i]));
  EXPECT_EQ(events_named(lines, "app_exited").size(), 1u);
}

}  // namespace
