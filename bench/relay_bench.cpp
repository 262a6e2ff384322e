// Ingress passthrough against a direct loopback TCP connection, in the same run (issue 14's
// floor: ingress request rate ≥ 0.8× direct).
//
//   Direct*   the load generator → the app on 127.0.0.1;
//   Ingress*  the load generator → the host's forwarder (TCP) → simulated vsock → the enclave's
//             forwarder → the same app: both relays of a deployment, on the same 2 cores as the
//             client and the app (on Nitro the two relays run on the parent's and the enclave's
//             own CPUs).
// Two apps:
//   Http      an HTTP/1.1 app (net::HttpServer, a trivial handler), one request in flight per
//             keep-alive connection (bench/support/http_load.h): the issue's figure;
//   Echo      a raw epoll echo with 8 pipelined ~1 KiB requests per connection
//             (bench/support/load_gen.h): the relays' worst case, where the app costs nothing.
// C = 1, 16, 64 connections. Counters: req_per_s, p50_us, p99_us, and on Ingress* vs_direct
// (its req/s over Direct*'s at the same C). Each figure is the best of 3 runs (other work on the
// 2 cores only ever slows a run).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>

#include "shield_nitro/core/log.h"
#include "shield_nitro/net/http_server.h"
#include "shield_nitro/net/vsock_network.h"
#include "shield_nitro/relay/ingress.h"
#include "support/http_load.h"
#include "support/load_gen.h"

using namespace shield_nitro;
using namespace sn_bench;

namespace {

std::map<std::string, double> g_direct;  // "<app>/<C>" -> direct req/s

// Both forwarders of an ingress path in front of `app`, over simulated vsock.
class IngressPath {
 public:
  explicit IngressPath(const net::Endpoint& app)
      : dir_((std::filesystem::temp_directory_path() / ("sn-relay-bench-" + std::to_string(::getpid()))).string()) {
    std::filesystem::create_directories(dir_);
    ::setenv("SHIELD_NITRO_VSOCK_DIR", dir_.c_str(), 1);
    net::install_vsock_network(nullptr);
    relay::IngressOptions e = relay::enclave_ingress({5000, static_cast<uint16_t>(app.port), runtime::IngressMode::kPassthrough});
    e.target = app;
    relay::IngressOptions h;
    h.name = "ingress host";
    h.listen = net::Endpoint::parse("tcp://127.0.0.1:0");
    h.target = net::Endpoint::vsock(net::kDefaultSimulatedCid, 5000);
    enclave_ = std::make_unique<relay::IngressForwarder>(e);
    host_ = std::make_unique<relay::IngressForwarder>(h);
    enclave_->start();
    host_->start();
  }
  ~IngressPath() {
    host_.reset();
    enclave_.reset();
    std::filesystem::remove_all(dir_);
  }
  const net::Endpoint& endpoint() const { return host_->endpoint(); }

 private:
  std::string dir_;
  std::unique_ptr<relay::IngressForwarder> enclave_, host_;
};

void report(benchmark::State& state, const std::string& app, bool direct, double req_per_s, double p50, double p99) {
  std::string key = app + "/" + std::to_string(state.range(0));
  state.counters["clients"] = static_cast<double>(state.range(0));
  state.counters["req_per_s"] = req_per_s;
  state.counters["p50_us"] = p50;
  state.counters["p99_us"] = p99;
  if (direct) g_direct[key] = req_per_s;
  else if (g_direct.count(key)) state.counters["vs_direct"] = req_per_s / g_direct[key];
}

// ---- HTTP app, one request in flight per connection ----

const std::string kRequest = "GET /predict HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\n\r\n";

void run_http(benchmark::State& state, bool through_ingress) {
  net::HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  net::HttpServer app(o, [](const net::HttpServerRequest&) {
    return net::HttpServerResponse{200, {{"Content-Type", "application/json"}}, R"({"class":7})"};
  });
  app.start();
  net::Endpoint app_ep = net::Endpoint::tcp("127.0.0.1", static_cast<uint16_t>(app.port()));
  std::unique_ptr<IngressPath> path;
  if (through_ingress) path = std::make_unique<IngressPath>(app_ep);
  net::Endpoint ep = path ? path->endpoint() : app_ep;
  int conns = static_cast<int>(state.range(0));
  size_t total = conns == 1 ? 10000 : 40000;
  HttpLoad l;
  for (auto _ : state) l = best_of_3([&] { return drive_http(ep, conns, kRequest, total, true); });
  if (l.not_ok) state.SkipWithError("the app answered other than 200");
  report(state, "http", !through_ingress, l.req_per_s, l.p50_us, l.p99_us);
  path.reset();
  app.stop();
}

void BM_DirectHttp(benchmark::State& state) { run_http(state, false); }
void BM_IngressHttp(benchmark::State& state) { run_http(state, true); }

// ---- raw echo, 8 pipelined requests per connection ----

net::Endpoint free_tcp() {
  UniqueFd l = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  return net::bound_endpoint(l.get(), net::Endpoint::parse("tcp://127.0.0.1:0"));
}

void run_echo(benchmark::State& state, bool through_ingress) {
  net::Endpoint app = free_tcp();
  RawEchoServer echo(app);
  std::unique_ptr<IngressPath> path;
  if (through_ingress) path = std::make_unique<IngressPath>(app);
  net::Endpoint ep = path ? path->endpoint() : app;
  Bytes tmpl = request_frame("echo", cbor::Value::map({cbor::entry("body", cbor::Value::bytes(Bytes(1024, 0x61)))}));
  auto once = [&] {
    return drive(ep, static_cast<int>(state.range(0)),
                 [&](size_t, Bytes& out) { out.insert(out.end(), tmpl.begin(), tmpl.end()); }, nullptr);
  };
  Result best{};
  for (auto _ : state)
    for (int i = 0; i < 3; ++i) {
      Result r = once();
      if (r.req_per_s > best.req_per_s) best = r;
    }
  report(state, "echo", !through_ingress, best.req_per_s, best.p50_us, best.p99_us);
}

void BM_DirectEcho(benchmark::State& state) { run_echo(state, false); }
void BM_IngressEcho(benchmark::State& state) { run_echo(state, true); }

}  // namespace

BENCHMARK(BM_DirectHttp)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IngressHttp)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DirectEcho)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IngressEcho)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  set_log_level(LogLevel::kWarn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
