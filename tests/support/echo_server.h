// Test helper for relays (net::Proxy, the ingress forwarders, the egress tunnel): a TCP echo
// server, a client round trip with half-close, and a byte pattern.
#pragma once

#include <sys/socket.h>

#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/net_util.h"

namespace sn_test {

// A TCP echo server on 127.0.0.1: echoes until the client's FIN, then sends its own FIN.
class EchoServer {
 public:
  EchoServer() {
    listen_ = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
    port_ = static_cast<uint16_t>(net::bound_endpoint(listen_.get(), net::Endpoint::parse("tcp://127.0.0.1:0")).port);
    acceptor_ = std::thread([this] {
      for (;;) {
        int fd = ::accept(listen_.get(), nullptr, nullptr);
        if (fd < 0) return;
        std::lock_guard lock(mu_);
        threads_.emplace_back([fd] {
          UniqueFd c(fd);
          uint8_t buf[16384];
          ssize_t n;
          while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) write_all(fd, {buf, static_cast<size_t>(n)});
          ::shutdown(fd, SHUT_WR);
        });
      }
    });
  }
  ~EchoServer() {
    ::shutdown(listen_.get(), SHUT_RDWR);
    acceptor_.join();
    for (auto& t : threads_) t.join();
  }
  uint16_t port() const { return port_; }

 private:
  UniqueFd listen_;
  uint16_t port_;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

// Sends data, half-closes, and returns everything read until the peer's FIN.
inline Bytes round_trip(const net::Endpoint& ep, const Bytes& data) {
  UniqueFd fd = net::connect(ep);
  std::thread writer([&] {
    write_all(fd.get(), data);
    ::shutdown(fd.get(), SHUT_WR);
  });
  Bytes got;
  bool closed = wait_closed(fd.get(), std::chrono::seconds(30), &got);
  writer.join();
  EXPECT_TRUE(closed) << "no FIN came back";
  return got;
}

inline Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 31 + seed);
  return b;
}

}  // namespace sn_test
