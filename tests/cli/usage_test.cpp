// The CLI's vocabulary, checked over every command: --help teaches and ends with a newline, a
// command given no arguments prints its usage line (exit 2), missing inputs exit 3 naming the
// file, and a PCR of the wrong length gets one wording wherever it is given.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"

namespace fs = std::filesystem;
using namespace shield_nitro;

namespace {

struct Result {
  int code = -1;
  std::string out, err;
};

Result run(const std::vector<std::string>& args) {
  static const fs::path scratch = fs::temp_directory_path() / ("sn-usage-" + hex_encode(os_random().bytes(4)));
  fs::create_directories(scratch);
  std::string out = (scratch / "out").string(), err = (scratch / "err").string();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(::open("/dev/null", O_RDONLY), 0);
    ::dup2(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 1);
    ::dup2(::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 2);
    ::alarm(20);  // no command may hang on bad input
    std::vector<char*> argv{const_cast<char*>(SN_CLI)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(SN_CLI, argv.data());
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  Result r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = read_text_file(out);
  r.err = read_text_file(err);
  return r;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Every leaf command, found by walking the "Subcommands:" sections of --help.
void collect(const std::vector<std::string>& path, std::vector<std::vector<std::string>>* leaves) {
  auto args = path;
  args.push_back("--help");
  Result r = run(args);
  std::istringstream lines(r.out);
  bool in_subs = false;
  std::vector<std::string> subs;
  for (std::string line; std::getline(lines, line);) {
    if (line == "Subcommands:") in_subs = true;
    else if (in_subs && line.size() > 2 && line[0] == ' ' && line[1] == ' ' && line[2] != ' ')
      subs.push_back(words(line)[0]);
    else if (in_subs && line.empty()) in_subs = false;
  }
  if (subs.empty()) leaves->push_back(path);
  for (const auto& s : subs) {
    auto next = path;
    next.push_back(s);
    collect(next, leaves);
  }
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& w : v) s += (s.empty() ? "" : " ") + w;
  return s;
}

TEST(Usage, EveryCommandHelpAndBareInvocation) {
  std::vector<std::vector<std::string>> leaves;
  collect({}, &leaves);
  ASSERT_GT(leaves.size(), 30u) << "the walk found too few commands";
  for (const auto& path : leaves) {
    std::string name = joined(path);
    auto help_args = path;
    help_args.push_back("--help");
    Result help = run(help_args);
    EXPECT_EQ(help.code, 0) << name;
    ASSERT_FALSE(help.out.empty()) << name;
    EXPECT_EQ(help.out.back(), '\n') << name << ": --help must end with a newline";
    EXPECT_NE(help.out.find("Usage: shield-nitro " + name), std::string::npos) << name;
    Result bare = run(path);
    if (bare.code == 3) continue;  // runs without arguments, and needs an environment (e.g. /dev/nsm)
    EXPECT_EQ(bare.code, 2) << name << ": " << bare.err;
    EXPECT_EQ(bare.err.rfind("shield-nitro: ", 0), 0u) << name << ": " << bare.err;
    EXPECT_NE(bare.err.find("\nUsage: shield-nitro " + name), std::string::npos) << name << ": " << bare.err;
  }
}

TEST(Usage, UnknownOptionsGetTheUsageLine) {
  Result r = run({"encrypt", "--no-such-option", "a", "b"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "shield-nitro: The following argument was not expected: --no-such-option\n"
            "Usage: shield-nitro encrypt [OPTIONS] IN OUT\n"
            "Run 'shield-nitro encrypt --help' for details and examples.\n");
}

TEST(Usage, MissingInputsExitThreeNamingTheFile) {
  const std::string pcr0 = "0=" + std::string(96, 'a');
  std::vector<std::vector<std::string>> cases = {
      {"decrypt", "--key-file", "/nonexistent/k", "/nonexistent/in", "/tmp/never-written"},
      {"attest", "verify", "/nonexistent/doc"},
      {"attest", "show", "/nonexistent/doc"},
      {"eif", "describe", "/nonexistent/app.eif"},
      {"eif", "pcr", "--input", "/nonexistent/app.eif"},
      {"policy", "--role-arn", "arn:aws:iam::111122223333:role/r", "--eif", "/nonexistent/app.eif"},
      {"sim", "run", "/nonexistent/app.eif", "--state", "/nonexistent/state", "--cid", "16"},
      {"eif", "rootfs", "--binary", "/nonexistent/bin", "-o", "/nonexistent/rootfs"},
  };
  for (const auto& c : cases) {
    Result r = run(c);
    EXPECT_EQ(r.code, 3) << joined(c) << ": " << r.err;
    EXPECT_NE(r.err.find("/nonexistent/"), std::string::npos) << joined(c) << ": " << r.err;
  }
}

TEST(Usage, OneWordingForAPcrOfTheWrongLength) {
  const std::string want = "PCR0 must be 48 bytes (96 hex digits, SHA-384), got 2 bytes";
  std::vector<std::vector<std::string>> cases = {
      {"policy", "--role-arn", "arn:aws:iam::111122223333:role/r", "--pcr", "0=abcd"},
      {"attest", "verify", "--pcr", "0=abcd", "/dev/null"},
      {"parent", "attest", "--enclave", "unix:/nonexistent/s", "--pcr", "0=abcd"},
      {"nsm-sim", "init", "--pcr", "0=abcd", "/nonexistent/nsm"},
  };
  for (const auto& c : cases) {
    Result r = run(c);
    EXPECT_EQ(r.code, 2) << joined(c) << ": " << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << joined(c) << ": " << r.err;
  }
}

// One version: CMake's project(VERSION) reaches the CLI, and the Python SDK says the same.
TEST(Usage, OneVersionEverywhere) {
  Result r = run({"--version"});
  ASSERT_EQ(r.code, 0);
  std::string v = r.out.substr(0, r.out.find('\n'));
  std::string cmake = read_text_file(SN_SOURCE_DIR "/CMakeLists.txt");
  EXPECT_NE(cmake.find("project(shield_nitro VERSION " + v + " "), std::string::npos) << v;
  EXPECT_NE(read_text_file(SN_SOURCE_DIR "/python/pyproject.toml").find("version = \"" + v + "\""), std::string::npos);
  EXPECT_NE(read_text_file(SN_SOURCE_DIR "/python/shield_nitro/__init__.py").find("__version__ = \"" + v + "\""),
            std::string::npos);
}

}  // namespace
