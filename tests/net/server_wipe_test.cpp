// A request that carries a secret in clear (Server::mark_sensitive, Client::call_sensitive)
// leaves no copy of it in freed memory on either side of the connection: client and server run
// in this process, and the connection is closed and the server stopped inside the scan, so the
// release of every buffer (the receive buffer included) is seen. In both decoding modes
// (borrow_bytes), for a frame that arrives in one piece and for one split across reads (the
// receive buffer grows with the secret in it). Positive controls: with either side's part
// left out, the scan finds the copies that side leaves.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "support/expect_error.h"
#include "support/freed_memory_scan.h"
#include "support/net_util.h"
#include "shield_nitro/cbor/secret.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/net/server.h"

using namespace sn_test;
using cbor::entry;
using cbor::Value;

namespace {

// Longer than a small-string buffer; at namespace scope, so in read-only data (never freed).
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG-net-layer-SCAN-ME-3141";

cbor::SecretValue push_body() { return cbor::SecretValue(cbor::map_of(entry("secret", Value::text(kSecret)))); }

// A server with "push" (takes the secret into SecureBytes, as set-credentials does) and "echo".
struct Served {
  TempDir dir{"sn-net-wipe"};
  std::unique_ptr<net::Server> server;
  std::atomic<int> received{0};

  Served(bool borrow, bool mark) {
    net::ServerOptions o;
    o.borrow_bytes = borrow;
    o.workers = 2;
    server = std::make_unique<net::Server>(net::Endpoint::unix_path(dir.sock("s.sock")), o);
    server->handle("push", [this](const net::Request& req, net::RequestContext&) {
      const Value* s = req.body.find("secret");
      if (!s || !s->is(cbor::Type::kText)) throw Error(Errc::kFormat, "push: no secret");
      SecureBytes kept(as_bytes(s->as_text()));
      if (std::ranges::equal(kept.view(), as_bytes(kSecret))) ++received;
      return net::Response::success();
    });
    server->handle("echo", [](const net::Request& req, net::RequestContext&) { return net::Response::success(req.body); });
    if (mark) server->mark_sensitive("push");
    server->start();
  }
};

Value small() { return cbor::map_of(entry("n", Value::uint(7))); }

// Pushes once between two ordinary requests on one connection; the client is closed and the
// server stopped before this returns. How many pushes the handler got.
int push_between_echoes(bool borrow, bool mark_server, bool sensitive_client) {
  Served s(borrow, mark_server);
  {
    net::Client c(s.server->endpoint());
    EXPECT_EQ(c.call("echo", small()), small());
    if (sensitive_client) {
      c.call_sensitive("push", push_body());
    } else {
      cbor::SecretValue body = push_body();
      c.call("push", *body);  // a plain copy, as callers made before call_sensitive
    }
    EXPECT_EQ(c.call("echo", small()), small());
  }
  s.server->stop();
  return s.received;
}

// How many copies of the secret the scan finds in memory freed during push_between_echoes.
size_t freed_copies_after_push(bool borrow, bool mark_server, bool sensitive_client) {
  test_support::FreedMemoryScan scan(as_bytes(kSecret));
  EXPECT_EQ(push_between_echoes(borrow, mark_server, sensitive_client), 1);
  return scan.hits();
}

class ServerWipe : public ::testing::TestWithParam<bool> {};  // borrow_bytes

TEST_P(ServerWipe, SensitivePushLeavesNoCopyInFreedMemory) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  EXPECT_EQ(freed_copies_after_push(GetParam(), true, true), 0u);
}

// The controls: each side's part is needed (and the scan does see the net layer's copies).
TEST_P(ServerWipe, AnUnmarkedOpLeavesTheServersCopies) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  EXPECT_GT(freed_copies_after_push(GetParam(), false, true), 0u);
}

TEST_P(ServerWipe, APlainCallLeavesTheClientsCopies) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  EXPECT_GT(freed_copies_after_push(GetParam(), true, false), 0u);
}

// The secret's frame arrives in two reads, the secret whole in the first: the partial frame
// waits in the receive buffer, which then grows (its old block freed) to take the rest.
TEST_P(ServerWipe, APushSplitAcrossReadsLeavesNoCopy) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  test_support::FreedMemoryScan scan(as_bytes(kSecret));
  {
    Served s(GetParam(), true);
    UniqueFd fd = net::connect(s.server->endpoint());
    net::Request push;
    push.id = 2;
    push.op = "push";
    push.body = cbor::map_of(entry("secret", Value::text(kSecret)), entry("pad", Value::bytes(Bytes(100, 0x5a))));
    Bytes wire = request_frame(1, "echo", small());
    wire.reserve(wire.size() + 512);  // no reallocation while the secret is in it
    net::append_request_frame(wire, push);
    push.body.wipe_strings();
    const size_t split = wire.size() - 50;  // inside the padding, after the secret
    write_all(fd.get(), ByteView(wire).first(split));
    net::FrameDecoder dec;
    auto echo = read_response(fd.get(), dec);  // the server has read the first part
    ASSERT_TRUE(echo && echo->ok);
    EXPECT_EQ(echo->id, 1u);
    write_all(fd.get(), ByteView(wire).subspan(split));
    auto pushed = read_response(fd.get(), dec);
    ASSERT_TRUE(pushed && pushed->ok) << (pushed ? pushed->message : "no answer");
    secure_wipe(wire.data(), wire.capacity());
    fd.reset();
    s.server->stop();
    EXPECT_EQ(s.received, 1);
  }
  EXPECT_EQ(scan.hits(), 0u);
}

INSTANTIATE_TEST_SUITE_P(BorrowBytes, ServerWipe, ::testing::Bool());

TEST(ServerMarkSensitive, NeedsARegisteredOpAndComesBeforeStart) {
  TempDir dir{"sn-net-wipe"};
  net::Server s(net::Endpoint::unix_path(dir.sock("s.sock")));
  EXPECT_EQ(test_support::code_of([&] { s.mark_sensitive("push"); }), Errc::kUsage);
  s.handle("push", [](const net::Request&, net::RequestContext&) { return net::Response::success(); });
  s.mark_sensitive("push");
  s.start();
  EXPECT_EQ(test_support::code_of([&] { s.mark_sensitive("push"); }), Errc::kUsage);
}

}  // namespace
