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
#include "support/load_gen.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;

namespace {

using namespace sn_bench;
std::map<int64_t, double> g_floor;        // clients -> raw echo req/s

std::string socket_path(const char* name) {
  return (std::filesystem::temp_directory_path() / ("sn-net-bench-" + std::to_string(::getpid()) + name)).string();
}

// The floor and the load generator: bench/support/load_gen.h.
Result drive_template(const net::Endpoint& ep, int clients, const Bytes& tmpl) {
  return drive(ep, clients, [&](size_t, Bytes& out) { out.insert(out.end(), tmpl.begin(), tmpl.end()); }, nullptr);
}

Bytes request_template(const std::string& op) {
  return request_frame(op, Value::map({entry("plaintext", Value::bytes(Bytes(1024, 0x61)))}));
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
  for (auto _ : state) r = drive_template(ep, static_cast<int>(state.range(0)), tmpl);
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
  for (auto _ : state) r = drive_template(ep, static_cast<int>(state.range(0)), tmpl);
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
