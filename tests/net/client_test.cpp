#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "server_fixture.h"
#include "shield_nitro/net/vsock_network.h"
#include "shield_nitro/net/client.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;
using namespace sn_test;

namespace {
std::unique_ptr<net::Server> start_server(const net::Endpoint& ep, std::shared_ptr<Gate> gate) {
  net::ServerOptions o;
  o.workers = 4;
  auto s = std::make_unique<net::Server>(ep, o);
  add_test_handlers(*s, std::move(gate));
  s->start();
  return s;
}
}  // namespace

TEST(Client, ManyThreadsShareOneConnection) {
  TempDir tmp;
  auto s = start_server(net::Endpoint::unix_path(tmp.sock()), std::make_shared<Gate>());
  net::Client c(s->endpoint());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 200; ++i) {
        Value body = Value::map({entry("t", Value::uint(static_cast<uint64_t>(t))), entry("i", Value::uint(i))});
        if (c.call("echo", body) != body) wrong++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(s->stats().connections_accepted, 1u);
  EXPECT_EQ(s->stats().requests, 1600u);
}

TEST(Client, AsyncCallsPipelineAndMatchById) {
  TempDir tmp;
  auto s = start_server(net::Endpoint::unix_path(tmp.sock()), std::make_shared<Gate>());
  net::Client c(s->endpoint());
  std::vector<std::future<net::Response>> futures;
  for (uint64_t i = 0; i < 500; ++i) futures.push_back(c.request_async("echo", Value::map({entry("i", Value::uint(i))})));
  for (uint64_t i = 0; i < 500; ++i) {
    net::Response r = futures[i].get();
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.body.find("i")->as_uint(), i);
  }
  std::promise<net::Response> p;
  c.request_async("fail", Value::map({entry("code", Value::text("auth"))}), [&](net::Response r) { p.set_value(r); });
  net::Response r = p.get_future().get();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, Errc::kAuth);
}

TEST(Client, CallThrowsRemoteErrorsWithTheirCode) {
  TempDir tmp;
  auto s = start_server(net::Endpoint::unix_path(tmp.sock()), std::make_shared<Gate>());
  net::Client c(s->endpoint());
  try {
    c.call("fail", Value::map({entry("code", Value::text("not_found"))}));
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kNotFound);
    EXPECT_EQ(std::string(e.what()), "fail: refused on purpose");
  }
  // A message that names its operation already is not prefixed twice ("fail: fail: ...").
  try {
    c.call("fail", Value::map({entry("code", Value::text("usage")), entry("message", Value::text("fail: bad size"))}));
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "fail: bad size");
  }
}

TEST(Client, TimeoutLeavesTheConnectionUsable) {
  TempDir tmp;
  auto gate = std::make_shared<Gate>();
  auto s = start_server(net::Endpoint::unix_path(tmp.sock()), gate);
  net::ClientOptions o;
  o.call_timeout = std::chrono::milliseconds(200);
  net::Client c(s->endpoint(), o);
  net::Response r = c.request("gated");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, Errc::kTimeout);
  gate->release();  // its late answer is dropped
  EXPECT_TRUE(c.request("echo").ok);
  EXPECT_TRUE(c.connected());
}

TEST(Client, ServerGoingAwayFailsPendingAndLaterCalls) {
  TempDir tmp;
  auto gate = std::make_shared<Gate>();
  net::ServerOptions o;
  o.drain_timeout = std::chrono::milliseconds(100);
  auto s = std::make_unique<net::Server>(net::Endpoint::unix_path(tmp.sock()), o);
  add_test_handlers(*s, gate);
  s->start();
  net::Client c(s->endpoint());
  auto pending = c.request_async("gated");
  gate->wait_for_waiters(1);
  std::thread stopper([&] { s->stop(); });  // drain times out with the gate shut
  net::Response r = pending.get();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, Errc::kIo);
  EXPECT_NE(r.message.find("closed"), std::string::npos) << r.message;
  gate->release();
  stopper.join();
  EXPECT_FALSE(c.connected());
  try {
    c.call("echo");
    ADD_FAILURE() << "call on a closed connection";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);
  }
  EXPECT_THROW(net::Client(net::Endpoint::unix_path(tmp.sock())), Error);
}

TEST(Client, SameCodeOverTcpAndSimulatedVsock) {
  auto gate = std::make_shared<Gate>();
  auto tcp = start_server(net::Endpoint::parse("tcp://127.0.0.1:0"), gate);
  net::Client ct(tcp->endpoint());
  EXPECT_TRUE(ct.request("echo").ok);

  TempDir tmp;
  net::install_vsock_network(net::simulated_vsock(tmp.path(), 21));
  {
    auto vs = start_server(net::Endpoint::parse("vsock://ANY:5000"), gate);
    EXPECT_EQ(vs->endpoint().to_string(), "vsock://ANY:5000");
    net::Client cv(net::Endpoint::parse("vsock://21:5000"));
    EXPECT_TRUE(cv.request("echo").ok);
  }
  net::install_vsock_network(nullptr);
}

TEST(Client, OversizeRequestFailsLocally) {
  TempDir tmp;
  auto s = start_server(net::Endpoint::unix_path(tmp.sock()), std::make_shared<Gate>());
  net::ClientOptions o;
  o.max_frame = 1000;
  net::Client c(s->endpoint(), o);
  net::Response r = c.request("echo", Value::map({entry("x", Value::bytes(Bytes(2000, 0)))}));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, Errc::kUsage);
  EXPECT_TRUE(c.request("echo").ok);
}
