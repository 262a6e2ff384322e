// Network layer throughput and latency over a unix socket (docs/perf/net.md).
//
// One load-generator thread drives C connections (1, 16, 64), each keeping kDepth requests of
// ~1 KiB in flight (pipelined), against:
//   RawEcho   a bare epoll thread that echoes bytes: no framing, no CBOR, no workers (floor);
//   Echo      net::Server with an "echo" op (framing + CBOR + worker pool);
//   Encrypt   net::Server with "encrypt": Shield key-mode encryption of the 1 KiB body.
// Counters: req_per_s, p50_us / p99_us (send-to-response latency), vs_floor (req/s over RawEcho
// at the same C) and vs_target (req/s over the 50,000 req/s target).
#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/net/server.h"
#include "shield_nitro/shield/shield.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;

namespace {

constexpr int kDepth = 8;                 // requests in flight per connection
constexpr size_t kRequestsPerRun = 40000;
constexpr double kTarget = 50000;
std::map<int64_t, double> g_floor;        // clients -> raw echo req/s

std::string socket_path(const char* name) {
  return (std::filesystem::temp_directory_path() / ("sn-net-bench-" + std::to_string(::getpid()) + name)).string();
}

// The raw floor: echoes whatever arrives, on one epoll thread.
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
        for (ssize_t off = 0; off < r;) {  // blocking-ish: the client always reads
          ssize_t w = ::send(fd, buf + off, static_cast<size_t>(r - off), MSG_NOSIGNAL);
          if (w > 0) off += w;
          else if (errno != EAGAIN) break;
        }
      }
    }
  }
  net::UniqueFd listen_, epoll_;
  std::vector<int> fds_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

// Frame for request id: the id sits in a fixed-size uint32 head at byte 4 + 7, so the
// generator can stamp ids without re-encoding.
Bytes request_template(const std::string& op) {
  net::Request r;
  r.id = 0x10000000;  // forces the 4-byte integer head (0x1a)
  r.op = op;
  r.body = Value::map({entry("plaintext", Value::bytes(Bytes(1024, 0x61)))});
  Bytes out;
  net::append_request_frame(out, r);
  return out;
}

struct Result {
  double req_per_s;
  double p50_us, p99_us;
};

// Drives `clients` connections to ep with kDepth in flight each until kRequestsPerRun answers.
Result drive(const net::Endpoint& ep, int clients, const Bytes& tmpl) {
  constexpr size_t kIdOffset = 4 + 8;  // frame header, then a4 61 76 01 62 69 64 1a
  std::vector<net::UniqueFd> fds;
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
  constexpr uint32_t kFirstId = 0x10000000;
  uint32_t next_id = kFirstId;
  std::vector<int64_t> sent_ns(kRequestsPerRun + static_cast<size_t>(clients) * kDepth * 2);  // by id
  auto issue = [&](Slot& s) {
    Bytes f = tmpl;
    uint32_t id = next_id++;
    f[kIdOffset] = static_cast<uint8_t>(id >> 24);
    f[kIdOffset + 1] = static_cast<uint8_t>(id >> 16);
    f[kIdOffset + 2] = static_cast<uint8_t>(id >> 8);
    f[kIdOffset + 3] = static_cast<uint8_t>(id);
    s.out.insert(s.out.end(), f.begin(), f.end());
    sent_ns[id - kFirstId] = monotonic_ns();
    issued++;
  };
  for (auto& s : slots)
    for (int d = 0; d < kDepth; ++d) issue(s);
  int64_t start = monotonic_ns();
  std::vector<pollfd> p(fds.size());
  uint8_t buf[65536];
  while (done < kRequestsPerRun) {
    for (size_t i = 0; i < fds.size(); ++i)
      p[i] = {fds[i].get(), static_cast<short>(POLLIN | (slots[i].out.size() > slots[i].out_off ? POLLOUT : 0)), 0};
    if (::poll(p.data(), p.size(), 5000) <= 0) throw Error(Errc::kTimeout, "bench: no progress");
    for (size_t i = 0; i < fds.size(); ++i) {
      Slot& s = slots[i];
      if (p[i].revents & POLLOUT) {
        ssize_t w = ::send(fds[i].get(), s.out.data() + s.out_off, s.out.size() - s.out_off, MSG_NOSIGNAL);
        if (w > 0) s.out_off += static_cast<size_t>(w);
        if (s.out_off == s.out.size()) s.out.clear(), s.out_off = 0;
      }
      if (!(p[i].revents & POLLIN)) continue;
      ssize_t r = ::recv(fds[i].get(), buf, sizeof buf, 0);
      if (r <= 0) throw Error(Errc::kIo, "bench: server closed");
      s.in.insert(s.in.end(), buf, buf + r);
      size_t off = 0;
      while (s.in.size() - off >= 4) {
        size_t len = get_u32be(s.in.data() + off);
        if (s.in.size() - off - 4 < len) break;
        uint32_t id = get_u32be(s.in.data() + off + kIdOffset);
        lat.push_back(monotonic_ns() - sent_ns[id - kFirstId]);
        off += 4 + len;
        done++;
        if (issued < kRequestsPerRun + static_cast<size_t>(clients) * kDepth) issue(s);
      }
      s.in.erase(s.in.begin(), s.in.begin() + static_cast<ptrdiff_t>(off));
    }
  }
  double secs = static_cast<double>(monotonic_ns() - start) / 1e9;
  std::sort(lat.begin(), lat.end());
  return {static_cast<double>(done) / secs, static_cast<double>(lat[lat.size() / 2]) / 1e3,
          static_cast<double>(lat[lat.size() * 99 / 100]) / 1e3};
}

void report(benchmark::State& state, const Result& r, bool floor) {
  int64_t clients = state.range(0);
  state.counters["clients"] = static_cast<double>(clients);
  state.counters["req_per_s"] = r.req_per_s;
  state.counters["p50_us"] = r.p50_us;
  state.counters["p99_us"] = r.p99_us;
  if (floor) g_floor[clients] = r.req_per_s;
  else if (g_floor.count(clients)) state.counters["vs_floor"] = r.req_per_s / g_floor[clients];
  state.counters["vs_target"] = r.req_per_s / kTarget;
}

void BM_RawEcho(benchmark::State& state) {
  net::Endpoint ep = net::Endpoint::unix_path(socket_path("-raw.sock"));
  RawEchoServer server(ep);
  Bytes tmpl = request_template("echo");
  Result r{};
  for (auto _ : state) r = drive(ep, static_cast<int>(state.range(0)), tmpl);
  report(state, r, true);
  std::filesystem::remove(ep.path);
}

void run_server_bench(benchmark::State& state, const std::string& op) {
  net::Endpoint ep = net::Endpoint::unix_path(socket_path("-srv.sock"));
  net::Server server(ep);
  server.handle("echo", [](const net::Request& req, net::RequestContext&) { return net::Response::success(req.body); });
  auto shield = std::make_shared<shield::Shield>(shield::Shield::with_key(shield::ShieldKey::generate()));
  server.handle("encrypt", [shield](const net::Request& req, net::RequestContext&) {
    Bytes ct = shield->encrypt(req.body.find("plaintext")->as_bytes());
    return net::Response::success(Value::map({entry("ciphertext", Value::bytes(std::move(ct)))}));
  });
  server.start();
  Bytes tmpl = request_template(op);
  Result r{};
  for (auto _ : state) r = drive(ep, static_cast<int>(state.range(0)), tmpl);
  report(state, r, false);
  server.stop();
}

void BM_Echo(benchmark::State& state) { run_server_bench(state, "echo"); }
void BM_Encrypt(benchmark::State& state) { run_server_bench(state, "encrypt"); }

}  // namespace

BENCHMARK(BM_RawEcho)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Echo)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Encrypt)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  set_log_level(LogLevel::kWarn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
