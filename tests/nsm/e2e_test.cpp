// End to end through the CLI: nsm-sim init, nsm-sim serve as a real process, attest request.
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/file_io.h"
#include "sim_test_util.h"

extern char** environ;

using namespace shield_nitro;
using nsm_test::TempDir;

namespace {

struct CliResult {
  int status;
  std::string out;
};

// Runs the CLI (args and env as shell words); captures stdout and stderr together.
CliResult cli(const std::string& args, const std::string& env = "") {
  std::string cmd = "env -u SHIELD_NITRO_NSM " + env + " " + std::string(SN_CLI) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

bool can_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// `nsm-sim serve DIR` as a child process; killed and reaped on destruction.
class ServeProcess {
 public:
  explicit ServeProcess(const std::string& dir) : sock_(dir + "/nsm.sock") {
    std::vector<std::string> args = {SN_CLI, "nsm-sim", "serve", dir};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, SN_CLI, nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
    for (int i = 0; i < 500 && pid_ > 0 && !can_connect(sock_); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool ready() const { return pid_ > 0 && can_connect(sock_); }
  // Sends sig and returns the exit status (-1 if it did not exit normally).
  int stop(int sig) {
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

 private:
  std::string sock_;
  pid_t pid_ = -1;
};

const std::string kPcr0(96, 'a');

}  // namespace

TEST(NsmCli, InitServeRequestStop) {
  TempDir dir;
  CliResult init = cli("nsm-sim init " + dir.path() + " --pcr 0=" + kPcr0 + " --pcr 3=" + std::string(96, '3') + " --json");
  ASSERT_EQ(init.status, 0) << init.out;
  EXPECT_NE(init.out.find("\"module_id\""), std::string::npos);
  ASSERT_TRUE(std::filesystem::exists(dir / "root.pem"));

  ServeProcess serve(dir.path());
  ASSERT_TRUE(serve.ready());

  CliResult req = cli("attest request --nsm sim:" + dir.path() + " --nonce 00112233 --user-data 75 -o " + (dir / "doc.cbor"));
  ASSERT_EQ(req.status, 0) << req.out;
  Bytes doc = read_file(dir / "doc.cbor");
  auto sign1 = cose::decode_sign1(doc);
  auto payload = cbor::decode(sign1.payload, cbor::Limits::strict());
  EXPECT_EQ(payload.find("nonce")->as_bytes(), hex_decode("00112233"));
  EXPECT_EQ(payload.find("user_data")->as_bytes(), Bytes{0x75});
  EXPECT_TRUE(payload.find("public_key")->is_null());
  EXPECT_EQ(payload.find("pcrs")->find_int(0)->as_bytes(), hex_decode(kPcr0));
  EXPECT_EQ(payload.find("pcrs")->find_int(3)->as_bytes(), hex_decode(std::string(96, '3')));
  std::vector<Bytes> bundle;
  for (const auto& c : payload.find("cabundle")->as_array()) bundle.push_back(c.as_bytes());
  Bytes root = nsm_test::pem_file_to_der(dir / "root.pem");
  EXPECT_EQ(bundle[0], root);
  time_t ts = static_cast<time_t>(payload.find("timestamp")->as_uint() / 1000);
  EXPECT_EQ(nsm_test::verify_chain(payload.find("certificate")->as_bytes(), bundle, root, ts), 0);

  CliResult desc = cli("nsm describe --nsm sim:" + dir.path() + " --json");
  ASSERT_EQ(desc.status, 0) << desc.out;
  EXPECT_NE(desc.out.find("\"SHA384\""), std::string::npos);
  CliResult pcr = cli("nsm describe-pcr 0 --nsm sim:" + dir.path());
  ASSERT_EQ(pcr.status, 0) << pcr.out;
  EXPECT_NE(pcr.out.find(kPcr0), std::string::npos);
  EXPECT_NE(pcr.out.find("locked"), std::string::npos);

  // The launcher's variable selects the simulator for the default --nsm.
  CliResult env = cli("nsm describe-pcr 3 --json", "SHIELD_NITRO_NSM=sim:" + dir.path());
  ASSERT_EQ(env.status, 0) << env.out;
  EXPECT_NE(env.out.find(std::string(96, '3')), std::string::npos) << env.out;

  EXPECT_EQ(serve.stop(SIGTERM), 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "nsm.sock"));
  CliResult gone = cli("attest request --nsm sim:" + dir.path() + " -o " + (dir / "doc2.cbor"));
  EXPECT_EQ(gone.status, 3) << gone.out;
  EXPECT_NE(gone.out.find("nsm-sim serve"), std::string::npos) << gone.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "doc2.cbor"));
}

TEST(NsmCli, RefusalsAndUsage) {
  TempDir dir;
  CliResult no_pcr0 = cli("nsm-sim init " + (dir / "a"));
  EXPECT_EQ(no_pcr0.status, 2) << no_pcr0.out;
  EXPECT_NE(no_pcr0.out.find("--debug"), std::string::npos) << no_pcr0.out;
  EXPECT_EQ(cli("nsm-sim init " + (dir / "b") + " --pcr 16=" + kPcr0).status, 2);
  EXPECT_EQ(cli("nsm-sim init " + (dir / "c") + " --pcr 0=abcd").status, 2);
  EXPECT_EQ(cli("nsm-sim init " + (dir / "d") + " --debug --pcr 0=" + kPcr0).status, 2);
  CliResult debug = cli("nsm-sim init " + (dir / "e") + " --debug");
  EXPECT_EQ(debug.status, 0) << debug.out;
  // No device and no simulator selected: a clear environment error, never a fallback.
  CliResult dev = cli("attest request --nsm " + (dir / "no-such-nsm") + " -o " + (dir / "doc"));
  EXPECT_EQ(dev.status, 3) << dev.out;
  EXPECT_NE(dev.out.find("not in an enclave"), std::string::npos) << dev.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "doc"));
  CliResult serve_uninit = cli("nsm-sim serve " + (dir / "f"));
  EXPECT_EQ(serve_uninit.status, 3) << serve_uninit.out;
  EXPECT_EQ(cli("attest request --nsm sim:" + (dir / "e") + " --nonce xyz -o " + (dir / "doc")).status, 2);
}

TEST(NsmCli, SigintAlsoStopsCleanly) {
  TempDir dir;
  ASSERT_EQ(cli("nsm-sim init " + dir.path() + " --debug").status, 0);
  ServeProcess serve(dir.path());
  ASSERT_TRUE(serve.ready());
  EXPECT_EQ(serve.stop(SIGINT), 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "nsm.sock"));
}

TEST(NsmCli, AListenFailureIsOneLineNamingTheSocketAndExitsThree) {
  TempDir dir;
  ASSERT_EQ(cli("nsm-sim init " + dir.path() + " --debug").status, 0);
  auto one_line = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n') == 1; };
  std::string sock = "unix:" + dir.path() + "/nsm.sock";
  {
    ServeProcess serve(dir.path());
    ASSERT_TRUE(serve.ready());
    CliResult second = cli("nsm-sim serve " + dir.path());
    EXPECT_EQ(second.status, 3) << second.out;
    EXPECT_TRUE(one_line(second.out)) << second.out;
    EXPECT_NE(second.out.find("cannot listen on " + sock + ": a simulated NSM is already serving there"),
              std::string::npos) << second.out;
    EXPECT_TRUE(serve.ready());  // the first one keeps its socket
  }
  std::filesystem::remove(dir / "nsm.sock");
  std::filesystem::create_directory(dir / "nsm.sock");
  CliResult blocked = cli("nsm-sim serve " + dir.path());
  EXPECT_EQ(blocked.status, 3) << blocked.out;
  EXPECT_TRUE(one_line(blocked.out)) << blocked.out;
  EXPECT_NE(blocked.out.find("cannot listen on " + sock + ": exists and is not a socket"), std::string::npos)
      << blocked.out;
}
