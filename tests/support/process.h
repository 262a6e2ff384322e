// Child processes for the end-to-end tests: the built CLI (SN_CLI) started with posix_spawn,
// its output in a log file, stopped with SIGTERM (then SIGKILL) when dropped.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sn_test {

struct RunResult {
  int status = -1;   // exit code, or -1 when killed by a signal
  std::string out;   // stdout
  std::string err;   // stderr
};

class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log) : name_(argv.size() > 1 ? argv[1] : argv[0]), log_(log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed");
  }
  ~Process() { stop(); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool running() {
    if (pid_ <= 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  // Waits (up to 30 s) until ready() or the process exits; throws with its log on failure.
  void wait_ready(const std::function<bool()>& ready) {
    for (int i = 0; i < 600; ++i) {
      if (ready()) return;
      if (!running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (ready()) return;
    throw std::runtime_error(name_ + " did not start; its log (" + log_ + ") has the reason");
  }

  // SIGKILL at once and reap (a crash mid-request, as in kill -9).
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string name_, log_;
  pid_t pid_ = -1;
};

// Runs argv to completion, capturing stdout and stderr (through files: no pipe deadlocks),
// with stdin from `stdin_path` (or /dev/null).
RunResult run(const std::vector<std::string>& argv, const std::string& scratch_dir, const std::string& stdin_path = "/dev/null");

// A file's whole text (a child's log); empty while the file does not exist yet.
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A TCP port on 127.0.0.1 that nothing listens on right now (for a child to listen on).
inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error("no free port");
  return ntohs(a.sin_port);
}

}  // namespace sn_test
