// Egress end to end inside one process: the app's side (raw sockets and curl) → EgressProxy (the
// enclave's, dialling through the real HostLink client over simulated vsock) → a test host agent
// serving the host link with HostEgress → TCP destinations on 127.0.0.1.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/net/acceptor.h"
#include "shield_nitro/relay/egress.h"
#include "relay_test_support.h"
#include "support/echo_server.h"
#include "support/process.h"

using namespace shield_nitro;
using namespace sn_test;

namespace {

constexpr uint32_t kHostPort = 7000;

runtime::EgressConfig allow(std::initializer_list<std::pair<std::string, uint16_t>> rules) {
  runtime::EgressConfig c;
  c.proxy_port = 3128;
  for (const auto& [h, p] : rules) c.allow.push_back({h, p});
  return c;
}

// The host agent's part of the host link that egress needs: read the request line, hand a
// connect op to HostEgress (what `shield-nitro host run` does per enclave).
class HostAgent {
 public:
  explicit HostAgent(runtime::EgressConfig host_copy)
      : egress_({host_copy, std::chrono::seconds(5), "egress test-enclave"}),
        acceptor_({net::Endpoint::vsock(net::kVsockCidParent, kHostPort), {}, 64, "host link"},
                  [this](uint64_t, UniqueFd conn, int stop_fd) {
                    host_link::Request r =
                        host_link::parse_request(host_link::read_line(conn.get(), std::chrono::seconds(10), "enclave"));
                    ASSERT_EQ(r.op, host_link::Op::kConnect);
                    egress_.serve(std::move(conn), r.host, r.port, {}, stop_fd);
                  }) {
    acceptor_.start();
  }
  relay::HostEgressStats stats() const { return egress_.stats(); }

 private:
  relay::HostEgress egress_;
  net::Acceptor acceptor_;
};

// The enclave's proxy, dialling through the host link like the supervisor does.
relay::EgressProxyOptions proxy_options(const runtime::EgressConfig& enclave_copy) {
  auto link = std::make_shared<host_link::HostLink>(runtime::HostLinkConfig{net::kVsockCidParent, kHostPort});
  relay::EgressProxyOptions o =
      relay::enclave_egress(enclave_copy, [link](const std::string& h, uint16_t p) { return link->connect(h, p); });
  EXPECT_EQ(o.listen.to_string(), "tcp://127.0.0.1:3128");
  o.listen = net::Endpoint::parse("tcp://127.0.0.1:0");  // tests run side by side
  return o;
}

// The whole path: simulated vsock, the host agent with its copy of the allowlist, the enclave's
// proxy (started).
struct EgressPath {
  SimulatedVsock vsock;
  HostAgent host;
  relay::EgressProxy proxy;
  EgressPath(runtime::EgressConfig host_copy, relay::EgressProxyOptions enclave)
      : host(std::move(host_copy)), proxy(std::move(enclave)) {
    proxy.start();
  }
  explicit EgressPath(const runtime::EgressConfig& both) : EgressPath(both, proxy_options(both)) {}
};

// Reads an HTTP head through its blank line, byte by byte (what follows stays unread).
std::string read_head(int fd) {
  std::string got;
  char c;
  while (got.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) got += c;
  return got;
}

// Sends text as one client and returns everything the proxy answers until it closes.
std::string ask_proxy(const net::Endpoint& proxy, const std::string& text, bool half_close = false) {
  UniqueFd fd = net::connect(proxy);
  write_all(fd.get(), as_bytes(text));
  if (half_close) ::shutdown(fd.get(), SHUT_WR);
  Bytes got;
  EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(30), &got));
  return to_string(got);
}

// A destination that records the head it receives and answers one fixed response.
class CaptureServer {
 public:
  CaptureServer() {
    listen_ = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
    port_ = static_cast<uint16_t>(net::bound_endpoint(listen_.get(), net::Endpoint::parse("tcp://127.0.0.1:0")).port);
    thread_ = std::thread([this] {
      UniqueFd c(::accept(listen_.get(), nullptr, nullptr));
      if (!c) return;
      head_ = read_head(c.get());
      write_all(c.get(), as_bytes(std::string("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")));
    });
  }
  ~CaptureServer() {
    ::shutdown(listen_.get(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  // The head it received (waits for its one exchange to end).
  std::string head() {
    if (thread_.joinable()) thread_.join();
    return head_;
  }

 private:
  UniqueFd listen_;
  uint16_t port_;
  std::thread thread_;
  std::string head_;
};

std::string port_s(uint16_t p) { return std::to_string(p); }

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST(Egress, AnAllowedConnectTunnelsBothWaysWithHalfClose) {
  EchoServer echo;
  EgressPath path(allow({{"127.0.0.1", echo.port()}}));
  auto& [vsock, host, proxy] = path;
  // The app sends its first bytes right behind the CONNECT head (as TLS clients may).
  Bytes data = pattern(200000, 5);
  std::string head = "CONNECT 127.0.0.1:" + port_s(echo.port()) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  UniqueFd fd = net::connect(proxy.endpoint());
  write_all(fd.get(), as_bytes(head + "early"));
  EXPECT_EQ(read_head(fd.get()), "HTTP/1.1 200 Connection established\r\n\r\n");
  std::thread writer([&] {
    write_all(fd.get(), data);
    ::shutdown(fd.get(), SHUT_WR);
  });
  Bytes got;
  EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(30), &got));
  writer.join();
  Bytes expected = to_bytes(as_bytes(std::string("early")));
  expected.insert(expected.end(), data.begin(), data.end());
  EXPECT_EQ(got, expected);
  proxy.stop();
  relay::EgressProxyStats ps = proxy.stats();
  EXPECT_EQ(ps.tunnels, 1u);
  EXPECT_EQ(ps.bytes_up, expected.size());
  EXPECT_EQ(ps.bytes_down, expected.size());
  relay::HostEgressStats hs = host.stats();
  EXPECT_EQ(hs.connections, 1u);
  EXPECT_EQ(hs.bytes_up, expected.size());
  EXPECT_EQ(hs.bytes_down, expected.size());
  EXPECT_EQ(hs.refused, 0u);
}

TEST(Egress, PlainHttpIsForwardedInOriginForm) {
  CaptureServer dest;
  EgressPath path(allow({{"127.0.0.1", dest.port()}}));
  auto& [vsock, host, proxy] = path;
  std::string answer = ask_proxy(proxy.endpoint(), "GET http://127.0.0.1:" + port_s(dest.port()) +
                                                      "/v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                      "Proxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n");
  EXPECT_TRUE(starts_with(answer, "HTTP/1.1 200 OK\r\n")) << answer;
  EXPECT_EQ(answer.substr(answer.size() - 5), "hello");
  EXPECT_EQ(dest.head(), "GET /v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:" + port_s(dest.port()) +
                             "\r\nAccept: */*\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(proxy.stats().forwarded, 1u);
}

TEST(Egress, ADestinationOffTheAllowlistIs403AndNeverReachesTheHost) {
  EchoServer echo;
  EgressPath path(allow({{"127.0.0.1", echo.port()}}));
  auto& [vsock, host, proxy] = path;
  uint16_t other = static_cast<uint16_t>(echo.port() == 65535 ? 1 : echo.port() + 1);
  for (const std::string& req : std::vector<std::string>{"CONNECT 127.0.0.1:" + port_s(other) + " HTTP/1.1\r\n\r\n",
                                 "CONNECT evil.example.com:443 HTTP/1.1\r\n\r\n",
                                 "GET http://evil.example.com/ HTTP/1.1\r\n\r\n"}) {
    std::string answer = ask_proxy(proxy.endpoint(), req);
    EXPECT_TRUE(starts_with(answer, "HTTP/1.1 403 Forbidden\r\n")) << answer;
    EXPECT_NE(answer.find("is not allowed"), std::string::npos) << answer;
  }
  EXPECT_EQ(proxy.stats().refused, 3u);
  EXPECT_EQ(host.stats().connections, 0u);  // refused inside the enclave: nothing was dialled
}

TEST(Egress, TheHostRefusesEvenWhenTheEnclaveSideIsBypassed) {
  EchoServer echo;
  // The host's copy does not list the echo port; a compromised enclave's proxy allows it...
  EgressPath path(allow({{"api.example.com", 443}}), proxy_options(allow({{"127.0.0.1", echo.port()}})));
  auto& [vsock, host, proxy] = path;
  std::string answer = ask_proxy(proxy.endpoint(), "CONNECT 127.0.0.1:" + port_s(echo.port()) + " HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(starts_with(answer, "HTTP/1.1 403 Forbidden\r\n")) << answer;
  EXPECT_NE(answer.find("egress to 127.0.0.1:" + port_s(echo.port()) + " is not allowed"), std::string::npos) << answer;
  // ...and so does one that skips the proxy and speaks the host link itself.
  host_link::HostLink link(runtime::HostLinkConfig{net::kVsockCidParent, kHostPort});
  try {
    link.connect("127.0.0.1", echo.port());
    ADD_FAILURE() << "the host relayed a destination off its allowlist";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kPolicy);
    EXPECT_NE(std::string(e.what()).find("is not allowed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(host.stats().refused, 2u);
  EXPECT_EQ(host.stats().bytes_up, 0u);
}

TEST(Egress, AnUnreachableDestinationIsAnsweredNotHung) {
  uint16_t dead = dead_port();
  EgressPath path(allow({{"127.0.0.1", dead}}));
  auto& [vsock, host, proxy] = path;
  std::string answer = ask_proxy(proxy.endpoint(), "CONNECT 127.0.0.1:" + port_s(dead) + " HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(starts_with(answer, "HTTP/1.1 4") || starts_with(answer, "HTTP/1.1 5")) << answer;
  EXPECT_NE(answer.find("cannot reach 127.0.0.1:" + port_s(dead)), std::string::npos) << answer;
  EXPECT_EQ(host.stats().failed, 1u);
}

TEST(Egress, WithoutAHostAgentTheAppGets502) {
  SimulatedVsock vsock;
  relay::EgressProxy proxy(proxy_options(allow({{"api.example.com", 443}})));
  proxy.start();
  std::string answer = ask_proxy(proxy.endpoint(), "CONNECT api.example.com:443 HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(starts_with(answer, "HTTP/1.1 502 Bad Gateway\r\n")) << answer;
  EXPECT_EQ(proxy.stats().failed_dials, 1u);
}

TEST(Egress, HugeHeadersAre431AndTheClientReadsTheAnswer) {
  relay::EgressProxyOptions o = proxy_options(allow({{"api.example.com", 443}}));
  o.max_head_bytes = 8192;
  EgressPath path(allow({}), o);
  auto& [vsock, host, proxy] = path;
  // 512 KiB of headers: refused once past the limit; the proxy drains what follows so the client
  // reads its 431 instead of a connection reset.
  std::string req = "CONNECT api.example.com:443 HTTP/1.1\r\n";
  while (req.size() < (512 << 10)) req += "X-Pad: " + std::string(1000, 'a') + "\r\n";
  std::string answer = ask_proxy(proxy.endpoint(), req + "\r\n", true);
  EXPECT_TRUE(starts_with(answer, "HTTP/1.1 431 Request Header Fields Too Large\r\n")) << answer.substr(0, 200);
  EXPECT_NE(answer.find("exceeds 8192 bytes"), std::string::npos);
  EXPECT_EQ(proxy.stats().bad_requests, 1u);
  EXPECT_EQ(host.stats().connections, 0u);
}

TEST(Egress, ASlowClientGets408AtItsDeadline) {
  SimulatedVsock vsock;
  relay::EgressProxyOptions o = proxy_options(allow({{"api.example.com", 443}}));
  o.head_timeout = std::chrono::milliseconds(200);
  relay::EgressProxy proxy(o);
  proxy.start();
  UniqueFd fd = net::connect(proxy.endpoint());
  write_all(fd.get(), as_bytes(std::string("CONNECT api.exa")));  // and then nothing
  Bytes got;
  EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(30), &got));
  EXPECT_TRUE(starts_with(to_string(got), "HTTP/1.1 408 Request Timeout\r\n")) << to_string(got);
  // A client that never sends a byte is timed out the same way (it holds no slot forever).
  UniqueFd silent = net::connect(proxy.endpoint());
  got.clear();
  EXPECT_TRUE(wait_closed(silent.get(), std::chrono::seconds(30), &got));
  EXPECT_TRUE(starts_with(to_string(got), "HTTP/1.1 408")) << to_string(got);
}

TEST(Egress, GarbageIsRefusedAndTheProxyKeepsServing) {
  EchoServer echo;
  EgressPath path(allow({{"127.0.0.1", echo.port()}}));
  auto& [vsock, host, proxy] = path;
  uint32_t seed = 12345;
  for (int i = 0; i < 50; ++i) {
    std::string junk;
    for (int j = 0; j < 300; ++j) {
      seed = seed * 1103515245u + 12345u;
      junk += static_cast<char>(seed >> 24);
    }
    if (i % 2) junk = "CONNECT " + junk;  // past the first byte, too
    std::string answer = ask_proxy(proxy.endpoint(), junk + "\r\n\r\n", true);
    EXPECT_TRUE(starts_with(answer, "HTTP/1.1 400 Bad Request\r\n")) << i << ": " << answer.substr(0, 100);
  }
  EXPECT_EQ(proxy.stats().bad_requests, 50u);
  Bytes data = pattern(1000, 1);
  std::string answer = ask_proxy(proxy.endpoint(), "CONNECT 127.0.0.1:" + port_s(echo.port()) + " HTTP/1.1\r\n\r\n" +
                                                      to_string(data), true);
  EXPECT_EQ(answer, "HTTP/1.1 200 Connection established\r\n\r\n" + to_string(data));
}

TEST(Egress, PastTheConnectionCapIs503) {
  SimulatedVsock vsock;
  relay::EgressProxyOptions o = proxy_options(allow({{"api.example.com", 443}}));
  o.max_connections = 1;
  relay::EgressProxy proxy(o);
  proxy.start();
  UniqueFd holder = net::connect(proxy.endpoint());  // holds the only slot (still sending its head)
  write_all(holder.get(), as_bytes(std::string("CONN")));
  std::string answer = ask_proxy(proxy.endpoint(), "");
  EXPECT_TRUE(starts_with(answer, "HTTP/1.1 503 Service Unavailable\r\n")) << answer;
}

TEST(Egress, ProxyNeedsADial) {
  relay::EgressProxyOptions o;
  o.listen = net::Endpoint::parse("tcp://127.0.0.1:0");
  EXPECT_THROW(relay::EgressProxy{o}, Error);
}

TEST(HostEgress, AMalformedTargetIsRefusedOnTheLink) {
  relay::HostEgress egress({allow({{"a.com", 443}}), std::chrono::seconds(1), "egress"});
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd enclave(sv[0]);
  egress.serve(UniqueFd(sv[1]), std::string_view("a.com:443:1"));
  std::string line = host_link::read_line(enclave.get(), std::chrono::seconds(5), "host");
  EXPECT_THROW(host_link::parse_ok_answer(line, host_link::Op::kConnect), Error);
  EXPECT_NE(line.find("\"ok\":false"), std::string::npos) << line;
  EXPECT_EQ(egress.stats().refused, 1u);
}

// curl, as an unmodified app would use HTTP_PROXY / HTTPS_PROXY.
TEST(EgressCurl, PlainHttpAndConnectThroughTheProxy) {
  SimulatedVsock vsock;
  TempDir tmp;
  write_file_atomic(tmp / "hello.txt", as_bytes(std::string("hello through egress\n")));
  uint16_t web_port;
  {
    UniqueFd l = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
    web_port = static_cast<uint16_t>(net::bound_endpoint(l.get(), net::Endpoint::parse("tcp://127.0.0.1:0")).port);
  }
  Process web({"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", tmp.path(),
               port_s(web_port)},
              tmp / "web.log");
  web.wait_ready([&] {
    try {
      net::connect(net::Endpoint::tcp("127.0.0.1", web_port), std::chrono::milliseconds(200));
      return true;
    } catch (const Error&) {
      return false;
    }
  });
  auto rules = allow({{"127.0.0.1", web_port}});
  HostAgent host(rules);
  relay::EgressProxy proxy(proxy_options(rules));
  proxy.start();
  std::string proxy_url = "http://127.0.0.1:" + port_s(static_cast<uint16_t>(proxy.endpoint().port));
  std::string url = "http://127.0.0.1:" + port_s(web_port) + "/hello.txt";
  // Plain HTTP (absolute-form), then the same through a CONNECT tunnel (-p).
  RunResult plain = run({"/usr/bin/curl", "-sS", "--max-time", "30", "-x", proxy_url, url}, tmp.path());
  EXPECT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, "hello through egress\n");
  RunResult tunnel = run({"/usr/bin/curl", "-sS", "--max-time", "30", "-p", "-x", proxy_url, url}, tmp.path());
  EXPECT_EQ(tunnel.status, 0) << tunnel.err;
  EXPECT_EQ(tunnel.out, "hello through egress\n");
  // Off the allowlist: curl reports the proxy's 403 (plain: the status; CONNECT: a failed tunnel).
  RunResult denied = run({"/usr/bin/curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                          proxy_url, "http://127.0.0.1:1/"},
                         tmp.path());
  EXPECT_EQ(denied.out, "403");
  RunResult denied_tunnel = run(
      {"/usr/bin/curl", "-sS", "--max-time", "30", "-p", "-x", proxy_url, "http://127.0.0.1:1/"}, tmp.path());
  EXPECT_NE(denied_tunnel.status, 0);
  EXPECT_NE(denied_tunnel.err.find("403"), std::string::npos) << denied_tunnel.err;
  EXPECT_EQ(proxy.stats().tunnels, 1u);
  EXPECT_EQ(proxy.stats().forwarded, 1u);
  EXPECT_EQ(proxy.stats().refused, 2u);
}
