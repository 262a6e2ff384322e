// Test helpers for the network protocol: raw socket writes, waiting for a close, reading
// response frames, building request frames (and TempDir).
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "shield_nitro/core/error.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/frame.h"
#include "shield_nitro/net/message.h"
#include "support/temp_dir.h"

namespace sn_test {

using namespace shield_nitro;

using shield_nitro::test_support::TempDir;

inline void write_all(int fd, ByteView data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) throw Error(Errc::kIo, "test write failed");
    off += static_cast<size_t>(n);
  }
}

// Reads until the peer closes or the timeout passes; true when it closed.
inline bool wait_closed(int fd, std::chrono::milliseconds timeout, Bytes* got = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint8_t buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
    if (got) got->insert(got->end(), buf, buf + n);
  }
}

// Reads one response frame (nullopt on close or timeout).
inline std::optional<net::Response> read_response(int fd, net::FrameDecoder& dec,
                                                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint8_t buf[65536];
  for (;;) {
    if (auto f = dec.next()) return net::decode_response(*f);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    dec.feed({buf, static_cast<size_t>(n)});
  }
}

inline Bytes request_frame(uint64_t id, const std::string& op, cbor::Value body = cbor::Value::map(), bool more = false) {
  net::Request r;
  r.id = id;
  r.op = op;
  r.body = std::move(body);
  r.more = more;
  Bytes out;
  net::append_request_frame(out, r);
  return out;
}

}  // namespace sn_test
