#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/net/allowlist.h"
#include "shield_nitro/net/proxy.h"
#include "support/echo_server.h"

extern char** environ;

using namespace shield_nitro;
using namespace sn_test;
using net::Allowlist;

namespace {

void expect_bad(const std::string& yaml, const std::string& why) {
  try {
    Allowlist::parse(yaml);
    ADD_FAILURE() << "parsed:\n" << yaml << "\nexpected: " << why;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kFormat);
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

net::ProxyOptions options_to(const TempDir& tmp, uint16_t port) {
  net::ProxyOptions o;
  o.listen = net::Endpoint::unix_path(tmp.sock("proxy.sock"));
  o.target_host = "127.0.0.1";
  o.target_port = port;
  return o;
}

}  // namespace

TEST(Allowlist, ParsesTheVsockProxyFormat) {
  Allowlist a = Allowlist::parse(
      "# shipped default, abridged\n"
      "allowlist:\n"
      "- {address: kms.us-east-1.amazonaws.com, port: 443}\n"
      "- {address: \"kms-fips.us-east-1.amazonaws.com\", port: 443}   # FIPS\n"
      "\n"
      "- address: 'kms.eu-west-1.amazonaws.com'\n"
      "  port: 443\n"
      "- {port: 8443, address: 127.0.0.1}\n");
  ASSERT_EQ(a.entries().size(), 4u);
  EXPECT_EQ(a.entries()[1].address, "kms-fips.us-east-1.amazonaws.com");
  EXPECT_EQ(a.entries()[2].address, "kms.eu-west-1.amazonaws.com");
  EXPECT_EQ(a.entries()[3].port, 8443);
  EXPECT_TRUE(a.allows("kms.us-east-1.amazonaws.com", 443, false));
  EXPECT_TRUE(a.allows("KMS.US-EAST-1.amazonaws.com", 443, false));
  EXPECT_FALSE(a.allows("kms.us-east-1.amazonaws.com", 444, false));
  EXPECT_FALSE(a.allows("kms.us-east-2.amazonaws.com", 443, false));
  EXPECT_FALSE(a.allows("*.amazonaws.com", 443, false));
  EXPECT_TRUE(Allowlist::parse("allowlist: []\n").entries().empty());
  EXPECT_TRUE(Allowlist::parse("allowlist:\n").entries().empty());
}

TEST(Allowlist, ResolvesNamesToTheSameAddress) {
  Allowlist a = Allowlist::parse("allowlist:\n- {address: localhost, port: 443}\n");
  EXPECT_TRUE(a.allows("127.0.0.1", 443, true));
  EXPECT_FALSE(a.allows("127.0.0.1", 443, false));
  EXPECT_FALSE(a.allows("127.0.0.1", 80, true));
  EXPECT_FALSE(a.allows("no-such-host.invalid", 443, true));
}

TEST(Allowlist, RejectsAnythingOutsideTheSubset) {
  expect_bad("", "no 'allowlist:'");
  expect_bad("allow:\n", "line 1: expected 'allowlist:'");
  expect_bad("  allowlist:\n", "line 1: expected 'allowlist:' at the start");
  expect_bad("allowlist:\n- {address: a.com}\n", "line 2: entry without 'port'");
  expect_bad("allowlist:\n- {port: 443}\n", "entry without 'address'");
  expect_bad("allowlist:\n- {address: a.com, port: 0}\n", "port must be a number 1-65535");
  expect_bad("allowlist:\n- {address: a.com, port: 65536}\n", "port must be");
  expect_bad("allowlist:\n- {address: a.com, port: 44x}\n", "port must be");
  expect_bad("allowlist:\n- {address: a.com, port: 443, proto: tcp}\n", "unknown key 'proto'");
  expect_bad("allowlist:\n- {address: a.com, address: b.com, port: 1}\n", "duplicate key 'address'");
  expect_bad("allowlist:\n- {address: a.com, port: 443\n", "must end with '}'");
  expect_bad("allowlist:\n- {address: a.com, port: 443,}\n", "trailing ','");
  expect_bad("allowlist:\n- {address: a.com port: 443}\n", "unexpected ' '");
  expect_bad("allowlist:\n- {address: , port: 443}\n", "missing value after 'address:'");
  expect_bad("allowlist:\n- {address: \"\", port: 443}\n", "not a host name");
  expect_bad("allowlist:\n- {address: \"a.com, port: 443}\n", "unterminated");
  expect_bad("allowlist:\n- {address: a/b, port: 443}\n", "not a host name");
  expect_bad("allowlist:\n\t- {address: a.com, port: 443}\n", "tabs");
  expect_bad("allowlist:\n- {address: a.com, port: 443}\n  - {address: b.com, port: 443}\n", "same indentation");
  expect_bad("allowlist:\n- {address: a.com, port: 443}\nother: 1\n", "line 3: expected a list item");
  expect_bad("allowlist:\n-\n", "empty list item");
  expect_bad("allowlist:\n- address: a.com\nport: 443\n", "line 3");
  expect_bad("allowlist: []\n- {address: a.com, port: 443}\n", "after 'allowlist: []'");
  expect_bad("allowlist:\n- {address: a.com, port:443}\n", "expected 'key: value'");
}

TEST(Allowlist, AMalformedFileIsAUsageErrorNamingIt) {
  TempDir tmp;
  std::string path = tmp.path() + "/bad.yaml";
  std::ofstream(path) << "allowlist:\n- {address: a.com}\n";
  try {
    Allowlist::load(path);
    ADD_FAILURE() << "a malformed allowlist loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUsage);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  try {
    Allowlist::load(tmp.path() + "/missing.yaml");
    ADD_FAILURE() << "a missing allowlist loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);  // the environment, not the file's content
  }
}

TEST(Proxy, RelaysBothWaysWithHalfClose) {
  EchoServer echo;
  TempDir tmp;
  net::Proxy proxy(options_to(tmp, echo.port()));
  proxy.start();
  Bytes data = pattern(300 * 1024, 7);
  EXPECT_EQ(round_trip(proxy.endpoint(), data), data);
  // Half-close the other way round: the proxy keeps relaying after the target's FIN arrives
  // only once the client's FIN went through; an empty exchange still completes.
  EXPECT_EQ(round_trip(proxy.endpoint(), {}), Bytes{});
  proxy.stop();
  net::ProxyStats st = proxy.stats();
  EXPECT_EQ(st.connections, 2u);
  EXPECT_EQ(st.bytes_up, data.size());
  EXPECT_EQ(st.bytes_down, data.size());
}

TEST(Proxy, RefusesTargetsMissingFromTheAllowlist) {
  TempDir tmp;
  net::ProxyOptions o = options_to(tmp, 443);
  o.target_host = "kms.us-east-2.amazonaws.com";
  o.allowlist = Allowlist::parse("allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n");
  try {
    net::Proxy p(o);
    ADD_FAILURE() << "proxy accepted an unlisted target";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kPolicy);
    EXPECT_NE(std::string(e.what()).find("not in the allowlist"), std::string::npos);
  }
  o.target_host = "kms.us-east-1.amazonaws.com";
  o.target_port = 444;
  EXPECT_THROW(net::Proxy{o}, Error);
}

TEST(Proxy, ManyConcurrentConnections) {
  EchoServer echo;
  TempDir tmp;
  net::Proxy proxy(options_to(tmp, echo.port()));
  proxy.start();
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i)
    clients.emplace_back([&, i] {
      Bytes data = pattern(64 * 1024 + static_cast<size_t>(i), static_cast<uint8_t>(i));
      if (round_trip(proxy.endpoint(), data) == data) good++;
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(good, 64);
  proxy.stop();
  EXPECT_EQ(proxy.stats().connections, 64u);
}

TEST(Proxy, RecordsEveryRelayedByte) {
  EchoServer echo;
  TempDir tmp;
  std::string rec = tmp.path() + "/rec";
  std::filesystem::create_directory(rec);
  net::ProxyOptions o = options_to(tmp, echo.port());
  o.record_dir = rec;
  net::Proxy proxy(o);
  proxy.start();
  Bytes data = pattern(100000, 3);
  EXPECT_EQ(round_trip(proxy.endpoint(), data), data);
  proxy.stop();
  EXPECT_EQ(read_file(rec + "/conn-1.up"), data);
  EXPECT_EQ(read_file(rec + "/conn-1.down"), data);
}

TEST(Proxy, UnreachableTargetClosesTheClient) {
  uint16_t dead_port;
  {
    UniqueFd l = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
    dead_port = static_cast<uint16_t>(net::bound_endpoint(l.get(), net::Endpoint::parse("tcp://127.0.0.1:0")).port);
  }
  TempDir tmp;
  net::Proxy proxy(options_to(tmp, dead_port));
  proxy.start();
  UniqueFd fd = net::connect(proxy.endpoint());
  EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(20)));
  proxy.stop();
  EXPECT_EQ(proxy.stats().failed_connects, 1u);
}

TEST(Proxy, AListenFailureThrowsAndLeavesNothingToStop) {
  TempDir tmp;
  // A folder that does not exist, and a TCP port another socket holds.
  net::ProxyOptions o = options_to(tmp, 9);
  o.listen = net::Endpoint::unix_path(tmp.path() + "/missing/p.sock");
  {
    net::Proxy proxy(o);
    try {
      proxy.start();
      ADD_FAILURE() << "listened in a missing folder";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kIo);
      EXPECT_NE(std::string(e.what()).find(tmp.path() + "/missing/p.sock"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("no such file or directory"), std::string::npos) << e.what();
    }
  }  // the destructor has nothing to join (it used to terminate the process here)
  UniqueFd taken = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  o.listen = net::bound_endpoint(taken.get(), net::Endpoint::parse("tcp://127.0.0.1:0"));
  net::Proxy proxy(o);
  try {
    proxy.start();
    ADD_FAILURE() << "listened on a taken port";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);
    EXPECT_NE(std::string(e.what()).find(o.listen.to_string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("address already in use"), std::string::npos) << e.what();
  }
  proxy.stop();  // still harmless
}

namespace {
// Runs the CLI with args; returns the child's pid. stderr goes to err_path.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& err_path) {
  std::vector<char*> argv;
  std::string cli = SN_CLI;
  argv.push_back(cli.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, cli.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
}  // namespace

TEST(ProxyCli, RelaysLogsAndStopsOnSigterm) {
  EchoServer echo;
  TempDir tmp;
  std::string sock = tmp.sock("p.sock"), err = tmp.path() + "/err.log", allow = tmp.path() + "/allow.yaml";
  std::ofstream(allow) << "allowlist:\n- {address: 127.0.0.1, port: " << echo.port() << "}\n";
  pid_t pid = spawn_cli({"proxy", "--listen", "unix:" + sock, "--to", "127.0.0.1:" + std::to_string(echo.port()),
                         "--allowlist", allow},
                        err);
  bool up = false;
  for (int i = 0; i < 2000 && !up; ++i) {
    try {
      net::connect(net::Endpoint::unix_path(sock), std::chrono::milliseconds(100));
      up = true;
    } catch (const Error&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ASSERT_TRUE(up);
  Bytes data = pattern(5000, 1);
  EXPECT_EQ(round_trip(net::Endpoint::unix_path(sock), data), data);
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 0);
  std::string log = read_text_file(err);
  EXPECT_NE(log.find("open: unix:" + sock), std::string::npos) << log;
  EXPECT_NE(log.find("closed: up 5000 bytes, down 5000 bytes"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(sock));
}

TEST(ProxyCli, RefusesToStartForAnUnlistedTarget) {
  TempDir tmp;
  std::string err = tmp.path() + "/err.log", allow = tmp.path() + "/allow.yaml";
  std::ofstream(allow) << "allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n";
  pid_t pid = spawn_cli({"proxy", "--listen", "unix:" + tmp.sock(), "--to", "kms.us-east-2.amazonaws.com:443",
                         "--allowlist", allow},
                        err);
  EXPECT_EQ(wait_exit(pid), 1);
  EXPECT_NE(read_text_file(err).find("not in the allowlist"), std::string::npos);
  std::ofstream(allow) << "allowlist:\n  bogus\n";
  pid = spawn_cli({"proxy", "--listen", "unix:" + tmp.sock(), "--to", "a:1", "--allowlist", allow}, err);
  EXPECT_EQ(wait_exit(pid), 2);  // a malformed allowlist is the operator's usage error, not a refusal
  EXPECT_NE(read_text_file(err).find("allowlist line 2"), std::string::npos);
  pid = spawn_cli({"proxy", "--listen", "unix:" + tmp.sock(), "--to", "nohostport"}, err);
  EXPECT_EQ(wait_exit(pid), 2);
}

TEST(ProxyCli, AListenFailureIsOneLineNamingTheEndpointAndExitsThree) {
  TempDir tmp;
  std::string err = tmp.path() + "/err.log", missing = "unix:" + tmp.path() + "/missing/p.sock";
  pid_t pid = spawn_cli({"proxy", "--listen", missing, "--to", "127.0.0.1:9"}, err);
  EXPECT_EQ(wait_exit(pid), 3);
  std::string text = read_text_file(err);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find(missing), std::string::npos) << text;
  EXPECT_NE(text.find("no such file or directory"), std::string::npos) << text;

  UniqueFd taken = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  std::string busy = net::bound_endpoint(taken.get(), net::Endpoint::parse("tcp://127.0.0.1:0")).to_string();
  pid = spawn_cli({"proxy", "--listen", busy, "--to", "127.0.0.1:9"}, err);
  EXPECT_EQ(wait_exit(pid), 3);
  text = read_text_file(err);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find(busy), std::string::npos) << text;
  EXPECT_NE(text.find("address already in use"), std::string::npos) << text;
}
