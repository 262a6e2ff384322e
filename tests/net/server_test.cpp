#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <set>
#include <thread>

#include "server_fixture.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/net/client.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;
using namespace sn_test;

namespace {

struct TestServer {
  explicit TestServer(net::ServerOptions o = {}, bool start = true)
      : gate(std::make_shared<Gate>()), server(net::Endpoint::unix_path(tmp.sock()), o) {
    add_test_handlers(server, gate);
    if (start) server.start();
  }
  UniqueFd raw() { return net::connect(server.endpoint()); }
  bool echo_works() {
    net::Client c(server.endpoint());
    return c.call("echo", Value::map({entry("x", Value::uint(1))})) == Value::map({entry("x", Value::uint(1))});
  }
  TempDir tmp;
  std::shared_ptr<Gate> gate;
  net::Server server;
};

net::ServerOptions small_options() {
  net::ServerOptions o;
  o.workers = 4;
  return o;
}

}  // namespace

TEST(Server, PipelinedResponsesCompleteOutOfOrder) {
  TestServer t(small_options());
  UniqueFd fd = t.raw();
  Bytes wire = request_frame(1, "gated", Value::map({entry("n", Value::uint(1))}));
  Bytes second = request_frame(2, "echo", Value::map({entry("n", Value::uint(2))}));
  wire.insert(wire.end(), second.begin(), second.end());
  write_all(fd.get(), wire);  // both requests in one write
  net::FrameDecoder dec;
  auto first = read_response(fd.get(), dec);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, 2u);  // the gated request is still running
  t.gate->release();
  auto later = read_response(fd.get(), dec);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->id, 1u);
  EXPECT_EQ(later->body, Value::map({entry("n", Value::uint(1))}));
}

TEST(Server, StructuredErrorsKeepTheConnectionOpen) {
  TestServer t(small_options());
  UniqueFd fd = t.raw();
  net::FrameDecoder dec;
  write_all(fd.get(), request_frame(5, "frobnicate"));
  auto r = read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 5u);
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->code, Errc::kUnsupported);
  EXPECT_NE(r->message.find("unknown operation 'frobnicate'"), std::string::npos);

  // Wrong CBOR types: the id is known, so the error carries it.
  write_all(fd.get(), net::encode_frame(cbor::encode(Value::map(
                          {entry("v", Value::uint(1)), entry("id", Value::uint(6)), entry("op", Value::uint(3))}))));
  r = read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 6u);
  EXPECT_EQ(r->code, Errc::kFormat);

  // Not CBOR at all: id 0, but the framing is intact so the connection stays usable.
  write_all(fd.get(), net::encode_frame(as_bytes("not cbor")));
  r = read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0u);
  EXPECT_EQ(r->code, Errc::kFormat);

  write_all(fd.get(), request_frame(7, "fail", Value::map({entry("code", Value::text("policy"))})));
  r = read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, Errc::kPolicy);
  EXPECT_EQ(r->message, "refused on purpose");
  write_all(fd.get(), request_frame(8, "crash"));
  r = read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, Errc::kInternal);
  EXPECT_NE(r->message.find("boom"), std::string::npos);

  write_all(fd.get(), request_frame(9, "echo", Value::map({entry("ok", Value::boolean(true))})));
  r = read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(r->id, 9u);
  EXPECT_GE(t.server.stats().error_responses, 5u);
}

TEST(Server, OpaqueBodiesPassThroughUnchanged) {
  TestServer t(small_options());
  net::Client c(t.server.endpoint());
  Bytes sealed(4096);
  for (size_t i = 0; i < sealed.size(); ++i) sealed[i] = static_cast<uint8_t>(i * 7 + 3);
  Value body = Value::map({entry("sealed", Value::bytes(sealed)), entry("seq", Value::uint(12))});
  EXPECT_EQ(c.call("echo", body), body);
}

TEST(Server, OversizeFrameClosesOnlyThatConnection) {
  net::ServerOptions o = small_options();
  o.max_frame = 1024;
  TestServer t(o);
  net::Client bystander(t.server.endpoint());
  UniqueFd fd = t.raw();
  Bytes header;
  put_u32be(header, 1025);
  write_all(fd.get(), header);
  net::FrameDecoder dec;
  auto r = read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0u);
  EXPECT_EQ(r->code, Errc::kFormat);
  EXPECT_NE(r->message.find("exceeds the limit of 1024"), std::string::npos);
  EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(10)));
  EXPECT_EQ(bystander.call("echo", Value::map({entry("a", Value::uint(1))})), Value::map({entry("a", Value::uint(1))}));
  // A frame of exactly the limit is fine.
  Bytes pad(1024 - 40, 0x11);
  EXPECT_TRUE(bystander.request("echo", Value::map({entry("p", Value::bytes(pad))})).ok);
}

TEST(Server, ThousandIdleConnections) {
  raise_fd_limit(4096);
  net::ServerOptions o = small_options();
  TestServer t(o);
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 1000; ++i) idle.push_back(t.raw());
  EXPECT_TRUE(eventually([&] { return t.server.stats().connections_open == 1000; }));
  EXPECT_TRUE(t.echo_works());
  // Each idle connection is still served.
  net::FrameDecoder dec;
  write_all(idle[999].get(), request_frame(3, "echo"));
  auto r = read_response(idle[999].get(), dec);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok);
  idle.clear();
  EXPECT_TRUE(eventually([&] { return t.server.stats().connections_open == 0; }));
}

TEST(Server, ReadTimeoutDropsSlowlorisOnly) {
  net::ServerOptions o = small_options();
  o.read_timeout = std::chrono::milliseconds(300);
  TestServer t(o);
  net::Client patient(t.server.endpoint());
  UniqueFd slow = t.raw();
  Bytes frame = request_frame(1, "echo");
  write_all(slow.get(), ByteView(frame).first(6));  // header and two bytes, then nothing
  EXPECT_TRUE(wait_closed(slow.get(), std::chrono::seconds(20)));
  EXPECT_TRUE(eventually([&] { return t.server.stats().connections_dropped == 1; }));
  EXPECT_TRUE(patient.connected());
  EXPECT_TRUE(patient.request("echo").ok);
}

TEST(Server, IdleTimeoutClosesQuietConnections) {
  net::ServerOptions o = small_options();
  o.idle_timeout = std::chrono::milliseconds(300);
  TestServer t(o);
  UniqueFd quiet = t.raw();
  EXPECT_TRUE(wait_closed(quiet.get(), std::chrono::seconds(20)));
  EXPECT_TRUE(t.echo_works());
}

TEST(Server, ClientThatStopsReadingIsDroppedAlone) {
  net::ServerOptions o = small_options();
  o.output_buffer_limit = 256 * 1024;
  TestServer t(o);
  net::Client bystander(t.server.endpoint());
  UniqueFd hog = t.raw();
  int small = 4096;
  ::setsockopt(hog.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  // Ask for 200 x 64 KiB and never read: far beyond socket buffers plus the output limit.
  Bytes wire;
  for (uint64_t i = 1; i <= 200; ++i) {
    Bytes f = request_frame(i, "big", Value::map({entry("n", Value::uint(64 * 1024))}));
    wire.insert(wire.end(), f.begin(), f.end());
  }
  write_all(hog.get(), wire);
  EXPECT_TRUE(eventually([&] { return t.server.stats().connections_dropped == 1; }));
  EXPECT_TRUE(bystander.request("echo").ok);
  EXPECT_TRUE(eventually([&] { return t.server.stats().connections_open == 1; }));
}

// A client that sends many requests and never reads: reading it pauses once its unsent
// replies pass output_pause_bytes, so its buffer stays near that bound; nothing is lost and
// it is not dropped, and when it finally reads it gets every reply.
TEST(Server, ClientThatStopsReadingIsNoLongerRead) {
  net::ServerOptions o = small_options();
  o.max_in_flight_per_connection = 4;
  o.output_pause_bytes = 256 * 1024;
  TestServer t(o);
  net::Client bystander(t.server.endpoint());
  UniqueFd hog = t.raw();
  constexpr uint64_t kRequests = 2000, kReply = 64 * 1024;
  Bytes wire;
  for (uint64_t i = 1; i <= kRequests; ++i) {
    Bytes f = request_frame(i, "big", Value::map({entry("n", Value::uint(kReply))}));
    wire.insert(wire.end(), f.begin(), f.end());
  }
  std::thread writer([&] { write_all(hog.get(), wire); });
  ASSERT_TRUE(eventually([&] {
    auto st = t.server.stats();
    return st.connections_paused_for_output == 1 && st.requests_in_flight == 0;
  }));
  net::ServerStats st = t.server.stats();
  EXPECT_LT(st.requests, kRequests);
  EXPECT_GE(st.buffered_output_bytes, o.output_pause_bytes);
  EXPECT_LE(st.peak_buffered_output_bytes, o.output_pause_bytes + o.max_in_flight_per_connection * (kReply + 64));
  EXPECT_EQ(st.connections_dropped, 0u);
  EXPECT_TRUE(bystander.request("echo").ok);
  net::FrameDecoder dec;
  for (uint64_t i = 1; i <= kRequests; ++i) {
    auto r = read_response(hog.get(), dec);
    ASSERT_TRUE(r && r->ok) << "reply " << i;
  }
  writer.join();
  EXPECT_EQ(t.server.stats().requests, kRequests + 1);
  EXPECT_TRUE(eventually([&] { return t.server.stats().buffered_output_bytes == 0; }));
}

// Many non-reading clients together: past total_output_limit the one holding the most unsent
// replies is dropped, so the total stays bounded whatever the number of clients.
TEST(Server, BufferedRepliesAreCappedAcrossConnections) {
  net::ServerOptions o = small_options();
  o.max_in_flight_per_connection = 4;
  o.output_pause_bytes = 256 * 1024;
  o.total_output_limit = 1024 * 1024;
  TestServer t(o);
  net::Client bystander(t.server.endpoint());
  std::vector<UniqueFd> hogs;
  for (int h = 0; h < 8; ++h) {
    hogs.push_back(t.raw());
    int small = 4096;
    ::setsockopt(hogs.back().get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    Bytes wire;
    for (uint64_t i = 1; i <= 100; ++i) {
      Bytes f = request_frame(i, "big", Value::map({entry("n", Value::uint(64 * 1024))}));
      wire.insert(wire.end(), f.begin(), f.end());
    }
    write_all(hogs.back().get(), wire);
  }
  ASSERT_TRUE(eventually([&] {
    auto st = t.server.stats();
    return st.requests_in_flight == 0 && st.connections_paused_for_output + st.connections_dropped == 8;
  }));
  net::ServerStats st = t.server.stats();
  EXPECT_GE(st.connections_dropped, 1u);
  EXPECT_LE(st.buffered_output_bytes, o.total_output_limit);
  EXPECT_TRUE(bystander.request("echo").ok);
}

// One local process opening and closing connections as fast as it can: closed peers are
// reaped before anyone is refused, so clients old and new keep being served, and the log
// does not grow with the flood.
TEST(Server, ConnectCloseFloodLeavesRoomForGoodClients) {
  LogLevel saved = log_level();
  set_log_level(LogLevel::kInfo);
  testing::internal::CaptureStderr();
  uint64_t good = 0, failures = 0;
  std::string last_failure;
  std::atomic<uint64_t> cycles{0};
  {
    net::ServerOptions o = small_options();
    o.max_connections = 8;
    TestServer t(o);
    std::atomic<bool> done{false};
    std::thread flood([&] {
      while (!done) {
        try {
          UniqueFd fd = t.raw();
        } catch (const Error&) {
        }
        cycles++;
      }
    });
    net::Client established(t.server.endpoint());
    while (good < 200 || (cycles < 20000 && good < 200000)) {
      if (auto r = established.request("echo"); !r.ok) {
        failures++;
        last_failure = "established: " + r.message;
      }
      try {
        net::Client fresh(t.server.endpoint());
        if (auto r = fresh.request("echo"); !r.ok) {
          failures++;
          last_failure = "new: " + r.message;
        }
      } catch (const Error& e) {
        failures++;
        last_failure = std::string("new: ") + e.what();
      }
      good += 2;
    }
    done = true;
    flood.join();
  }
  std::string log = testing::internal::GetCapturedStderr();
  set_log_level(saved);
  EXPECT_GE(cycles, 20000u);
  EXPECT_EQ(failures, 0u) << "of " << good << " requests during " << cycles << " connect/close cycles; last: " << last_failure;
  EXPECT_LE(std::count(log.begin(), log.end(), '\n'), 20) << log.substr(0, 2000);
}

// At the limit with every slot held by a live client, new connections are refused, the
// established ones are still served, and the refusals make one log line with a count.
TEST(Server, RefusalsAtTheLimitLogOneLineWithACount) {
  LogLevel saved = log_level();
  set_log_level(LogLevel::kInfo);
  testing::internal::CaptureStderr();
  {
    net::ServerOptions o = small_options();
    o.max_connections = 4;
    TestServer t(o);
    std::vector<UniqueFd> held;
    for (int i = 0; i < 4; ++i) held.push_back(t.raw());
    ASSERT_TRUE(eventually([&] { return t.server.stats().connections_open == 4; }));
    // Each one stays open until the server has closed it (a peer that closed first is not
    // refused: it is dropped unseen).
    for (int i = 0; i < 1000; ++i) {
      UniqueFd fd = t.raw();
      ASSERT_TRUE(wait_closed(fd.get(), std::chrono::seconds(20))) << i;
    }
    EXPECT_EQ(t.server.stats().connections_refused, 1000u);
    net::FrameDecoder dec;
    write_all(held[3].get(), request_frame(7, "echo"));
    auto r = read_response(held[3].get(), dec);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->ok);
  }
  std::string log = testing::internal::GetCapturedStderr();
  set_log_level(saved);
  size_t refusal_lines = 0;
  for (size_t at = 0; (at = log.find("connection refused", at)) != std::string::npos; ++at) refusal_lines++;
  EXPECT_GE(refusal_lines, 1u);
  EXPECT_LE(refusal_lines, 3u) << log.substr(0, 2000);
  EXPECT_NE(log.find("repeated "), std::string::npos) << log.substr(0, 2000);
}

TEST(Server, AbruptDisconnectsMidFrameAndMidRequest) {
  TestServer t(small_options());
  {
    UniqueFd fd = t.raw();
    Bytes frame = request_frame(1, "echo", Value::map({entry("x", Value::bytes(Bytes(1000, 1)))}));
    write_all(fd.get(), ByteView(frame).first(500));
  }
  {
    UniqueFd fd = t.raw();
    write_all(fd.get(), request_frame(2, "gated"));
    t.gate->wait_for_waiters(1);
  }  // gone while its request runs; the response has nowhere to go
  EXPECT_TRUE(eventually([&] { return t.server.stats().connections_open == 0; }));
  t.gate->release();
  EXPECT_TRUE(t.echo_works());
}

TEST(Server, HalfClosedClientStillGetsItsResponses) {
  TestServer t(small_options());
  UniqueFd fd = t.raw();
  Bytes wire = request_frame(1, "echo");
  Bytes second = request_frame(2, "gated");
  wire.insert(wire.end(), second.begin(), second.end());
  write_all(fd.get(), wire);
  ::shutdown(fd.get(), SHUT_WR);
  t.gate->wait_for_waiters(1);
  t.gate->release();
  Bytes got;
  EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(20), &got));
  net::FrameDecoder dec;
  dec.feed(got);
  int n = 0;
  while (auto f = dec.next()) {
    EXPECT_TRUE(net::decode_response(*f).ok);
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST(Server, GracefulShutdownFinishesInFlightRequests) {
  TestServer t(small_options());
  net::Client c(t.server.endpoint());
  auto in_flight = c.request_async("gated", Value::map({entry("k", Value::uint(1))}));
  t.gate->wait_for_waiters(1);
  std::thread stopper([&] { t.server.stop(); });
  // Once stopping, new connections are refused and new requests get an "io" error...
  EXPECT_TRUE(eventually([&] {
    try {
      net::connect(t.server.endpoint(), std::chrono::milliseconds(200));
      return false;
    } catch (const Error&) {
      return true;
    }
  }));
  net::Response late = c.request("echo");
  EXPECT_FALSE(late.ok);
  EXPECT_EQ(late.code, Errc::kIo);
  EXPECT_NE(late.message.find("shutting down"), std::string::npos);
  // ...while the one in flight completes normally.
  t.gate->release();
  net::Response r = in_flight.get();
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.body, Value::map({entry("k", Value::uint(1))}));
  stopper.join();
  EXPECT_FALSE(std::filesystem::exists(t.server.endpoint().path));
}

TEST(Server, StreamsDeliverPartsInOrderWithBackpressure) {
  net::ServerOptions o = small_options();
  o.stream_buffer_limit = 128 * 1024;
  TempDir tmp;
  net::Server s(net::Endpoint::unix_path(tmp.sock()), o);
  s.handle("upload", [](const net::Request& r, net::RequestContext& ctx) {
    uint64_t parts = 0, bytes = 0, expect = 0;
    bool in_order = true;
    while (auto part = ctx.next_part()) {
      if (const Value* d = part->find("data")) {
        in_order &= !d->as_bytes().empty() && d->as_bytes()[0] == static_cast<uint8_t>(expect++);
        bytes += d->as_bytes().size();
      }
      ++parts;
    }
    return net::Response::success(Value::map({entry("name", *r.body.find("name")), entry("parts", Value::uint(parts)),
                                              entry("bytes", Value::uint(bytes)), entry("in_order", Value::boolean(in_order)),
                                              entry("streaming", Value::boolean(ctx.streaming()))}));
  });
  s.handle("first-only", [](const net::Request&, net::RequestContext& ctx) {
    ctx.next_part();
    return net::Response::success();
  });
  s.start();
  net::Client c(s.endpoint());
  auto up = c.stream("upload", Value::map({entry("name", Value::text("model.bin"))}));
  for (int i = 0; i < 64; ++i) up.send(Value::map({entry("data", Value::bytes(Bytes(64 * 1024, static_cast<uint8_t>(i))))}));
  net::Response r = up.finish();
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.body.find("parts")->as_uint(), 65u);  // 64 data parts + the empty last one
  EXPECT_EQ(r.body.find("bytes")->as_uint(), 64u * 64 * 1024);
  EXPECT_TRUE(r.body.find("in_order")->as_bool());
  EXPECT_TRUE(r.body.find("streaming")->as_bool());

  // A handler that stops early: the rest of its stream is discarded, the connection goes on.
  auto early = c.stream("first-only");
  for (int i = 0; i < 20; ++i) {
    try {
      early.send(Value::map({entry("data", Value::bytes(Bytes(1000, 1)))}));
    } catch (const Error&) {
      break;  // the server already answered
    }
  }
  EXPECT_TRUE(early.finish().ok);
  // A stream for an unknown op is refused once; its parts are swallowed.
  auto unknown = c.stream("nope");
  try {
    unknown.send(Value::map());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);  // the refusal can arrive before this part is sent
  }
  net::Response refused = unknown.finish();
  EXPECT_EQ(refused.code, Errc::kUnsupported);
  EXPECT_TRUE(c.request("upload", Value::map({entry("name", Value::text("tiny"))})).ok);
  EXPECT_EQ(s.stats().error_responses, 1u);
}

TEST(Server, StreamAbortedByDisconnectFailsTheHandler) {
  TempDir tmp;
  net::Server s(net::Endpoint::unix_path(tmp.sock()), small_options());
  std::atomic<int> aborted{0};
  s.handle("upload", [&](const net::Request&, net::RequestContext& ctx) {
    try {
      while (ctx.next_part()) {
      }
    } catch (const Error& e) {
      if (e.code() == Errc::kIo) aborted++;
      throw;
    }
    return net::Response::success();
  });
  s.start();
  {
    UniqueFd fd = net::connect(s.endpoint());
    write_all(fd.get(), request_frame(1, "upload", Value::map(), true));
  }
  EXPECT_TRUE(eventually([&] { return aborted == 1; }));
}

TEST(Server, ConnectionStateAndDisconnectHook) {
  TempDir tmp;
  net::Server s(net::Endpoint::unix_path(tmp.sock()), small_options());
  auto destroyed = std::make_shared<std::atomic<int>>(0);
  struct Session {
    std::shared_ptr<std::atomic<int>> counter;
    uint64_t value = 0;
    ~Session() { (*counter)++; }
  };
  s.handle("bind", [destroyed](const net::Request& r, net::RequestContext& ctx) {
    auto session = std::make_shared<Session>();
    session->counter = destroyed;
    session->value = r.body.find("v")->as_uint();
    ctx.set_connection_state(session);
    return net::Response::success();
  });
  s.handle("get", [](const net::Request&, net::RequestContext& ctx) {
    auto st = std::static_pointer_cast<Session>(ctx.connection_state());
    return net::Response::success(Value::map({entry("v", st ? Value::uint(st->value) : Value::null()),
                                              entry("conn", Value::uint(ctx.connection_id()))}));
  });
  std::mutex mu;
  std::vector<uint64_t> closed;
  s.on_disconnect([&](uint64_t id) {
    std::lock_guard lock(mu);
    closed.push_back(id);
  });
  s.start();
  auto a = std::make_unique<net::Client>(s.endpoint());
  net::Client b(s.endpoint());
  a->call("bind", Value::map({entry("v", Value::uint(7))}));
  Value ga = a->call("get");
  Value gb = b.call("get");
  EXPECT_EQ(ga.find("v")->as_uint(), 7u);
  EXPECT_TRUE(gb.find("v")->is_null());  // state is per connection
  EXPECT_NE(ga.find("conn")->as_uint(), gb.find("conn")->as_uint());
  uint64_t a_id = ga.find("conn")->as_uint();
  a.reset();
  EXPECT_TRUE(eventually([&] { return *destroyed == 1; }));
  EXPECT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return closed.size() == 1 && closed[0] == a_id;
  }));
  s.stop();  // before `closed` goes out of scope: the hook runs for b too
}

TEST(Server, RegistrationAndLifecycleErrors) {
  TempDir tmp;
  net::Server s(net::Endpoint::unix_path(tmp.sock()));
  s.handle("x", [](const net::Request&, net::RequestContext&) { return net::Response::success(); });
  EXPECT_THROW(s.handle("x", [](const net::Request&, net::RequestContext&) { return net::Response::success(); }), Error);
  EXPECT_THROW(s.handle("", [](const net::Request&, net::RequestContext&) { return net::Response::success(); }), Error);
  s.start();
  EXPECT_THROW(s.start(), Error);
  EXPECT_THROW(s.handle("y", [](const net::Request&, net::RequestContext&) { return net::Response::success(); }), Error);
  // A second server cannot take a live socket.
  net::Server other(net::Endpoint::unix_path(tmp.sock()));
  EXPECT_THROW(other.start(), Error);
  s.stop();
  s.stop();
}

// ---- fast paths (Server::handle with a FastPath) and borrowed request bytes ----

namespace {
// "fast": the fast path answers {"n", "via": "fast"} and notes who ran it; body "defer" hands
// the request to the handler, "finish" finishes on a worker, "refuse" throws.
struct FastServer {
  explicit FastServer(bool borrow = true) : server(net::Endpoint::unix_path(tmp.sock()), options(borrow)) {
    server.handle(
        "fast",
        [this](const net::Request& r, net::RequestContext&) {
          std::lock_guard lock(mu);
          worker_threads.push_back(std::this_thread::get_id());
          return net::Response::success(Value::map({entry("n", *r.body.find("n")), entry("via", Value::text("handler"))}));
        },
        [this](const net::Request& r, net::RequestContext&) -> net::FastOutcome {
          {
            std::lock_guard lock(mu);
            fast_threads.push_back(std::this_thread::get_id());
            fast_order.push_back(r.body.find("n")->as_uint());
          }
          if (r.body.find("defer")) return net::FastOutcome::defer();
          if (r.body.find("refuse")) throw Error(Errc::kPolicy, "refused by the fast path");
          uint64_t n = r.body.find("n")->as_uint();
          if (r.body.find("finish"))
            return net::FastOutcome::finish_on_worker([this, n](net::RequestContext&) {
              std::lock_guard lock(mu);
              worker_threads.push_back(std::this_thread::get_id());
              return net::Response::success(Value::map({entry("n", Value::uint(n)), entry("via", Value::text("finish"))}));
            });
          return net::FastOutcome::answer(
              net::Response::success(Value::map({entry("n", Value::uint(n)), entry("via", Value::text("fast"))})));
        });
    server.handle("inspect", [](const net::Request& r, net::RequestContext& ctx) {
      const Value& d = *r.body.find("data");
      uint64_t parts_borrowed = 0, part_bytes = 0;
      while (auto part = ctx.next_part()) {
        if (const Value* pd = part->find("data")) {
          parts_borrowed += pd->borrowed();
          part_bytes += pd->bytes_view().size();
        }
      }
      return net::Response::success(Value::map({entry("borrowed", Value::boolean(d.borrowed())),
                                                entry("data", Value::bytes(d.bytes_view())),
                                                entry("parts_borrowed", Value::uint(parts_borrowed)),
                                                entry("part_bytes", Value::uint(part_bytes))}));
    });
    server.start();
  }
  static net::ServerOptions options(bool borrow) {
    net::ServerOptions o;
    o.workers = 2;
    o.borrow_bytes = borrow;
    return o;
  }
  TempDir tmp;
  net::Server server;
  std::mutex mu;
  std::vector<std::thread::id> fast_threads, worker_threads;
  std::vector<uint64_t> fast_order;
};
}  // namespace

TEST(ServerFastPath, AnswersOnTheEventLoopInArrivalOrder) {
  FastServer t;
  UniqueFd fd = net::connect(t.server.endpoint());
  Bytes wire;
  for (uint64_t i = 0; i < 200; ++i) {
    Bytes f = request_frame(i + 1, "fast", Value::map({entry("n", Value::uint(i))}));
    wire.insert(wire.end(), f.begin(), f.end());
  }
  write_all(fd.get(), wire);  // one write: many requests per read
  net::FrameDecoder dec;
  std::set<uint64_t> ids;
  for (int i = 0; i < 200; ++i) {
    auto r = read_response(fd.get(), dec);
    ASSERT_TRUE(r && r->ok);
    EXPECT_EQ(r->body.find("via")->as_text(), "fast");
    EXPECT_EQ(r->body.find("n")->as_uint() + 1, r->id);
    ids.insert(r->id);
  }
  EXPECT_EQ(ids.size(), 200u);
  std::lock_guard lock(t.mu);
  std::vector<uint64_t> want(200);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(t.fast_order, want);  // the wire order
  EXPECT_TRUE(t.worker_threads.empty());
  EXPECT_EQ(std::count(t.fast_threads.begin(), t.fast_threads.end(), t.fast_threads[0]), 200);  // one thread
  EXPECT_NE(t.fast_threads[0], std::this_thread::get_id());
  EXPECT_EQ(t.server.stats().requests, 200u);
}

TEST(ServerFastPath, DefersFinishesOnAWorkerOrRefuses) {
  FastServer t;
  net::Client c(t.server.endpoint());
  Value deferred = c.call("fast", Value::map({entry("n", Value::uint(1)), entry("defer", Value::boolean(true))}));
  EXPECT_EQ(deferred.find("via")->as_text(), "handler");
  Value finished = c.call("fast", Value::map({entry("n", Value::uint(2)), entry("finish", Value::boolean(true))}));
  EXPECT_EQ(finished.find("via")->as_text(), "finish");
  EXPECT_EQ(finished.find("n")->as_uint(), 2u);
  net::Response refused = c.request("fast", Value::map({entry("n", Value::uint(3)), entry("refuse", Value::boolean(true))}));
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.code, Errc::kPolicy);
  EXPECT_EQ(refused.message, "refused by the fast path");
  // A stream never takes the fast path: its handler gets the parts.
  auto up = c.stream("fast", Value::map({entry("n", Value::uint(4))}));
  EXPECT_EQ(up.finish().value_or_throw().find("via")->as_text(), "handler");
  std::lock_guard lock(t.mu);
  EXPECT_EQ(t.fast_order, (std::vector<uint64_t>{1, 2, 3}));
  ASSERT_EQ(t.worker_threads.size(), 3u);
  for (auto w : t.worker_threads) EXPECT_NE(w, t.fast_threads[0]);  // handler and finish ran on workers
  EXPECT_EQ(t.server.stats().requests_in_flight, 0u);
  EXPECT_EQ(t.server.stats().error_responses, 1u);
}

TEST(ServerFastPath, BorrowedBytesPointIntoTheFrameForHandlersAndStreamParts) {
  for (bool borrow : {true, false}) {
    FastServer t(borrow);
    net::Client c(t.server.endpoint());
    Bytes small(100, 0x11), large(net::FrameDecoder::kDirectFrom + 1000, 0x22);
    for (const Bytes* data : {&small, &large}) {
      auto up = c.stream("inspect", Value::map({entry("data", Value::bytes(*data))}));
      for (int i = 0; i < 3; ++i) up.send(Value::map({entry("data", Value::bytes(Bytes(300 * 1024, static_cast<uint8_t>(i))))}));
      Value r = up.finish().value_or_throw();
      EXPECT_EQ(r.find("borrowed")->as_bool(), borrow);
      EXPECT_EQ(r.find("data")->as_bytes(), *data);  // intact after the decoder moved on
      EXPECT_EQ(r.find("parts_borrowed")->as_uint(), borrow ? 3u : 0u);
      EXPECT_EQ(r.find("part_bytes")->as_uint(), 3u * 300 * 1024);
    }
  }
}
