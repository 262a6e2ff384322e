// `shield-nitro-enclave serve` as a real process: servers that cannot start, and a simulated NSM that is
// still starting.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "support/process.h"
#include "support/temp_dir.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/net/endpoint.h"

using namespace shield_nitro;

namespace {

using test_support::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the CLI to completion; its stdout and stderr together.
sn_test::RunResult cli(std::vector<std::string> args, const std::string& dir) {
  args.insert(args.begin(), SN_CLI);
  sn_test::RunResult r = sn_test::run(args, dir);
  r.out += r.err;
  return r;
}

// Runs the enclave program to completion; its stdout and stderr together.
sn_test::RunResult enclave_program(std::vector<std::string> args, const std::string& dir) {
  args.insert(args.begin(), SN_ENCLAVE);
  sn_test::RunResult r = sn_test::run(args, dir);
  r.out += r.err;
  return r;
}

bool can_connect(const std::string& path) {
  try {
    net::connect(net::Endpoint::unix_path(path), std::chrono::milliseconds(200));
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::vector<std::string> serve_args(const std::string& listen, const std::string& nsm_dir) {
  return {"serve", "--listen", listen, "--nsm", "sim:" + nsm_dir, "--kms-endpoint", "https://127.0.0.1:1"};
}

}  // namespace

TEST(ServeCli, ListenFailuresAreOneLineAndExit3) {
  TempDir d("sn-serve");
  ASSERT_EQ(cli({"nsm-sim", "init", "--debug", d.path() + "/nsm"}, d.path()).status, 0);
  sn_test::Process sim({SN_CLI, "nsm-sim", "serve", d.path() + "/nsm"}, d.path() + "/sim.log");
  sim.wait_ready([&] { return can_connect(d.path() + "/nsm/nsm.sock"); });

  net::UniqueFd taken = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  net::Endpoint port = net::bound_endpoint(taken.get(), net::Endpoint::parse("tcp://127.0.0.1:0"));
  const std::pair<std::string, std::string> cases[] = {
      {port.to_string(), "address already in use"},
      {"unix:" + d.path() + "/missing/enc.sock", "no such file or directory"},
  };
  for (const auto& [listen, reason] : cases) {
    sn_test::RunResult r = enclave_program(serve_args(listen, d.path() + "/nsm"), d.path());
    EXPECT_EQ(r.status, 3) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find(listen), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(reason), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("terminate"), std::string::npos) << r.out;
  }
}

TEST(ServeCli, WaitsForASimulatedNsmThatIsStillStarting) {
  TempDir d("sn-serve");
  ASSERT_EQ(cli({"nsm-sim", "init", "--debug", d.path() + "/nsm"}, d.path()).status, 0);
  std::string log = d.path() + "/serve.log", sock = d.path() + "/enc.sock";
  sn_test::Process serve({SN_ENCLAVE, "serve", "--listen", "unix:" + sock, "--nsm", "sim:" + d.path() + "/nsm",
                          "--nsm-wait", "60", "--kms-endpoint", "https://127.0.0.1:1", "--artifact-workers", "3"},
                         log);
  // The simulator starts only once the service says it waits for it.
  serve.wait_ready([&] { return slurp(log).find("waiting up to 60 s for the simulated NSM") != std::string::npos; });
  EXPECT_FALSE(can_connect(sock));
  sn_test::Process sim({SN_CLI, "nsm-sim", "serve", d.path() + "/nsm"}, d.path() + "/sim.log");
  serve.wait_ready([&] { return can_connect(sock); });
  net::Client client(net::Endpoint::unix_path(sock));
  EXPECT_TRUE(client.request("describe").ok);
  EXPECT_NE(slurp(log).find("the simulated NSM answered after"), std::string::npos) << slurp(log);
  EXPECT_NE(slurp(log).find("; 3 artifact workers)"), std::string::npos) << slurp(log);  // --artifact-workers 3

  // Without a simulator, the wait ends and so does the service: one line, exit 3.
  TempDir none("sn-serve");
  std::vector<std::string> args = serve_args("unix:" + none.path() + "/enc.sock", none.path() + "/nsm");
  args.insert(args.end(), {"--nsm-wait", "1"});
  sn_test::RunResult r = enclave_program(args, none.path());
  EXPECT_EQ(r.status, 3) << r.out;
  EXPECT_NE(r.out.find("waiting up to 1 s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no simulated NSM is serving"), std::string::npos) << r.out;
}
