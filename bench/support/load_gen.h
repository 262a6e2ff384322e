// Load generation for the request benchmarks (bench/net_bench.cpp, bench/enclave_bench.cpp):
// the raw epoll echo floor and a single-threaded driver that keeps kDepth pipelined requests in
// flight on each of C connections, stamping request ids into pre-encoded frames.
#pragma once

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "shield_nitro/cbor/value.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/fd.h"
#include "shield_nitro/net/message.h"

namespace sn_bench {

using namespace shield_nitro;

constexpr int kDepth = 8;                 // requests in flight per connection
constexpr size_t kRequestsPerRun = 40000;
constexpr double kTarget = 50000;          // req/s at 64 clients on 2 cores (the issue's target)
constexpr uint32_t kFirstId = 0x10000000;  // forces the 4-byte integer head (0x1a)
// Frame header (4), then a4 61 76 01 62 69 64 1a: the id.
constexpr size_t kIdOffset = 4 + 8;

// Echoes whatever arrives, on one epoll thread: the floor of a request benchmark.
class RawEchoServer {
 public:
  explicit RawEchoServer(const net::Endpoint& ep) : listen_(net::listen(ep)), epoll_(::epoll_create1(0)) {
    net::set_nonblocking(listen_.get(), true);
    add(listen_.get());
    thread_ = std::thread([this] { run(); });
  }
  ~RawEchoServer() {
    stop_ = true;
    thread_.join();
    for (int fd : fds_) ::close(fd);
  }

 private:
  void add(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
  }
  void run() {
    epoll_event evs[128];
    uint8_t buf[65536];
    while (!stop_) {
      int n = ::epoll_wait(epoll_.get(), evs, 128, 50);
      for (int i = 0; i < n; ++i) {
        int fd = evs[i].data.fd;
        if (fd == listen_.get()) {
          int c;
          while ((c = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
            fds_.push_back(c);
            add(c);
          }
          continue;
        }
        ssize_t r = ::read(fd, buf, sizeof buf);
        if (r <= 0) {
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
          continue;
        }
        for (ssize_t off = 0; off < r;) {  // the client always reads, so this terminates
          ssize_t w = ::send(fd, buf + off, static_cast<size_t>(r - off), MSG_NOSIGNAL);
          if (w > 0) off += w;
          else if (errno != EAGAIN) break;
        }
      }
    }
  }
  UniqueFd listen_, epoll_;
  std::vector<int> fds_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

// Appends one request frame (id kFirstId, stamped later) for the given client.
using MakeFrame = std::function<void(size_t client, Bytes& out)>;
// Sees every reply frame (header included); throws to fail the run.
using CheckReply = std::function<void(size_t client, ByteView frame)>;

inline Bytes request_frame(const std::string& op, cbor::Value body) {
  net::Request r;
  r.id = kFirstId;
  r.op = op;
  r.body = std::move(body);
  Bytes out;
  net::append_request_frame(out, r);
  return out;
}

struct Result {
  double req_per_s;
  double p50_us, p99_us;
  double server_cpu_us;  // CPU of every thread but the load generator, per request
};

inline double cpu_seconds(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Drives `clients` connections to ep with kDepth in flight each until kRequestsPerRun answers.
inline Result drive(const net::Endpoint& ep, int clients, const MakeFrame& make, const CheckReply& check) {
  std::vector<UniqueFd> fds;
  for (int i = 0; i < clients; ++i) {
    fds.push_back(net::connect(ep));
    net::set_nonblocking(fds.back().get(), true);
  }
  struct Slot {
    Bytes in;
    Bytes out;
    size_t out_off = 0;
  };
  std::vector<Slot> slots(static_cast<size_t>(clients));
  std::vector<int64_t> lat;
  lat.reserve(kRequestsPerRun + 1024);
  size_t issued = 0, done = 0;
  const size_t max_issued = kRequestsPerRun + static_cast<size_t>(clients) * kDepth;
  uint32_t next_id = kFirstId;
  std::vector<int64_t> sent_ns(max_issued);  // by id - kFirstId
  auto issue = [&](size_t i) {
    Slot& s = slots[i];
    size_t at = s.out.size();
    make(i, s.out);
    uint32_t id = next_id++;
    for (int b = 0; b < 4; ++b) s.out[at + kIdOffset + static_cast<size_t>(b)] = static_cast<uint8_t>(id >> (24 - 8 * b));
    sent_ns[id - kFirstId] = monotonic_ns();
    issued++;
  };
  for (size_t i = 0; i < slots.size(); ++i)
    for (int d = 0; d < kDepth; ++d) issue(i);
  int64_t start = monotonic_ns();
  double proc0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID), self0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
  std::vector<pollfd> p(fds.size());
  std::vector<uint8_t> buf(1 << 16);
  while (done < kRequestsPerRun) {
    for (size_t i = 0; i < fds.size(); ++i)
      p[i] = {fds[i].get(), static_cast<short>(POLLIN | (slots[i].out.size() > slots[i].out_off ? POLLOUT : 0)), 0};
    if (::poll(p.data(), p.size(), 5000) <= 0) throw Error(Errc::kTimeout, "bench: no progress in 5 s");
    for (size_t i = 0; i < fds.size(); ++i) {
      Slot& s = slots[i];
      if (p[i].revents & POLLOUT) {
        ssize_t w = ::send(fds[i].get(), s.out.data() + s.out_off, s.out.size() - s.out_off, MSG_NOSIGNAL);
        if (w > 0) s.out_off += static_cast<size_t>(w);
        if (s.out_off == s.out.size()) s.out.clear(), s.out_off = 0;
      }
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = ::recv(fds[i].get(), buf.data(), buf.size(), 0);
      if (r <= 0) throw Error(Errc::kIo, "bench: the server closed a connection");
      s.in.insert(s.in.end(), buf.begin(), buf.begin() + r);
      size_t off = 0;
      while (s.in.size() - off >= 4) {
        size_t len = get_u32be(s.in.data() + off);
        if (s.in.size() - off - 4 < len) break;
        ByteView frame(s.in.data() + off, 4 + len);
        uint32_t id = get_u32be(frame.data() + kIdOffset);
        lat.push_back(monotonic_ns() - sent_ns[id - kFirstId]);
        if (check) check(i, frame);
        off += 4 + len;
        done++;
        if (issued < max_issued) issue(i);
      }
      s.in.erase(s.in.begin(), s.in.begin() + static_cast<ptrdiff_t>(off));
    }
  }
  double secs = static_cast<double>(monotonic_ns() - start) / 1e9;
  double server_cpu = (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - proc0) - (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - self0);
  std::sort(lat.begin(), lat.end());
  return {static_cast<double>(done) / secs, static_cast<double>(lat[lat.size() / 2]) / 1e3,
          static_cast<double>(lat[lat.size() * 99 / 100]) / 1e3, server_cpu * 1e6 / static_cast<double>(done)};
}

}  // namespace sn_bench
