#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstdlib>
#include <cstring>
#include <vector>
#include <fstream>
#include <thread>

#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/vsock_network.h"
#include "support/net_util.h"

using namespace shield_nitro;
using net::Endpoint;
using sn_test::TempDir;

namespace {
void expect_bad(const std::string& text, const std::string& why) {
  try {
    Endpoint::parse(text);
    ADD_FAILURE() << text << " parsed, expected: " << why;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUsage) << text;
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << text << ": " << e.what();
  }
}

// Sets a vsock variable for one scope; the process's vsock network is chosen again from the
// environment on its next use (programs choose once; these tests change the environment).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
    net::install_vsock_network(nullptr);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
    net::install_vsock_network(nullptr);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};
}  // namespace

TEST(Endpoint, ParsesAndFormatsEveryKind) {
  Endpoint v = Endpoint::parse("vsock://16:5000");
  EXPECT_EQ(v.kind, Endpoint::Kind::kVsock);
  EXPECT_EQ(v.cid, 16u);
  EXPECT_EQ(v.port, 5000u);
  Endpoint any = Endpoint::parse("vsock://ANY:8000");
  EXPECT_EQ(any.cid, net::kVsockCidAny);
  EXPECT_EQ(Endpoint::parse("vsock://any:8000"), any);
  EXPECT_EQ(Endpoint::parse("vsock://3:4294967294").port, 4294967294u);
  Endpoint u = Endpoint::parse("unix:/run/sn.sock");
  EXPECT_EQ(u.kind, Endpoint::Kind::kUnix);
  EXPECT_EQ(u.path, "/run/sn.sock");
  Endpoint t = Endpoint::parse("tcp://127.0.0.1:7000");
  EXPECT_EQ(t.kind, Endpoint::Kind::kTcp);
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, 7000u);
  Endpoint t6 = Endpoint::parse("tcp://[::1]:7000");
  EXPECT_EQ(t6.host, "::1");
  for (const char* s : {"vsock://16:5000", "vsock://ANY:8000", "unix:/run/sn.sock", "unix:rel/x.sock",
                        "tcp://127.0.0.1:7000", "tcp://[::1]:0", "tcp://localhost:65535"})
    EXPECT_EQ(Endpoint::parse(s).to_string(), s);
}

TEST(Endpoint, RejectsMalformedStrings) {
  expect_bad("", "expected vsock://");
  expect_bad("http://x:1", "expected vsock://");
  expect_bad("VSOCK://16:5000", "expected vsock://");
  expect_bad("vsock://16", "missing :PORT");
  expect_bad("vsock://16:", "port must be");
  expect_bad("vsock://:5000", "CID must be");
  expect_bad("vsock://-1:5000", "CID must be");
  expect_bad("vsock://4294967295:5000", "CID must be");
  expect_bad("vsock://99999999999:5000", "CID must be");
  expect_bad("vsock://16:4294967295", "port must be");
  expect_bad("vsock://16:+5", "port must be");
  expect_bad("vsock://16:05", "port must be");
  expect_bad("vsock://0x10:5", "CID must be");
  expect_bad("vsock://16:5000x", "port must be");
  expect_bad("unix:", "empty unix socket path");
  expect_bad("unix://tmp/x", "not unix://");
  expect_bad("unix:/" + std::string(200, 'a'), "longer than 107");
  expect_bad(std::string("unix:/a\0b", 9), "NUL byte");
  expect_bad("tcp://:80", "missing host");
  expect_bad("tcp://host", "missing :PORT");
  expect_bad("tcp://host:65536", "port must be");
  expect_bad("tcp://host:-1", "port must be");
  expect_bad("tcp://::1:80", "IPv6 hosts need brackets");
  expect_bad("tcp://[::1]80", "expected [IPv6]:PORT");
  expect_bad("tcp://a b:80", "host contains ' '");
  expect_bad("tcp://a/b:80", "host contains '/'");
}

TEST(Endpoint, SimulatedVsockMapsToUnixSockets) {
  {
    ScopedEnv dir("SHIELD_NITRO_VSOCK_DIR", nullptr);
    EXPECT_EQ(net::map_simulated_vsock(Endpoint::parse("vsock://16:5000"), false), Endpoint::parse("vsock://16:5000"));
  }
  ScopedEnv dir("SHIELD_NITRO_VSOCK_DIR", "/tmp/vs");
  {
    ScopedEnv cid("SHIELD_NITRO_VSOCK_CID", nullptr);
    EXPECT_EQ(net::map_simulated_vsock(Endpoint::parse("vsock://ANY:5000"), true).path, "/tmp/vs/16_5000.sock");
    EXPECT_EQ(net::map_simulated_vsock(Endpoint::parse("vsock://3:8000"), false).path, "/tmp/vs/3_8000.sock");
    EXPECT_EQ(net::map_simulated_vsock(Endpoint::parse("vsock://3:8000"), true).path, "/tmp/vs/3_8000.sock");
    EXPECT_EQ(net::map_simulated_vsock(Endpoint::parse("unix:/x"), true), Endpoint::parse("unix:/x"));
    EXPECT_THROW(net::map_simulated_vsock(Endpoint::parse("vsock://ANY:5000"), false), Error);
  }
  {
    ScopedEnv cid("SHIELD_NITRO_VSOCK_CID", "3");
    EXPECT_EQ(net::map_simulated_vsock(Endpoint::parse("vsock://ANY:8000"), true).path, "/tmp/vs/3_8000.sock");
  }
  {
    ScopedEnv cid("SHIELD_NITRO_VSOCK_CID", "three");
    EXPECT_THROW(net::map_simulated_vsock(Endpoint::parse("vsock://ANY:8000"), true), Error);
  }
}

TEST(Endpoint, SimulatedVsockListenAndConnect) {
  TempDir tmp;
  ScopedEnv dir("SHIELD_NITRO_VSOCK_DIR", tmp.path().c_str());
  ScopedEnv cid("SHIELD_NITRO_VSOCK_CID", "16");
  UniqueFd l = net::listen(Endpoint::parse("vsock://ANY:5000"));
  EXPECT_TRUE(std::filesystem::exists(tmp.path() + "/16_5000.sock"));
  UniqueFd c = net::connect(Endpoint::parse("vsock://16:5000"), std::chrono::seconds(2));
  EXPECT_TRUE(c.valid());
  EXPECT_THROW(net::connect(Endpoint::parse("vsock://17:5000"), std::chrono::seconds(2)), Error);
}

// Nothing at a vsock address: the line says where it looked and how to find the enclave.
TEST(Endpoint, UnreachableVsockHintsAtTheSimulatorFolderAndSimDescribe) {
  auto message = [](const char* text) -> std::string {
    try {
      net::connect(Endpoint::parse(text), std::chrono::seconds(1));
      ADD_FAILURE() << "connected to " << text;
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == Errc::kIo || e.code() == Errc::kTimeout) << e.what();  // real vsock may time out
      return e.what();
    }
    return "";
  };
  TempDir tmp;
  {
    ScopedEnv dir("SHIELD_NITRO_VSOCK_DIR", tmp.path().c_str());
    EXPECT_EQ(message("vsock://17:5000"),
              "connect vsock://17:5000: no such file or directory; nothing listens at " + tmp.path() +
                  "/17_5000.sock (SHIELD_NITRO_VSOCK_DIR=" + tmp.path() +
                  "): is the enclave running, with CID 17? 'shield-nitro sim describe --state DIR' shows a "
                  "simulated enclave's CID");
    EXPECT_EQ(message("vsock://3:8000"),  // the parent, from inside an enclave
              "connect vsock://3:8000: no such file or directory; nothing listens at " + tmp.path() +
                  "/3_8000.sock (SHIELD_NITRO_VSOCK_DIR=" + tmp.path() + "): is the parent's proxy running?");
  }
  ScopedEnv dir("SHIELD_NITRO_VSOCK_DIR", nullptr);
  // Without the variable the real vsock is tried (absent here, or no enclave at CID 17).
  std::string real = message("vsock://17:5000");
  EXPECT_EQ(real.rfind("connect vsock://17:5000: ", 0), 0u) << real;
  const std::string hint = "; no enclave answers at CID 17 port 5000 (for the local simulator, set "
                           "SHIELD_NITRO_VSOCK_DIR to its state folder's vsock/; 'shield-nitro sim describe --state "
                           "DIR' shows a simulated enclave's CID)";
  EXPECT_EQ(real.substr(real.size() - std::min(real.size(), hint.size())), hint) << real;
  EXPECT_EQ(real.find('\n'), std::string::npos);
  // Other kinds of endpoint get no vsock hint.
  try {
    net::connect(Endpoint::unix_path(tmp.sock("none.sock")));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("SHIELD_NITRO_VSOCK_DIR"), std::string::npos) << e.what();
  }
}

TEST(Endpoint, UnixListenReplacesStaleSocketOnlyAndSetsMode) {
  TempDir tmp;
  Endpoint ep = Endpoint::unix_path(tmp.sock());
  {
    UniqueFd first = net::listen(ep);
    struct stat st {};
    ASSERT_EQ(::stat(ep.path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // A live listener keeps its path.
    try {
      net::listen(ep);
      ADD_FAILURE() << "second listener on a live socket";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("another process is listening"), std::string::npos) << e.what();
    }
  }
  // The first listener is gone but its file remains: stale, so it is replaced.
  ASSERT_TRUE(std::filesystem::exists(ep.path));
  net::ListenOptions group;
  group.unix_mode = 0660;
  UniqueFd again = net::listen(ep, group);
  struct stat st {};
  ASSERT_EQ(::stat(ep.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  // A regular file is never removed.
  std::string file = tmp.path() + "/plain";
  std::ofstream(file) << "x";
  EXPECT_THROW(net::listen(Endpoint::unix_path(file)), Error);
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST(Endpoint, TcpPortZeroAndConnectErrors) {
  UniqueFd l = net::listen(Endpoint::parse("tcp://127.0.0.1:0"));
  Endpoint bound = net::bound_endpoint(l.get(), Endpoint::parse("tcp://127.0.0.1:0"));
  EXPECT_NE(bound.port, 0u);
  UniqueFd c = net::connect(bound, std::chrono::seconds(2));
  EXPECT_TRUE(c.valid());
  l.reset();
  try {
    net::connect(bound, std::chrono::seconds(2));
    ADD_FAILURE() << "connected to a closed port";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);
  }
  TempDir tmp;
  EXPECT_THROW(net::connect(Endpoint::unix_path(tmp.sock("none.sock"))), Error);
}

// A unix listener whose backlog is full: connect waits for room (and times out) instead of
// returning a socket that never connected.
TEST(Endpoint, UnixConnectWaitsForRoomInAFullBacklog) {
  TempDir tmp;
  Endpoint ep = Endpoint::unix_path(tmp.sock());
  net::ListenOptions small;
  small.backlog = 1;
  UniqueFd l = net::listen(ep, small);
  std::vector<UniqueFd> queued;
  for (;;) {  // fill the backlog with connections nobody accepts
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, ep.path.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) break;
    queued.push_back(std::move(fd));
    ASSERT_LT(queued.size(), 64u);
  }
  try {
    net::connect(ep, std::chrono::milliseconds(100));
    ADD_FAILURE() << "connect returned with the backlog full";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kTimeout) << e.what();
  }
  // Room appears while it waits: it connects.
  std::thread acceptor([&] { UniqueFd a(::accept(l.get(), nullptr, nullptr)); });
  UniqueFd c = net::connect(ep, std::chrono::seconds(20));
  acceptor.join();
  EXPECT_TRUE(c.valid());
  EXPECT_EQ(::send(c.get(), "x", 1, MSG_NOSIGNAL), 1);
}
