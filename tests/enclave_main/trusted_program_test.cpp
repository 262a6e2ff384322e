// shield-nitro-enclave is what an EIF measures and a KMS policy trusts. These tests read its
// symbol table: no simulator, development server, builder, parent SDK or CLI code may be linked
// into it. The same scan over the full CLI must find them (so the scan itself can fail).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace {

std::vector<std::string> defined_symbols(const std::string& binary) {
  std::string cmd = "nm -C --defined-only " + binary + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  std::vector<std::string> out;
  char line[4096];
  while (p && std::fgets(line, sizeof line, p.get())) out.emplace_back(line);
  return out;
}

// Code that must never be in the trusted program, by namespace or class.
const std::vector<std::pair<std::string, std::regex>>& forbidden() {
  static const std::vector<std::pair<std::string, std::regex>> list = {
      {"NSM simulator", std::regex(R"(shield_nitro::nsm::(SimulatedNsm|SimulatorServer|SimulatorTransport|detail::SimulatorCa)\b)")},
      {"kms-local", std::regex(R"(shield_nitro::kms::(LocalKms|LocalStore|HttpServer|validate_key_policy|evaluate_key_policy|make_recipient_verifier)\b)")},
      {"KMS envelope builder", std::regex(R"(shield_nitro::kms::build_recipient_envelope\b)")},
      {"Nitro simulator", std::regex(R"(shield_nitro::sim::)")},
      {"EIF builder", std::regex(R"(shield_nitro::eif::)")},
      {"parent SDK", std::regex(R"(shield_nitro::parent::)")},
      {"CLI", std::regex(R"(shield_nitro::cli::)")},
      {"attestation verifier", std::regex(R"(shield_nitro::attest::)")},
      {"host agent", std::regex(R"(shield_nitro::host::)")},
  };
  return list;
}

std::vector<std::string> offenders(const std::string& binary) {
  std::vector<std::string> found;
  for (const auto& line : defined_symbols(binary))
    for (const auto& [what, re] : forbidden())
      if (std::regex_search(line, re)) found.push_back(what + ": " + line);
  return found;
}

TEST(TrustedProgram, LinksNoSimulatorDevServerBuilderOrParentCode) {
  auto symbols = defined_symbols(SN_ENCLAVE);
  ASSERT_GT(symbols.size(), 1000u) << "nm read no symbols from " << SN_ENCLAVE;
  std::vector<std::string> found = offenders(SN_ENCLAVE);
  std::string shown;
  for (size_t i = 0; i < found.size() && i < 20; ++i) shown += found[i];
  EXPECT_TRUE(found.empty()) << found.size() << " forbidden symbols in " << SN_ENCLAVE << ", e.g.:\n" << shown;
}

TEST(TrustedProgram, TheScanFindsThemInTheFullCli) {
  std::vector<std::string> found = offenders(SN_CLI);
  for (const char* what : {"NSM simulator", "kms-local", "Nitro simulator", "EIF builder", "parent SDK", "host agent"}) {
    bool seen = false;
    for (const auto& f : found) seen = seen || f.rfind(what, 0) == 0;
    EXPECT_TRUE(seen) << "the scan does not recognize " << what << " code in " << SN_CLI;
  }
}

// Every shared library the program needs is packed into the image and trusted with it: only
// these (no libcurl and its tree: GnuTLS, Kerberos, LDAP, libssh2...). KMS goes over OpenSSL.
TEST(TrustedProgram, NeedsOnlyOpensslYamlCppAndTheCRuntime) {
  std::string cmd = "readelf -d " + std::string(SN_ENCLAVE) + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  std::vector<std::string> needed;
  char line[4096];
  std::regex re(R"(\(NEEDED\)\s+Shared library: \[([^\]]+)\])");
  while (p && std::fgets(line, sizeof line, p.get())) {
    std::cmatch m;
    if (std::regex_search(line, m, re)) needed.push_back(m[1]);
  }
  const std::vector<std::string> allowed = {"libssl.so.3", "libcrypto.so.3", "libyaml-cpp.so.0.7", "libstdc++.so.6",
                                            "libm.so.6",   "libgcc_s.so.1",  "libc.so.6",       "ld-linux-x86-64.so.2",
                                            "ld-linux-aarch64.so.1"};
  ASSERT_FALSE(needed.empty()) << "readelf found no DT_NEEDED in " << SN_ENCLAVE;
  for (const auto& n : needed)
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), n), allowed.end()) << SN_ENCLAVE << " needs " << n;
}

// The program fails to start in one line, exit 3 (here: no NSM).
TEST(TrustedProgram, AStartFailureIsOneLineExitThree) {
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 2);
    ::execl(SN_ENCLAVE, SN_ENCLAVE, "serve", "--listen", "unix:/nonexistent-folder/x.sock", "--nsm", "/nonexistent/nsm",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 3) << err;
  EXPECT_EQ(err.rfind("shield-nitro-enclave: ", 0), 0u) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

// Keys and plaintext live in this process: it makes itself non-dumpable (no core dump, no
// ptrace or /proc/PID/mem by its user) before anything else. The kernel shows it in who owns
// the files in /proc/PID: root for a non-dumpable process, else the process's own user.
TEST(TrustedProgram, IsNotDumpable) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the check runs the program as another user";
  const uid_t nobody = 65534;
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) ::_exit(126);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 2);
    // Waits up to 20 s for a simulated NSM that never comes: alive long enough to look at.
    ::execl(SN_ENCLAVE, SN_ENCLAVE, "serve", "--listen", "unix:/nonexistent-folder/x.sock", "--nsm",
            "sim:/nonexistent-nsm", "--nsm-wait", "20", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const std::string proc = "/proc/" + std::to_string(pid);
  struct stat st{};
  bool execed = false;
  for (int i = 0; i < 200 && !execed; ++i) {  // until the child runs the program (its exe link changes)
    std::error_code ec;
    execed = std::filesystem::read_symlink(proc + "/exe", ec).filename() == "shield-nitro-enclave";
    if (!execed) ::usleep(10000);
  }
  ::usleep(100000);  // past main's first lines
  ASSERT_EQ(::stat((proc + "/status").c_str(), &st), 0);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(execed) << "the program did not start";
  EXPECT_EQ(st.st_uid, 0u) << "/proc/PID/status belongs to uid " << st.st_uid << ": the program is dumpable";
}

}  // namespace
