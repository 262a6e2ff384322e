#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <atomic>
#include <thread>

#include "shield_nitro/net/relay_loop.h"
#include "shield_nitro/relay/ingress.h"
#include "relay_test_support.h"
#include "support/echo_server.h"

using namespace shield_nitro;
using namespace sn_test;

namespace {

relay::IngressOptions forward(const std::string& name, const std::string& listen, const net::Endpoint& target) {
  relay::IngressOptions o;
  o.name = name;
  o.listen = net::Endpoint::parse(listen);
  o.target = target;
  return o;
}

// The host's and the enclave's forwarders in front of an echo server (the app):
// client → tcp (host) → vsock://16:5000 → (enclave) → tcp://127.0.0.1:<app>.
struct IngressPath {
  SimulatedVsock vsock;
  EchoServer app;
  relay::IngressForwarder enclave{forward("ingress 5000", "vsock://ANY:5000", net::Endpoint::tcp("127.0.0.1", app.port()))};
  relay::IngressForwarder host{forward("ingress app", "tcp://127.0.0.1:0", net::Endpoint::vsock(16, 5000))};
  IngressPath() {
    enclave.start();
    host.start();
  }
};

// Reads exactly n bytes, or fewer if the peer closes first.
Bytes read_n(int fd, size_t n) {
  Bytes got;
  uint8_t buf[4096];
  while (got.size() < n) {
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - got.size()), 0);
    if (r <= 0) break;
    got.insert(got.end(), buf, buf + r);
  }
  return got;
}

}  // namespace

TEST(Ingress, FiveHundredConcurrentConnectionsThroughHostAndEnclaveForwarders) {
  IngressPath path;
  constexpr int kClients = 500;
  std::atomic<int> good{0};
  std::atomic<uint64_t> sent{0};
  std::vector<std::thread> clients;
  // Every connection is open at once: each sends its first half, waits for the echo, and only
  // then, when all are connected, sends the rest (so none finishes before the last one starts).
  std::atomic<int> connected{0};
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      Bytes data = pattern(2048 + static_cast<size_t>(i) * 7, static_cast<uint8_t>(i));
      sent += data.size();
      try {
        UniqueFd fd = net::connect(path.host.endpoint(), std::chrono::seconds(30));
        size_t half = data.size() / 2;
        write_all(fd.get(), ByteView(data).first(half));
        Bytes got = read_n(fd.get(), half);
        connected++;
        while (connected < kClients) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        write_all(fd.get(), ByteView(data).subspan(half));
        ::shutdown(fd.get(), SHUT_WR);
        EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(60), &got));
        if (got == data) good++;
      } catch (const Error& e) {
        connected++;
        ADD_FAILURE() << "client " << i << ": " << e.what();
      }
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(good, kClients);
  path.host.stop();
  path.enclave.stop();
  for (const relay::IngressForwarder* f : {&path.host, &path.enclave}) {
    relay::IngressStats st = f->stats();
    EXPECT_EQ(st.connections, static_cast<uint64_t>(kClients));
    EXPECT_EQ(st.failed_connects, 0u);
    EXPECT_EQ(st.bytes_up, sent.load());
    EXPECT_EQ(st.bytes_down, sent.load());
    EXPECT_EQ(st.active, 0u);
  }
}

TEST(Ingress, BackpressureBothWaysLosesNoByte) {
  // The client writes 16 MiB, far more than every socket buffer on the way holds, and reads the
  // echo only once its own write would block: by then the echo app's answer is stuck, the app
  // has stopped reading and both relays have a write pending in each direction. The relays
  // listen for writability only while a write is pending, so they must ask for it here, or the
  // transfer stalls.
  IngressPath path;
  const Bytes data = pattern(16 << 20, 5);
  UniqueFd fd = net::connect(path.host.endpoint());
  net::set_nonblocking(fd.get(), true);
  std::atomic<bool> blocked{false};
  Bytes got;
  std::thread reader([&] {
    while (!blocked) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(120), &got));
  });
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::send(fd.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    blocked = true;
    pollfd p{fd.get(), POLLOUT, 0};
    if (n == 0 || errno != EAGAIN || ::poll(&p, 1, 60000) != 1) {
      ADD_FAILURE() << "the relays stopped taking bytes at " << off << ": " << std::strerror(errno);
      break;
    }
  }
  ::shutdown(fd.get(), SHUT_WR);
  blocked = true;
  reader.join();
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

TEST(Ingress, BulkTransfersAreSplicedAndByteExact) {
  // Reads that fill the relay's buffer switch that direction to splice(2): 8 MiB each way
  // through both forwarders (TCP → unix → TCP and back), half-close passed on at the end.
  uint64_t before = net::RelayLoop::spliced_bytes();
  IngressPath path;
  const Bytes data = pattern(8 << 20, 9);
  Bytes got = round_trip(path.host.endpoint(), data);
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  path.host.stop();  // relays end: their counts are in
  path.enclave.stop();
  EXPECT_GT(net::RelayLoop::spliced_bytes(), before);
  EXPECT_EQ(path.host.stats().bytes_up, data.size());
  EXPECT_EQ(path.enclave.stats().bytes_down, data.size());
}

TEST(Ingress, APeerThatResetsMidTransferEndsTheRelayOnBothSides) {
  // Bulk bytes (so the relays splice), then a reset instead of a FIN: from the client towards
  // the app, and from the app towards the client. The other end must see its connection end.
  SimulatedVsock vsock;
  UniqueFd app = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  net::Endpoint app_ep = net::bound_endpoint(app.get(), net::Endpoint::parse("tcp://127.0.0.1:0"));
  relay::IngressForwarder enclave(forward("ingress 5002", "vsock://ANY:5002", app_ep));
  relay::IngressForwarder host(forward("ingress app", "tcp://127.0.0.1:0", net::Endpoint::vsock(16, 5002)));
  enclave.start();
  host.start();
  auto reset = [](int fd) {
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
  };
  const Bytes data = pattern(2 << 20, 3);
  for (bool client_resets : {true, false}) {
    UniqueFd c = net::connect(host.endpoint());
    UniqueFd a(::accept(app.get(), nullptr, nullptr));
    int sender = client_resets ? c.get() : a.get(), receiver = client_resets ? a.get() : c.get();
    std::thread writer([&] { write_all(sender, data); });
    Bytes got;
    while (got.size() < data.size()) {  // all of it arrives before the reset
      uint8_t b[65536];
      ssize_t n = ::recv(receiver, b, sizeof b, 0);
      if (n <= 0) break;
      got.insert(got.end(), b, b + n);
    }
    writer.join();
    EXPECT_TRUE(got == data) << (client_resets ? "client" : "app");
    reset(client_resets ? c.release() : a.release());
    EXPECT_TRUE(wait_closed(receiver, std::chrono::seconds(30))) << (client_resets ? "the app" : "the client") << " was left open";
  }
  for (int i = 0; i < 3000 && (host.stats().active || enclave.stats().active); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(host.stats().active, 0u);
  EXPECT_EQ(enclave.stats().active, 0u);
}

TEST(Ingress, HalfCloseReachesTheAppWhileItsAnswerStillFlows) {
  // The app reads until the client's FIN, then answers with the byte count and closes: only a
  // relay that passes the FIN on while keeping the other direction open delivers the answer.
  // The answer and the app's FIN arrive together, which an edge-triggered relay must not take
  // for one event (it once lost the FIN that way now and then): several rounds.
  constexpr int kRounds = 20;
  SimulatedVsock vsock;
  UniqueFd app = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  net::Endpoint app_ep = net::bound_endpoint(app.get(), net::Endpoint::parse("tcp://127.0.0.1:0"));
  std::thread app_thread([&] {
    for (int i = 0; i < kRounds; ++i) {
      UniqueFd c(::accept(app.get(), nullptr, nullptr));
      Bytes all;
      wait_closed(c.get(), std::chrono::seconds(30), &all);
      std::string answer = "got " + std::to_string(all.size());
      write_all(c.get(), as_bytes(answer));
    }
  });
  relay::IngressForwarder enclave(forward("ingress 5001", "vsock://ANY:5001", app_ep));
  relay::IngressForwarder host(forward("ingress app", "tcp://127.0.0.1:0", net::Endpoint::vsock(16, 5001)));
  enclave.start();
  host.start();
  for (int i = 0; i < kRounds; ++i) {
    UniqueFd fd = net::connect(host.endpoint());
    size_t n = 100000 + static_cast<size_t>(i);
    write_all(fd.get(), pattern(n, 1));
    ::shutdown(fd.get(), SHUT_WR);
    Bytes got;
    EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(30), &got)) << "round " << i;
    EXPECT_EQ(to_string(got), "got " + std::to_string(n));
  }
  app_thread.join();
}

TEST(Ingress, ADeadTargetClosesTheClientCleanly) {
  SimulatedVsock vsock;
  // Host side with no enclave listening on the vsock port, enclave side with no app on the port.
  relay::IngressForwarder host(forward("ingress app", "tcp://127.0.0.1:0", net::Endpoint::vsock(16, 5002)));
  relay::IngressForwarder enclave(
      forward("ingress 5003", "vsock://ANY:5003", net::Endpoint::tcp("127.0.0.1", dead_port())));
  host.start();
  enclave.start();
  for (const net::Endpoint& ep : {host.endpoint(), net::Endpoint::vsock(16, 5003)}) {
    UniqueFd fd = net::connect(ep);
    uint8_t b;
    // A FIN (recv returns 0), not a reset and not a hang.
    pollfd p{fd.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 30000), 1) << ep.to_string();
    EXPECT_EQ(::recv(fd.get(), &b, 1, 0), 0) << ep.to_string() << ": " << std::strerror(errno);
  }
  EXPECT_EQ(host.stats().failed_connects, 1u);
  EXPECT_EQ(enclave.stats().failed_connects, 1u);
  // Still serving: the next connection is refused the same way, not left hanging.
  UniqueFd again = net::connect(host.endpoint());
  EXPECT_TRUE(wait_closed(again.get(), std::chrono::seconds(30)));
}

TEST(Ingress, StopClosesOpenConnections) {
  IngressPath path;
  UniqueFd fd = net::connect(path.host.endpoint());
  write_all(fd.get(), as_bytes(std::string("ping")));
  EXPECT_EQ(to_string(read_n(fd.get(), 4)), "ping");
  path.host.stop();  // returns although the client keeps its connection open
  EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(30)));
  EXPECT_EQ(path.host.stats().active, 0u);
}

TEST(Ingress, ASessionReplacesThePassthroughRelay) {
  // The slot the attested-TLS mode uses: here a session that taps what it relays.
  IngressPath path;
  std::atomic<uint64_t> tapped{0};
  relay::IngressOptions o = forward("ingress tapped", "tcp://127.0.0.1:0", net::Endpoint::vsock(16, 5000));
  o.session = [&](int client, int target, int stop_fd) {
    net::RelayOptions ro;
    ro.stop_fd = stop_fd;
    ro.tap = [&](net::RelayDirection, ByteView b) { tapped += b.size(); };
    return net::relay(client, target, ro);
  };
  relay::IngressForwarder fwd(o);
  fwd.start();
  Bytes data = pattern(5000, 9);
  EXPECT_EQ(round_trip(fwd.endpoint(), data), data);
  fwd.stop();
  EXPECT_EQ(tapped, 2 * data.size());
}

TEST(Ingress, RequiresBothEndpoints) {
  relay::IngressOptions o;
  o.target = net::Endpoint::tcp("127.0.0.1", 1);
  EXPECT_THROW(relay::IngressForwarder{o}, Error);
}

TEST(Ingress, OptionsFromTheRuntimeAndHostConfigs) {
  runtime::IngressConfig entry;
  entry.vsock_port = 5000;
  entry.app_port = 8080;
  relay::IngressOptions e = relay::enclave_ingress(entry);
  EXPECT_EQ(e.listen.to_string(), "vsock://ANY:5000");
  EXPECT_EQ(e.target.to_string(), "tcp://127.0.0.1:8080");
  runtime::HostEnclave app;
  app.name = "app";
  app.cid = 21;
  relay::IngressOptions h = relay::host_ingress({"tcp://0.0.0.0:8080", 5000}, app);
  EXPECT_EQ(h.listen.to_string(), "tcp://0.0.0.0:8080");
  EXPECT_EQ(h.target.to_string(), "vsock://21:5000");
  EXPECT_EQ(h.name, "ingress app 5000");
  EXPECT_THROW(relay::host_ingress({"0.0.0.0:8080", 5000}, app), Error);
}
