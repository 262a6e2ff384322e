// HTTP/1.1 load generation for the benchmarks of HTTP servers and of what relays them
// (bench/kms_bench.cpp, bench/relay_bench.cpp): one thread keeps one request in flight on each of
// C keep-alive connections, as real clients do, and measures requests/s and latency. Over TLS
// too (bench/attested_tls_bench.cpp): handshakes happen before the clock starts.
#pragma once

#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/fd.h"

namespace sn_bench {

using namespace shield_nitro;

struct HttpLoad {
  double req_per_s = 0, p50_us = 0, p99_us = 0;
  size_t not_ok = 0;  // answers other than 200 (ThrottlingException when shedding)
};

struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// A client TLS connection with ctx over the connected socket fd, its handshake done.
inline SslPtr tls_connect(SSL_CTX* ctx, int fd) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1 || SSL_connect(ssl.get()) != 1)
    throw Error(Errc::kIo, "bench: TLS handshake failed");
  return ssl;
}

// Keeps one request in flight on each of `conns` connections to ep until `total` answers; an
// answer is a head plus Content-Length bytes (an echoed request parses the same way). With
// `tls`, each connection first completes a TLS handshake with that client context.
// `at_end`, if set, runs after the last answer while every connection is still open (a
// measurement that must not see the servers' per-connection threads end).
inline HttpLoad drive_http(const net::Endpoint& ep, int conns, const std::string& request, size_t total, bool check_status,
                           SSL_CTX* tls = nullptr, const std::function<void()>& at_end = {}) {
  struct Slot {
    UniqueFd fd;
    SslPtr ssl;  // declared after fd: freed before the socket closes
    std::string in;
    size_t out_off = 0;
    int64_t sent_ns = 0;
  };
  std::vector<Slot> slots(static_cast<size_t>(conns));
  for (auto& s : slots) {
    s.fd = net::connect(ep);
    if (tls) s.ssl = tls_connect(tls, s.fd.get());
    net::set_nonblocking(s.fd.get(), true);
    s.sent_ns = monotonic_ns();
  }
  std::vector<int64_t> lat;
  lat.reserve(total + slots.size());
  std::vector<pollfd> p(slots.size());
  std::vector<char> buf(1 << 16);
  HttpLoad r;
  int64_t start = monotonic_ns();
  while (lat.size() < total) {
    for (size_t i = 0; i < slots.size(); ++i)
      p[i] = {slots[i].fd.get(), static_cast<short>(POLLIN | (slots[i].out_off < request.size() ? POLLOUT : 0)), 0};
    if (::poll(p.data(), p.size(), 10000) <= 0) throw Error(Errc::kTimeout, "bench: no answer in 10 s");
    for (size_t i = 0; i < slots.size(); ++i) {
      Slot& s = slots[i];
      if ((p[i].revents & POLLOUT) && s.out_off < request.size()) {
        const char* at = request.data() + s.out_off;
        size_t left = request.size() - s.out_off;
        ssize_t w = s.ssl ? SSL_write(s.ssl.get(), at, static_cast<int>(left)) : ::send(s.fd.get(), at, left, MSG_NOSIGNAL);
        if (w > 0) s.out_off += static_cast<size_t>(w);
      }
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (s.ssl) {
        // Drain every whole record: what OpenSSL buffers would not wake poll() again.
        size_t got = 0;
        int n;
        while ((n = SSL_read(s.ssl.get(), buf.data(), static_cast<int>(buf.size()))) > 0) {
          s.in.append(buf.data(), static_cast<size_t>(n));
          got += static_cast<size_t>(n);
        }
        if (got == 0) {
          int e = SSL_get_error(s.ssl.get(), n);
          if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            throw Error(Errc::kIo, "bench: the server closed a TLS connection");
          continue;
        }
      } else {
        ssize_t n = ::recv(s.fd.get(), buf.data(), buf.size(), 0);
        if (n < 0 && errno == EAGAIN) continue;
        if (n <= 0) throw Error(Errc::kIo, "bench: the server closed a connection");
        s.in.append(buf.data(), static_cast<size_t>(n));
      }
      auto end = s.in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      auto cl = s.in.find("Content-Length: ");
      size_t len = cl < end ? std::stoul(s.in.substr(cl + 16)) : 0;
      if (s.in.size() < end + 4 + len) continue;
      int64_t now = monotonic_ns();
      lat.push_back(now - s.sent_ns);
      if (check_status && s.in.rfind("HTTP/1.1 200 ", 0) != 0) r.not_ok++;
      s.in.erase(0, end + 4 + len);
      s.out_off = 0;  // next request on this connection
      s.sent_ns = now;
    }
  }
  double secs = static_cast<double>(monotonic_ns() - start) / 1e9;
  if (at_end) at_end();
  std::sort(lat.begin(), lat.end());
  r.req_per_s = static_cast<double>(lat.size()) / secs;
  r.p50_us = static_cast<double>(lat[lat.size() / 2]) / 1e3;
  r.p99_us = static_cast<double>(lat[lat.size() * 99 / 100]) / 1e3;
  return r;
}

// Best of 3 runs (highest requests/s): other processes on the 2 cores only ever slow a run.
template <typename Fn>
HttpLoad best_of_3(Fn run) {
  HttpLoad best;
  for (int i = 0; i < 3; ++i) {
    HttpLoad l = run();
    if (l.req_per_s > best.req_per_s) best = l;
  }
  return best;
}

}  // namespace sn_bench
