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
//   AeadFloor/MiB     single-thread raw AES-256-GCM over N MiB (1 MiB records, reused buffers);
//   FreshPages/MiB    first write of N MiB of fresh memory: what holding the plaintext costs alone;
//   FreshHugePages/MiB  the same in transparent huge pages (how SecureBytes maps artifacts);
//   LoadArtifact/MiB  `load-artifact` of an N MiB Shield stream (1 MiB chunks) that the
//                     parent side sends from its file (sendfile, one record per frame, sealed
//                     size announced, as the C++ SDK does) and streams in.
// One load-generator thread drives C connections with kDepth requests in flight each; latency is
// send-to-response per request; each figure is the better of two runs of kRequestsPerRun. Channel requests are sealed before the clock starts (sealing is
// the remote client's work, on its own machine); a sample of the sealed replies is opened and
// checked during the run, and every plain reply is checked for "ok": true.
//
// Counters: req_per_s, p50_us, p99_us, vs_floor (over RawEcho at the same C), vs_target (over
// 50,000 req/s), x_plain (channel time per request over plain: the overhead, target <= 1.3);
// GiB_per_s, x_aead (artifact over the AEAD floor, target >= 0.7), cpu_s (process CPU time of
// the best upload: parent and enclave sides) and rss_growth_MiB (peak RSS of this process during
// the upload minus RSS before it).
//
// The artifact size is SN_BENCH_ARTIFACT_MIB (default 1024, i.e. 1 GiB, what `make bench` uses).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/net/server.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/shield/stream.h"
#include "support/load_gen.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;

namespace {

using namespace sn_bench;
// After the id (sn_bench::kIdOffset): 62 6f 6b and true (f5).
constexpr size_t kOkOffset = kIdOffset + 4 + 3;
constexpr size_t kChunk = size_t{1} << 20;  // artifact records and parent reads

std::map<int64_t, double> g_floor;  // clients -> raw echo req/s
double g_aead_gib_s = 0;

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
  std::map<uint64_t, std::string> artifact_files;  // size -> sealed stream file

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

  // A Shield stream of `bytes` pseudo-random-looking bytes under the data key, written once.
  const std::string& artifact_file(uint64_t bytes);
};

std::unique_ptr<EnclaveHost> g_host;  // made on first use, destroyed at the end of main

EnclaveHost& host() {
  if (!g_host) g_host = std::make_unique<EnclaveHost>();
  return *g_host;
}

// Plaintext for the artifact: a counter pattern, generated as it is read (no copy in memory).
class PatternSource final : public Source {
 public:
  explicit PatternSource(uint64_t size) : left_(size) {}
  size_t read(uint8_t* buf, size_t n) override {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, left_));
    for (size_t i = 0; i < k; ++i) buf[i] = static_cast<uint8_t>((pos_ + i) * 2654435761u >> 13);
    pos_ += k;
    left_ -= k;
    return k;
  }

 private:
  uint64_t left_, pos_ = 0;
};

const std::string& EnclaveHost::artifact_file(uint64_t bytes) {
  auto it = artifact_files.find(bytes);
  if (it != artifact_files.end()) return it->second;
  std::string path = dir + "/artifact-" + std::to_string(bytes) + ".snst";
  AtomicFileWriter out(path);
  PatternSource src(bytes);
  shield::StreamEncryptOptions so;
  so.chunk_size = static_cast<uint32_t>(kChunk);
  shield::encrypt_stream(shield::Shield::with_key(data_key), src, out, so);
  out.commit();
  return artifact_files[bytes] = path;
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

// ---- artifact streaming -------------------------------------------------------------------

// Single-thread AES-256-GCM over the bytes of the sealed artifact file (mapped and faulted in
// before timing, as the page cache holds it for the parent) in 1 MiB records: one context keyed
// once, a fresh IV and tag per record, output into one reused buffer. Best of 3.
void BM_AeadFloor(benchmark::State& state) {
  uint64_t bytes = static_cast<uint64_t>(state.range(0)) << 20;
  const std::string& path = host().artifact_file(bytes);
  FileReader file(path);
  size_t len = static_cast<size_t>(file.size());
  void* map = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, file.fd(), 0);
  if (map == MAP_FAILED) throw Error(Errc::kIo, "bench: cannot map " + path);
  const uint8_t* in = static_cast<const uint8_t*>(map);
  Bytes key = os_random().bytes(32), iv(12, 0), out(kChunk + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), iv.data());
  double best = 1e9;
  for (auto _ : state) {
    for (int run = 0; run < 3; ++run) {
      int64_t t0 = monotonic_ns();
      for (uint64_t done = 0, rec = 0; done < bytes; done += kChunk, ++rec) {
        for (int b = 0; b < 4; ++b) iv[8 + static_cast<size_t>(b)] = static_cast<uint8_t>(rec >> (24 - 8 * b));
        int n = 0;
        EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.data());
        EVP_EncryptUpdate(ctx, out.data(), &n, in + done, static_cast<int>(kChunk));
        EVP_EncryptFinal_ex(ctx, out.data() + n, &n);
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out.data() + kChunk);
      }
      best = std::min(best, static_cast<double>(monotonic_ns() - t0) / 1e9);
    }
    state.SetIterationTime(best);
  }
  EVP_CIPHER_CTX_free(ctx);
  ::munmap(map, len);
  benchmark::DoNotOptimize(out.data());
  g_aead_gib_s = static_cast<double>(bytes) / (1 << 30) / best;
  state.counters["GiB_per_s"] = g_aead_gib_s;
}

// What holding the plaintext costs by itself: first touch of N MiB of fresh memory (page faults
// and the kernel's zeroing of each page; one memset pass), then freeing it. Best of 2.
// FreshHugePages: the same in 2 MiB transparent huge pages, as SecureBytes maps artifacts.
void fresh_pages(benchmark::State& state, bool huge) {
  size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const size_t align = size_t{2} << 20;
  double best = 1e9;
  for (auto _ : state) {
    for (int run = 0; run < 2; ++run) {
      int64_t t0 = monotonic_ns();
      void* map = ::mmap(nullptr, bytes + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (map == MAP_FAILED) throw Error(Errc::kIo, "bench: mmap failed");
      void* p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(map) + align - 1) & ~(uintptr_t{align} - 1));
      if (huge) ::madvise(p, bytes, MADV_HUGEPAGE);
      std::memset(p, 0x5a, bytes);
      benchmark::DoNotOptimize(p);
      best = std::min(best, static_cast<double>(monotonic_ns() - t0) / 1e9);
      ::munmap(map, bytes + align);
    }
    state.SetIterationTime(best);
  }
  state.counters["GiB_per_s"] = static_cast<double>(bytes) / (1 << 30) / best;
}
void BM_FreshPages(benchmark::State& state) { fresh_pages(state, false); }
void BM_FreshHugePages(benchmark::State& state) { fresh_pages(state, true); }

// /proc/self/status field in KiB ("VmRSS", "VmHWM").
double status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1));
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false if not allowed here.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// Process CPU time (user + system, all threads: parent side and enclave side alike), in s.
double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

// The parent side as the C++ SDK sends a file (src/parent/artifact_upload.cpp): the first body
// announces the sealed size, then the stream header alone, then one record per frame, each
// record going from the file to the socket inside the kernel (sendfile).
Value upload_artifact(EnclaveHost& h, const std::string& path) {
  net::Client parent(h.endpoint());
  FileReader in(path);
  const auto size = static_cast<uint64_t>(in.size());
  auto up = parent.stream("load-artifact", Value::map({entry("key", Value::text(h.key)), entry("kind", Value::text("model")),
                                                       entry("name", Value::text("bench-model")),
                                                       entry("size", Value::uint(size))}));
  uint8_t head[66];
  auto g = shield::peek_stream_geometry({head, in.read(head, sizeof head)});
  if (!g) throw Error(Errc::kInternal, "bench: the artifact is not a stream container");
  for (uint64_t off = 0, want = g->header_size; off < size; off += want, want = g->record_size())
    up.send_file_bytes("data", in.fd(), off, static_cast<size_t>(std::min<uint64_t>(want, size - off)));
  return up.finish().value_or_throw();
}

void BM_LoadArtifact(benchmark::State& state) {
  EnclaveHost& h = host();
  uint64_t bytes = static_cast<uint64_t>(state.range(0)) << 20;
  const std::string& path = h.artifact_file(bytes);
  double best = 1e9, best_cpu = 0, first = 0, growth_mib = -1;
  for (auto _ : state) {
    for (int run = 0; run < 3; ++run) {
      bool peak_ok = reset_peak_rss();
      double rss0 = status_kib("VmRSS");
      double cpu0 = cpu_seconds();
      int64_t t0 = monotonic_ns();
      Value r = upload_artifact(h, path);
      double secs = static_cast<double>(monotonic_ns() - t0) / 1e9;
      double cpu = cpu_seconds() - cpu0;
      if (run == 0) first = secs;
      if (peak_ok) growth_mib = std::max(growth_mib, (status_kib("VmHWM") - rss0) / 1024);
      if (r.find("size")->as_uint() != bytes) throw Error(Errc::kInternal, "bench: the enclave loaded a different size");
      if (secs < best) {
        best = secs;
        best_cpu = cpu;
      }
      h.control->call("unload", Value::map({entry("handle", Value::text(r.find("handle")->as_text()))}));  // wipes it
    }
    state.SetIterationTime(best);
  }
  double gib_s = static_cast<double>(bytes) / (1 << 30) / best;
  state.counters["GiB_per_s"] = gib_s;
  if (g_aead_gib_s > 0) state.counters["x_aead"] = gib_s / g_aead_gib_s;
  state.counters["cpu_s"] = best_cpu;
  state.counters["first_s"] = first;  // the first upload of the process, into never-used memory
  state.counters["rss_growth_MiB"] = growth_mib;
  state.counters["artifact_MiB"] = static_cast<double>(state.range(0));
}

}  // namespace

BENCHMARK(BM_RawEcho)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncryptPlain)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncryptChannel)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  set_log_level(LogLevel::kWarn);
  int64_t mib = 1024;
  if (const char* e = std::getenv("SN_BENCH_ARTIFACT_MIB")) mib = std::max<int64_t>(1, std::atoll(e));
  benchmark::RegisterBenchmark("BM_AeadFloor", BM_AeadFloor)->Arg(mib)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_FreshPages", BM_FreshPages)->Arg(mib)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_FreshHugePages", BM_FreshHugePages)->Arg(mib)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_LoadArtifact", BM_LoadArtifact)->Arg(mib)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  host();  // set up before the first timing: NSM, service, key
  benchmark::RunSpecifiedBenchmarks();
  g_host.reset();
  return 0;
}
