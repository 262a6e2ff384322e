// Interrupted writers: a command stopped by SIGINT, SIGTERM or even SIGKILL in the middle of
// writing leaves no file at all (never partial plaintext), and says what happened in one line.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <cstring>
#include <string>
#include <vector>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace shield_nitro;

namespace {

// Starts the CLI with stderr to a file; returns its pid.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& err_path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(SN_CLI)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(SN_CLI, argv.data());
    ::_exit(127);
  }
  return pid;
}

int run_cli(const std::vector<std::string>& args, const std::string& err_path) {
  int st = 0;
  ::waitpid(spawn_cli(args, err_path), &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

class Interrupt : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    ASSERT_EQ(run_cli({"keygen", "-o", path("k")}, path("err.txt")), 0);
    write_file_atomic(path("plain"), os_random().bytes(24 << 20));
    ASSERT_EQ(run_cli({"encrypt", "--key-file", path("k"), "--stream", path("plain"), path("sealed")}, path("err.txt")), 0);
    ASSERT_EQ(::mkfifo(path("in.fifo").c_str(), 0600), 0);
  }
  std::string path(const std::string& name) const { return dir_ / name; }

  // Runs `decrypt` reading from a FIFO, feeds it half the sealed file (so it has decrypted and
  // written megabytes of plaintext), then sends the signal. Returns the wait status.
  int interrupt_decrypt_midway(int sig) {
    pid_t pid = spawn_cli({"decrypt", "--key-file", path("k"), path("in.fifo"), path("out.bin")}, path("err.txt"));
    int fifo = ::open(path("in.fifo").c_str(), O_WRONLY);
    Bytes sealed = read_file(path("sealed"));
    // Writes into a pipe block until the reader takes them: once 12 MiB went in, the command
    // has consumed (and written out) all but the pipe's 64 KiB of it.
    size_t half = sealed.size() / 2, done = 0;
    while (done < half) {
      ssize_t w = ::write(fifo, sealed.data() + done, half - done);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
    EXPECT_EQ(done, half);
    ::kill(pid, sig);
    int st = 0;
    ::waitpid(pid, &st, 0);
    ::close(fifo);
    return st;
  }

  test_support::TempDir dir_;
};

TEST_P(Interrupt, StreamDecryptLeavesNoPlaintextAndSaysSo) {
  int sig = GetParam();
  ::signal(SIGPIPE, SIG_IGN);
  int st = interrupt_decrypt_midway(sig);
  EXPECT_EQ(names_in(dir_.path()), (std::set<std::string>{"k", "plain", "sealed", "in.fifo", "err.txt"}))
      << "an interrupted decrypt left a file behind";
  if (sig == SIGKILL) {
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    return;
  }
  ASSERT_TRUE(WIFEXITED(st)) << "status " << st;
  EXPECT_EQ(WEXITSTATUS(st), 128 + sig);
  std::string want = std::string("shield-nitro: decrypt interrupted by ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                     "; no output was written\n";
  EXPECT_EQ(read_text_file(path("err.txt")), want);
}

INSTANTIATE_TEST_SUITE_P(Signals, Interrupt, ::testing::Values(SIGINT, SIGTERM, SIGKILL),
                         [](const auto& info) { return std::string("SIG") + sigabbrev_np(info.param); });

}  // namespace
