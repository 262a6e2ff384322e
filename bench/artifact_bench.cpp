// Loading a big artifact into the enclave (docs/performance.md, "Streaming a 1 GiB artifact").
//
// One run measures, over the same sealed file (a Shield stream, 1 MiB chunks, in the page cache):
//   AeadFloor/MiB        single-thread raw AES-256-GCM over the file's bytes in 1 MiB records (one
//                        context keyed once, fresh IV and tag per record, one reused output
//                        buffer): the floor every other figure is divided by (x_aead);
//   FreshPages/MiB       first write of N MiB of fresh memory in 4 KiB pages, and
//   FreshHugePages/MiB   in 2 MiB transparent huge pages (how SecureBytes maps artifacts): what
//                        holding the plaintext costs by itself (faults and the kernel's zeroing);
//   Assemble/W           the StreamAssembler alone with W workers, the file's records lent to it
//                        in order from the mapping (no socket): decryption into place, in parallel;
//   AssembleWarm/W       the same into a caller destination already touched (reused between
//                        runs): the decryption without the fresh pages' zeroing;
//   LoadArtifact/W       `load-artifact` parent -> enclave: the C++ parent SDK
//                        (EnclaveClient::load_artifact: size announced, one record per frame,
//                        sendfile) to the enclave service in this process on a unix socket, with
//                        ServiceOptions::artifact_workers = W; the enclave keeps the plaintext;
//   LoadSealed/W         the same plaintext as a sealed file, loaded without a key handle: the
//                        enclave releases its data key from the header (a stand-in KMS) and
//                        decrypts on W workers (sealed::Assembler).
// Every figure is the best of 3 (2 for the fresh-page rows), wall time.
//
// Counters: GiB_per_s; x_aead (over AeadFloor, target >= 1.25 for LoadArtifact); cpu_s (process CPU
// of the best run, parent and enclave sides); rss_growth_MiB (VmHWM during the run minus VmRSS
// before it, after clear_refs) and rss_over_plaintext_MiB (the same minus the plaintext, target
// <= 16).
//
// The artifact size is SN_BENCH_ARTIFACT_MIB (default 1024, i.e. 1 GiB, what `make bench` uses).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "bench_support.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/parent/enclave_client.h"
#include "shield_nitro/sealed/sealed.h"
#include "shield_nitro/shield/stream.h"
#include "support/enclave_host.h"

using namespace shield_nitro;

namespace {

constexpr uint32_t kChunk = 1u << 20;

double g_aead_gib_s = 0;
double g_aead_cpu_s = 0;  // the floor's CPU time (one thread)

// The sealed artifact and its key, made once; the enclave hosts (one per worker count) get the key.
struct Artifact {
  shield::ShieldKey key = shield::ShieldKey::generate();
  shield::ShieldKey kek = shield::ShieldKey::generate();  // the stand-in KMS's: wraps the sealed file's data key
  std::string dir = (std::filesystem::temp_directory_path() / ("sn-artifact-bench-" + std::to_string(::getpid()))).string();
  std::string path, sealed_path;
  uint64_t plaintext = 0;
  uint64_t sealed = 0;
  const uint8_t* map = nullptr;  // the file, mapped and faulted in

  using Pattern = sn_bench::Pattern;

  explicit Artifact(uint64_t bytes) : plaintext(bytes) {
    std::filesystem::create_directories(dir);
    path = dir + "/artifact.snst";
    AtomicFileWriter out(path);
    Pattern src(bytes);
    shield::encrypt_stream(shield::Shield::with_key(key), src, out, {.chunk_size = kChunk});
    out.commit();
    sealed = std::filesystem::file_size(path);
    sealed_path = dir + "/artifact.sealed";
    AtomicFileWriter sealed_out(sealed_path);
    Pattern sealed_src(bytes);
    SecureBytes dk(os_random().bytes(sealed::kDataKeySize));
    Bytes blob = shield::Shield::with_key(kek).encrypt(dk.view());
    sealed::seal(sealed_src, sealed_out, {"arn:aws:kms:us-east-1:111122223333:key/bench", blob, std::move(dk)},
                 {{"app", "bench"}}, {.chunk_size = kChunk});
    sealed_out.commit();
    FileReader f(path);
    void* m = ::mmap(nullptr, sealed, PROT_READ, MAP_PRIVATE | MAP_POPULATE, f.fd(), 0);
    if (m == MAP_FAILED) throw Error(Errc::kIo, "bench: cannot map " + path);
    map = static_cast<const uint8_t*>(m);
  }
  ~Artifact() {
    ::munmap(const_cast<uint8_t*>(map), sealed);
    std::filesystem::remove_all(dir);
  }
  ByteView bytes() const { return {map, sealed}; }
};

std::unique_ptr<Artifact> g_artifact;
uint64_t g_mib = 1024;

Artifact& artifact() {
  if (!g_artifact) g_artifact = std::make_unique<Artifact>(g_mib << 20);
  return *g_artifact;
}

// An enclave service with `workers` artifact workers and the artifact's key loaded.
struct Enclave : test_support::EnclaveHost {
  std::string key;
  explicit Enclave(unsigned workers) : EnclaveHost("sn-artifact-bench-enclave-") {
    data_key = artifact().key.clone();
    kek = artifact().kek.clone();
    enclave::ServiceOptions opts;
    opts.artifact_workers = workers;
    opts.policy = enclave::ReleasePolicy::parse(R"({"max_artifact_bytes": 17179869184})");
    start(std::move(opts));
    key = load_data_key();
  }
};

using sn_bench::cpu_seconds;
using sn_bench::reset_peak_rss;
using sn_bench::status_kib;

// Best wall time, its CPU time and the largest peak RSS growth of `runs` runs of f, each after
// an untimed setup (e.g. dropping the previous run's plaintext).
struct Timing {
  double best = 1e9, cpu = 0, growth_mib = -1;
};
template <typename Setup, typename F>
Timing best_of(int runs, Setup setup, F f) {
  Timing t;
  for (int i = 0; i < runs; ++i) {
    setup();
    bool peak_ok = reset_peak_rss();
    double rss0 = status_kib("VmRSS"), cpu0 = cpu_seconds();
    int64_t t0 = monotonic_ns();
    f();
    double secs = static_cast<double>(monotonic_ns() - t0) / 1e9, cpu = cpu_seconds() - cpu0;
    if (peak_ok) t.growth_mib = std::max(t.growth_mib, (status_kib("VmHWM") - rss0) / 1024);
    if (secs < t.best) {
      t.best = secs;
      t.cpu = cpu;
    }
  }
  return t;
}

// fresh: the run allocates the plaintext (its peak RSS counts it); otherwise the growth is all overhead.
void report(benchmark::State& state, const Timing& t, uint64_t bytes, bool fresh = true) {
  const double gib_s = static_cast<double>(bytes) / (1 << 30) / t.best;
  state.counters["GiB_per_s"] = gib_s;
  if (g_aead_gib_s > 0) state.counters["x_aead"] = gib_s / g_aead_gib_s;
  state.counters["cpu_s"] = t.cpu;
  // The floor's CPU over this run's: what the wall ratio would be with every thread on its own
  // idle core and perfect overlap divided by the core count; load-independent, unlike x_aead.
  if (g_aead_cpu_s > 0) state.counters["x_aead_cpu"] = g_aead_cpu_s / t.cpu;
  state.counters["cores_used"] = t.cpu / t.best;
  state.counters["rss_growth_MiB"] = t.growth_mib;
  state.counters["rss_over_plaintext_MiB"] = t.growth_mib - (fresh ? static_cast<double>(bytes) / (1 << 20) : 0);
  state.counters["workers"] = static_cast<double>(state.range(0));
}

void BM_AeadFloor(benchmark::State& state) {
  const Artifact& a = artifact();
  Bytes key(32, 0x42), iv(12, 0), out(kChunk + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), iv.data());
  Timing t;
  for (auto _ : state) {
    t = best_of(3, [] {}, [&] {
      for (uint64_t done = 0, rec = 0; done + kChunk <= a.sealed; done += kChunk, ++rec) {
        std::memcpy(iv.data() + 4, &rec, sizeof rec);
        int n = 0;
        EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.data());
        EVP_EncryptUpdate(ctx, out.data(), &n, a.map + done, static_cast<int>(kChunk));
        EVP_EncryptFinal_ex(ctx, out.data() + n, &n);
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out.data() + kChunk);
      }
    });
    state.SetIterationTime(t.best);
  }
  EVP_CIPHER_CTX_free(ctx);
  benchmark::DoNotOptimize(out.data());
  g_aead_gib_s = static_cast<double>(a.plaintext) / (1 << 30) / t.best;
  g_aead_cpu_s = t.cpu;
  state.counters["GiB_per_s"] = g_aead_gib_s;
  state.counters["cpu_s"] = t.cpu;
}

// First touch of the plaintext's size of fresh memory, then freeing it (outside the timing).
void fresh_pages(benchmark::State& state, bool huge) {
  const size_t bytes = artifact().plaintext, align = size_t{2} << 20;
  Timing t;
  for (auto _ : state) {
    void* map = nullptr;
    t = best_of(2, [&] { if (map) ::munmap(map, bytes + align); }, [&] {
      map = ::mmap(nullptr, bytes + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (map == MAP_FAILED) throw Error(Errc::kIo, "bench: mmap failed");
      void* p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(map) + align - 1) & ~(uintptr_t{align} - 1));
      if (huge) ::madvise(p, bytes, MADV_HUGEPAGE);
      std::memset(p, 0x5a, bytes);
      benchmark::DoNotOptimize(p);
    });
    ::munmap(map, bytes + align);
    state.SetIterationTime(t.best);
  }
  state.counters["GiB_per_s"] = static_cast<double>(bytes) / (1 << 30) / t.best;
  if (g_aead_gib_s > 0) state.counters["x_aead"] = state.counters["GiB_per_s"] / g_aead_gib_s;
}
void BM_FreshPages(benchmark::State& state) { fresh_pages(state, false); }
void BM_FreshHugePages(benchmark::State& state) { fresh_pages(state, true); }

// The assembler alone: the file's records lent in order from the mapping, as frames would be.
void BM_Assemble(benchmark::State& state) {
  const Artifact& a = artifact();
  const shield::Shield s = shield::Shield::with_key(a.key);
  std::shared_ptr<const void> keep(a.map, [](const void*) {});  // the mapping outlives the run
  const auto g = shield::peek_stream_geometry(a.bytes());
  SecureBytes last;
  Timing t;
  for (auto _ : state) {
    t = best_of(3, [&] { last.clear(); }, [&] {
      shield::StreamAssembler asm_(s, a.sealed, ~uint64_t{0}, {.workers = static_cast<unsigned>(state.range(0))});
      for (uint64_t off = 0, want = g->header_size; off < a.sealed; off += want, want = g->record_size())
        asm_.push(a.bytes().subspan(off, static_cast<size_t>(std::min<uint64_t>(want, a.sealed - off))), keep);
      last = asm_.finish();
    });
    state.SetIterationTime(t.best);
  }
  if (last.size() != a.plaintext) throw Error(Errc::kInternal, "bench: the assembler gave another size");
  last.clear();
  report(state, t, a.plaintext);
}

// The assembler into a destination touched before timing (as a reused mapping would be).
void BM_AssembleWarm(benchmark::State& state) {
  const Artifact& a = artifact();
  const shield::Shield s = shield::Shield::with_key(a.key);
  std::shared_ptr<const void> keep(a.map, [](const void*) {});
  const auto g = shield::peek_stream_geometry(a.bytes());
  SecureBytes dest(static_cast<size_t>(a.plaintext));  // zero-filled: every page is touched
  Timing t;
  for (auto _ : state) {
    t = best_of(3, [] {}, [&] {
      shield::StreamAssembler asm_(s, a.sealed, ~uint64_t{0}, [&](uint64_t) { return dest.span(); },
                                   {.workers = static_cast<unsigned>(state.range(0))});
      for (uint64_t off = 0, want = g->header_size; off < a.sealed; off += want, want = g->record_size())
        asm_.push(a.bytes().subspan(off, static_cast<size_t>(std::min<uint64_t>(want, a.sealed - off))), keep);
      asm_.finish();
    });
    state.SetIterationTime(t.best);
  }
  report(state, t, a.plaintext, false);
}

// parent -> enclave through the SDK and the service; the artifact is unloaded (wiped) between
// runs, outside the timing. Sealed: no key handle, the path of the sealed file.
void load(benchmark::State& state, bool sealed_file) {
  const Artifact& a = artifact();
  Enclave e(static_cast<unsigned>(state.range(0)));
  auto parent = parent::EnclaveClient::connect(e.service->endpoint());
  Timing t;
  for (auto _ : state) {
    std::string loaded;
    auto unload = [&] {
      if (!loaded.empty()) parent->unload(loaded);
      loaded.clear();
    };
    t = best_of(3, unload, [&] {
      auto info = sealed_file ? parent->load_artifact("", a.sealed_path, "model", "bench-model")
                              : parent->load_artifact(e.key, a.path, "model", "bench-model");
      if (info.size != a.plaintext) throw Error(Errc::kInternal, "bench: the enclave loaded another size");
      loaded = info.handle;
    });
    unload();
    state.SetIterationTime(t.best);
  }
  report(state, t, a.plaintext);
}
void BM_LoadArtifact(benchmark::State& state) { load(state, false); }
void BM_LoadSealed(benchmark::State& state) { load(state, true); }

}  // namespace

int main(int argc, char** argv) {
  set_log_level(LogLevel::kWarn);
  if (const char* e = std::getenv("SN_BENCH_ARTIFACT_MIB")) g_mib = static_cast<uint64_t>(std::max(1LL, std::atoll(e)));
  const auto mib = static_cast<int64_t>(g_mib);
  auto reg = [](const char* name, auto fn) {
    return benchmark::RegisterBenchmark(name, fn)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  reg("BM_AeadFloor", BM_AeadFloor)->Arg(mib);
  reg("BM_FreshPages", BM_FreshPages)->Arg(mib);
  reg("BM_FreshHugePages", BM_FreshHugePages)->Arg(mib);
  reg("BM_Assemble", BM_Assemble)->Arg(1)->Arg(2)->Arg(3);
  reg("BM_AssembleWarm", BM_AssembleWarm)->Arg(1)->Arg(2)->Arg(3);
  reg("BM_LoadArtifact", BM_LoadArtifact)->Arg(1)->Arg(2)->Arg(3);
  reg("BM_LoadSealed", BM_LoadSealed)->Arg(1)->Arg(2)->Arg(3);
  benchmark::Initialize(&argc, argv);
  artifact();  // sealed before the first timing
  benchmark::RunSpecifiedBenchmarks();
  g_artifact.reset();
  return 0;
}
