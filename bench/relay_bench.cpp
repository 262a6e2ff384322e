// Ingress passthrough against a direct loopback TCP connection, in the same run (issue 14's
// floor: ingress request rate ≥ 0.8× direct).
//
//   direct    the load generator → the app on 127.0.0.1;
//   ingress   the load generator → the host's forwarder (TCP) → simulated vsock → the enclave's
//             forwarder → the same app: both relays of a deployment, on the same 2 cores as the
//             client and the app (on Nitro the two relays run on the parent's and the enclave's
//             own CPUs).
// Two apps:
//   Http      an HTTP/1.1 app (net::HttpServer, a trivial handler), one request in flight per
//             keep-alive connection (bench/support/http_load.h): the issue's figure;
//   Echo      a raw epoll echo with 8 pipelined ~1 KiB requests per connection
//             (bench/support/load_gen.h): the relays' worst case, where the app costs nothing;
//   Bulk      256 MiB one way on one connection to an app that discards it: req_per_s is MiB/s
//             and the per-request counters are per MiB (the hops' floor is not measured).
// C = 1, 16, 64 connections. Direct and ingress runs alternate, 3 of each, and each keeps its
// best (other work on the 2 cores only ever slows a run, and alternating spreads it over both).
// Counters: direct_req_per_s, req_per_s (ingress), p50_us / p99_us (ingress), vs_direct; from the
// best runs' thread CPU (bench/support/thread_cpu.h): relay_cpu_us and relay_wakeups (both relays,
// per request), cpu_us_direct / cpu_us_ingress (every thread, per request), busy_cores_direct /
// busy_cores_ingress (CPU over wall time: 2 means the 2 cores were the bound), cpu_ratio
// (cpu_us_direct / cpu_us_ingress: what vs_direct is when both runs are CPU-bound), load1.
// The floor of the two extra hops: hops_floor_us is the CPU one thread spends moving one request
// and its answer over a loopback TCP pair plus a unix socket pair (send and recv each way, nobody
// asleep, so no wake-up counted): the kernel work any relay adds at the least (Echo: 8 requests
// per send, as pipelined). ceiling =
// cpu_us_direct / (cpu_us_direct + hops_floor_us): the best vs_direct a CPU-bound run can reach.
#include <benchmark/benchmark.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "shield_nitro/core/log.h"
#include "shield_nitro/net/http_server.h"
#include "support/http_load.h"
#include "support/ingress_path.h"
#include "support/load_gen.h"
#include "support/thread_cpu.h"

using namespace shield_nitro;
using namespace sn_bench;

namespace {

struct Run {
  double req_per_s = 0, p50_us = 0, p99_us = 0;
  size_t requests = 0;
  CpuByRole cpu;      // filled by compare()
  double wall_s = 0;  // filled by compare()
};

// CPU µs to pass `up` bytes one way and `down` bytes back over a connected pair (a, b), on one
// thread: each send finds its bytes already queued for the recv, so no one sleeps or wakes.
double hop_us(int a, int b, size_t up, size_t down) {
  constexpr int kRounds = 20000;
  std::vector<uint8_t> out(std::max(up, down), 0x61), in(out.size());
  auto move = [&](int from, int to, size_t n) {
    if (::send(from, out.data(), n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) throw Error(Errc::kIo, "bench: hop send");
    for (size_t got = 0; got < n;) {
      ssize_t r = ::recv(to, in.data(), n - got, 0);
      if (r <= 0) throw Error(Errc::kIo, "bench: hop recv");
      got += static_cast<size_t>(r);
    }
  };
  double t0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
  for (int i = 0; i < kRounds; ++i) {
    move(a, b, up);
    move(b, a, down);
  }
  return (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - t0) * 1e6 / kRounds;
}

// The extra hops of ingress (one TCP, one unix: client → app was already one TCP hop).
double hops_floor_us(size_t up, size_t down) {
  UniqueFd l = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  UniqueFd a = net::connect(net::bound_endpoint(l.get(), net::Endpoint::parse("tcp://127.0.0.1:0")));
  UniqueFd b(::accept(l.get(), nullptr, nullptr));
  int one = 1;
  ::setsockopt(a.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(b.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int u[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, u) != 0) throw Error(Errc::kIo, "bench: socketpair");
  UniqueFd u0(u[0]), u1(u[1]);
  hop_us(a.get(), b.get(), up, down);  // warm up
  double best = 1e18;
  for (int i = 0; i < 3; ++i) best = std::min(best, hop_us(a.get(), b.get(), up, down) + hop_us(u0.get(), u1.get(), up, down));
  return best;
}

// 3 direct and 3 ingress runs, alternating; the best of each is reported. up/down: the bytes of
// `batch` requests and their answers that travel in one send (for the hops' floor).
void compare(benchmark::State& state, const net::Endpoint& app, size_t up, size_t down, int batch,
             const std::function<Run(const net::Endpoint&)>& once) {
  IngressPath path(app);
  Run direct, ingress;
  double l0 = load1();
  auto measured = [&](const net::Endpoint& ep) {
    ThreadSnapshot t0 = thread_snapshot();
    int64_t w0 = monotonic_ns();
    Run r = once(ep);
    r.wall_s = static_cast<double>(monotonic_ns() - w0) / 1e9;
    r.cpu = thread_snapshot() - t0;
    return r;
  };
  for (auto _ : state)
    for (int i = 0; i < 3; ++i) {
      Run d = measured(app);
      if (d.req_per_s > direct.req_per_s) direct = d;
      Run g = measured(path.endpoint());
      if (g.req_per_s > ingress.req_per_s) ingress = g;
    }
  auto per_req_us = [](const Run& r, double s) { return s * 1e6 / static_cast<double>(r.requests); };
  state.counters["relay_cpu_us"] = per_req_us(ingress, ingress.cpu.sum("relay").cpu_s);
  state.counters["relay_wakeups"] = ingress.cpu.sum("relay").slices / static_cast<double>(ingress.requests);
  state.counters["cpu_us_direct"] = per_req_us(direct, direct.cpu.total_cpu_s());
  state.counters["cpu_us_ingress"] = per_req_us(ingress, ingress.cpu.total_cpu_s());
  state.counters["busy_cores_direct"] = direct.cpu.total_cpu_s() / direct.wall_s;
  state.counters["busy_cores_ingress"] = ingress.cpu.total_cpu_s() / ingress.wall_s;
  state.counters["cpu_ratio"] = direct.cpu.total_cpu_s() / static_cast<double>(direct.requests) /
                                (ingress.cpu.total_cpu_s() / static_cast<double>(ingress.requests));
  double floor_us = up ? hops_floor_us(up, down) / batch : 0;
  state.counters["hops_floor_us"] = floor_us;
  state.counters["ceiling"] = per_req_us(direct, direct.cpu.total_cpu_s()) / (per_req_us(direct, direct.cpu.total_cpu_s()) + floor_us);
  state.counters["load1"] = (l0 + load1()) / 2;
  state.counters["clients"] = static_cast<double>(state.range(0));
  state.counters["direct_req_per_s"] = direct.req_per_s;
  state.counters["req_per_s"] = ingress.req_per_s;
  state.counters["p50_us"] = ingress.p50_us;
  state.counters["p99_us"] = ingress.p99_us;
  state.counters["vs_direct"] = ingress.req_per_s / direct.req_per_s;
}

const std::string kRequest = "GET /predict HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\n\r\n";
constexpr size_t kAnswerBytes = 100;  // the app's answer: head and {"class":7}, about

void BM_IngressHttp(benchmark::State& state) {
  net::HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  net::HttpServer app(o, [](const net::HttpServerRequest&) {
    return net::HttpServerResponse{200, {{"Content-Type", "application/json"}}, R"({"class":7})"};
  });
  app.start();
  int conns = static_cast<int>(state.range(0));
  size_t total = conns == 1 ? 10000 : 40000;
  bool not_ok = false;
  compare(state, net::Endpoint::tcp("127.0.0.1", static_cast<uint16_t>(app.port())), kRequest.size(), kAnswerBytes, 1,
          [&](const net::Endpoint& ep) {
    HttpLoad l = drive_http(ep, conns, kRequest, total, true);
    not_ok |= l.not_ok > 0;
    return Run{l.req_per_s, l.p50_us, l.p99_us, total, {}, 0};
  });
  if (not_ok) state.SkipWithError("the app answered other than 200");
  app.stop();
}

void BM_IngressEcho(benchmark::State& state) {
  UniqueFd probe = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  net::Endpoint app = net::bound_endpoint(probe.get(), net::Endpoint::parse("tcp://127.0.0.1:0"));
  probe.reset();  // a free port for the echo server (load_gen's RawEchoServer binds what it is given)
  RawEchoServer echo(app);
  Bytes tmpl = request_frame("echo", cbor::Value::map({cbor::entry("body", cbor::Value::bytes(Bytes(1024, 0x61)))}));
  compare(state, app, kDepth * tmpl.size(), kDepth * tmpl.size(), kDepth, [&](const net::Endpoint& ep) {
    Result r = drive(ep, static_cast<int>(state.range(0)),
                     [&](size_t, Bytes& out) { out.insert(out.end(), tmpl.begin(), tmpl.end()); }, nullptr);
    return Run{r.req_per_s, r.p50_us, r.p99_us, kRequestsPerRun, {}, 0};
  });
}

// Bulk: 256 MiB one way (client → app, which discards it), direct vs ingress; MiB/s and the
// relays' CPU per MiB (where splice(2) replaces the copies).
void BM_IngressBulk(benchmark::State& state) {
  UniqueFd sink = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  net::Endpoint app = net::bound_endpoint(sink.get(), net::Endpoint::parse("tcp://127.0.0.1:0"));
  std::atomic<bool> done{false};
  std::thread sink_thread([&] {
    std::vector<uint8_t> b(1 << 16);
    while (!done) {
      UniqueFd c(::accept(sink.get(), nullptr, nullptr));
      if (!c) return;
      while (::recv(c.get(), b.data(), b.size(), 0) > 0) {
      }
    }
  });
  constexpr size_t kBytes = size_t{256} << 20;
  const Bytes chunk(1 << 20, 0x5a);
  size_t requests = kBytes / chunk.size();
  compare(state, app, 0, 0, 1, [&](const net::Endpoint& ep) {
    UniqueFd c = net::connect(ep);
    int64_t t0 = monotonic_ns();
    for (size_t i = 0; i < requests; ++i)
      for (size_t off = 0; off < chunk.size();) {
        ssize_t n = ::send(c.get(), chunk.data() + off, chunk.size() - off, MSG_NOSIGNAL);
        if (n <= 0) throw Error(Errc::kIo, "bench: bulk send failed");
        off += static_cast<size_t>(n);
      }
    ::shutdown(c.get(), SHUT_WR);
    uint8_t b[16];
    while (::recv(c.get(), b, sizeof b, 0) > 0) {  // the sink's close: everything went through
    }
    double secs = static_cast<double>(monotonic_ns() - t0) / 1e9;
    return Run{static_cast<double>(requests) / secs, 0, 0, requests, {}, 0};  // "requests" are MiB
  });
  done = true;
  ::shutdown(sink.get(), SHUT_RDWR);
  sink_thread.join();
}

}  // namespace

BENCHMARK(BM_IngressBulk)->Arg(1)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IngressHttp)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IngressEcho)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  set_log_level(LogLevel::kWarn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
