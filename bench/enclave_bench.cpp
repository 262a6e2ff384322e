// The enclave service under load, beside its floors (docs/performance.md, "Enclave service").
//
// Hosts the real enclave::EnclaveService in this process on a unix socket, with a simulated NSM
// and a data key loaded through a stand-in releaser (no KMS, as tests/enclave/service_test.cpp
// does), then measures in one run:
//   RawEcho/C         a bare epoll byte echo on the same kind of socket (the floor; no framing,
//                     no CBOR, no workers), C pipelined clients;
//   EncryptPlain/C    `encrypt` of 1 KiB with the loaded key, C pipelined clients;
//   EncryptChannel/C  the same `encrypt` inside the attested channel: each client attests,
//                     verifies the document against the simulator's root (nonce + PCR0), opens
//                     the channel, then sends `sealed` requests (docs/enclave-api.md);
// (Loading big artifacts is measured by bench/artifact_bench.cpp.)
// One load-generator thread drives C connections with kDepth requests in flight each; latency is
// send-to-response per request; each figure is the better of two runs of kRequestsPerRun. Channel requests are sealed before the clock starts (sealing is
// the remote client's work, on its own machine); a sample of the sealed replies is opened and
// checked during the run, and every plain reply is checked for "ok": true.
//
// Counters: req_per_s, p50_us, p99_us, vs_floor (over RawEcho at the same C), vs_target (over
// 50,000 req/s), x_plain (channel time per request over plain: the overhead, target <= 1.3).
#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/net/server.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/shield/shield.h"
#include "support/load_gen.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;

namespace {

using namespace sn_bench;
// After the id (sn_bench::kIdOffset): 62 6f 6b and true (f5).
constexpr size_t kOkOffset = kIdOffset + 4 + 3;

std::map<int64_t, double> g_floor;  // clients -> raw echo req/s

// ---- the enclave, hosted in-process -------------------------------------------------------

// Stands in for KMS: the "wrapped key" is a Shield message under a key only this releaser holds.
class StandInReleaser : public enclave::KeyReleaser {
 public:
  explicit StandInReleaser(const shield::ShieldKey& kek) : kek_(shield::Shield::with_key(kek, {.max_age_ms = std::nullopt})) {}
  enclave::ReleasedKey release(const enclave::ReleaseRequest& r, const enclave::PushedCredentials&) override {
    return {kek_.decrypt(r.ciphertext_blob), "arn:aws:kms:us-east-1:111122223333:key/bench"};
  }

 private:
  shield::Shield kek_;
};

struct EnclaveHost {
  std::string dir;
  shield::ShieldKey kek = shield::ShieldKey::generate();
  shield::ShieldKey data_key = shield::ShieldKey::generate();
  Bytes pcr0 = Bytes(48, 0xa0);
  std::shared_ptr<nsm::SimulatedNsm> sim;
  std::unique_ptr<attest::Verifier> verifier;
  std::unique_ptr<enclave::EnclaveService> service;
  std::unique_ptr<net::Client> control;  // setup calls (attest, channel-open, unload)
  std::string key;                       // the loaded data key's handle

  EnclaveHost() {
    dir = (std::filesystem::temp_directory_path() / ("sn-enclave-bench-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir);
    nsm::BootPcrs pcrs;
    pcrs.values[0] = pcr0;
    sim = nsm::SimulatedNsm::create(dir + "/nsm", pcrs);
    verifier = std::make_unique<attest::Verifier>(attest::TrustAnchor::from_pem(sim->root_pem()));
    enclave::ServiceOptions opts;
    opts.listen = net::Endpoint::unix_path(dir + "/enclave.sock");
    service = std::make_unique<enclave::EnclaveService>(
        std::make_unique<nsm::NsmClient>(std::make_unique<nsm::SimulatorTransport>(sim)),
        std::make_unique<StandInReleaser>(kek), std::move(opts));
    service->start();
    control = std::make_unique<net::Client>(service->endpoint());
    control->call("set-credentials", Value::map({entry("access_key_id", Value::text("AKIDBENCH")),
                                                 entry("secret_access_key", Value::text("bench"))}));
    Bytes wrapped = shield::Shield::with_key(kek).encrypt(data_key.expose_secret());
    key = control->call("load-key", Value::map({entry("ciphertext_blob", Value::bytes(std::move(wrapped)))}))
              .find("handle")->as_text();
  }
  ~EnclaveHost() {
    control.reset();
    service.reset();
    std::filesystem::remove_all(dir);
  }

  const net::Endpoint& endpoint() const { return service->endpoint(); }
};

std::unique_ptr<EnclaveHost> g_host;  // made on first use, destroyed at the end of main

EnclaveHost& host() {
  if (!g_host) g_host = std::make_unique<EnclaveHost>();
  return *g_host;
}

// ---- the load generator: bench/support/load_gen.h ----

// A plain reply must say "ok": true; otherwise the run fails with the service's message.
void require_ok(ByteView frame) {
  static const uint8_t kOk[] = {0x62, 0x6f, 0x6b, 0xf5};
  if (frame.size() > kOkOffset && std::equal(kOk, kOk + 4, frame.begin() + kOkOffset - 3)) return;
  net::Response r = net::decode_response(frame.subspan(4));
  throw Error(Errc::kInternal, "bench: the service answered an error: " + r.message);
}

std::map<int64_t, Result> g_plain;  // clients -> plain encrypt

// The run with more requests/s: the machine is shared, so one run can lose its core to others.
template <class F>
Result best_of_2(F run) {
  Result a = run(), b = run();
  return a.req_per_s >= b.req_per_s ? a : b;
}

void report(benchmark::State& state, const Result& r) {
  state.counters["clients"] = static_cast<double>(state.range(0));
  state.counters["req_per_s"] = r.req_per_s;
  state.counters["p50_us"] = r.p50_us;
  state.counters["p99_us"] = r.p99_us;
  state.counters["vs_target"] = r.req_per_s / kTarget;
  state.counters["srv_cpu_us"] = r.server_cpu_us;
  if (g_floor.count(state.range(0))) state.counters["vs_floor"] = r.req_per_s / g_floor[state.range(0)];
}

Value encrypt_body() {
  return Value::map({entry("key", Value::text(host().key)), entry("plaintext", Value::bytes(Bytes(1024, 0x61)))});
}

// ---- request benchmarks -------------------------------------------------------------------

void BM_RawEcho(benchmark::State& state) {
  net::Endpoint ep = net::Endpoint::unix_path(host().dir + "/raw.sock");
  RawEchoServer server(ep);
  Bytes tmpl = request_frame("encrypt", encrypt_body());
  auto make = [&](size_t, Bytes& out) { out.insert(out.end(), tmpl.begin(), tmpl.end()); };
  Result r{};
  for (auto _ : state) r = best_of_2([&] { return drive(ep, static_cast<int>(state.range(0)), make, nullptr); });
  g_floor[state.range(0)] = r.req_per_s;
  report(state, r);
  std::filesystem::remove(ep.path);
}

void BM_EncryptPlain(benchmark::State& state) {
  Bytes tmpl = request_frame("encrypt", encrypt_body());
  auto make = [&](size_t, Bytes& out) { out.insert(out.end(), tmpl.begin(), tmpl.end()); };
  auto check = [](size_t, ByteView frame) { require_ok(frame); };
  Result r{};
  for (auto _ : state) r = best_of_2([&] { return drive(host().endpoint(), static_cast<int>(state.range(0)), make, check); });
  g_plain[state.range(0)] = r;
  report(state, r);
}

// One remote client's end of the channel, with its requests sealed ahead of time.
struct ChannelClient {
  Bytes session;
  std::unique_ptr<channel::SealedBox> box;
  Bytes inner;  // cbor({"op": "encrypt", "body": ...})
  std::vector<Bytes> frames;
  size_t next = 0, replies = 0;

  Bytes sealed_frame() {
    return request_frame("sealed", Value::map({entry("session", Value::bytes(session)), entry("data", Value::bytes(box->seal(inner)))}));
  }
};

// attest -> verify against the simulator's root (nonce, PCR0) -> channel-open.
ChannelClient open_channel() {
  EnclaveHost& h = host();
  channel::ClientHandshake hs;
  Bytes doc = h.control->call("attest", Value::map({entry("nonce", Value::bytes(hs.nonce()))})).find("document")->as_bytes();
  attest::Policy policy;
  policy.nonce = hs.nonce();
  policy.expect_pcr(0, h.pcr0);
  policy.max_age_s = 300;
  attest::Claims claims = h.verifier->verify(doc, policy);
  if (!claims.public_key.has_value()) throw Error(Errc::kVerify, "bench: the document carries no channel key");
  auto opened = hs.finish(doc, claims.public_key.value);
  ChannelClient c;
  c.session = h.control->call("channel-open", Value::map({entry("nonce", Value::bytes(hs.nonce())),
                                                          entry("client_public", Value::bytes(opened.client_public)),
                                                          entry("versions", Value::array({Value::uint(channel::kChannelVersion)}))}))
                  .find("session")->as_bytes();
  channel::RecordLimits limits;
  limits.max_unanswered = SIZE_MAX;  // every request is sealed ahead of time, before any reply
  c.box = std::make_unique<channel::SealedBox>(opened.keys, channel::Role::kClient, limits);
  c.inner = cbor::encode(Value::map({entry("op", Value::text("encrypt")), entry("body", encrypt_body())}));
  return c;
}

// Opens one sealed reply and checks it holds a successful encrypt.
void check_sealed_reply(ChannelClient& c, ByteView frame) {
  net::Response r = net::decode_response(frame.subspan(4));
  SecureBytes inner = c.box->open(r.value_or_throw().find("data")->as_bytes());
  Value v = cbor::decode(inner.view());
  const Value* ok = v.find("ok");
  if (!ok || !ok->as_bool() || !v.find("body")->find("ciphertext"))
    throw Error(Errc::kInternal, "bench: a sealed encrypt failed inside the channel");
}

void BM_EncryptChannel(benchmark::State& state) {
  size_t clients = static_cast<size_t>(state.range(0));
  std::vector<ChannelClient> cs;
  // Fresh channels for every run: a run ends with requests issued but never sent, and the
  // enclave accepts a session's requests only in order, so the next run cannot reuse it.
  auto open_all = [&] {
    cs.clear();
    for (size_t i = 0; i < clients; ++i) {
      cs.push_back(open_channel());
      for (size_t k = 0; k < 2 * (kRequestsPerRun / clients + 2 * kDepth); ++k) cs.back().frames.push_back(cs.back().sealed_frame());
    }
  };
  auto make = [&](size_t i, Bytes& out) {
    ChannelClient& c = cs[i];
    if (c.next == c.frames.size()) c.frames.push_back(c.sealed_frame());  // this client got more than its share
    const Bytes& f = c.frames[c.next++];
    out.insert(out.end(), f.begin(), f.end());
  };
  auto check = [&](size_t i, ByteView frame) {
    require_ok(frame);
    if (cs[i].replies++ % 16 == 0) check_sealed_reply(cs[i], frame);
  };
  Result r{};
  for (auto _ : state)
    r = best_of_2([&] {
      open_all();
      return drive(host().endpoint(), static_cast<int>(clients), make, check);
    });
  report(state, r);
  if (g_plain.count(state.range(0))) {
    const Result& plain = g_plain[state.range(0)];
    state.counters["x_plain"] = plain.req_per_s / r.req_per_s;         // wall: time per request
    state.counters["x_plain_cpu"] = r.server_cpu_us / plain.server_cpu_us;  // server CPU per request
  }
}

}  // namespace

BENCHMARK(BM_RawEcho)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncryptPlain)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncryptChannel)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  set_log_level(LogLevel::kWarn);
  benchmark::Initialize(&argc, argv);
  host();  // set up before the first timing: NSM, service, key
  benchmark::RunSpecifiedBenchmarks();
  g_host.reset();
  return 0;
}
