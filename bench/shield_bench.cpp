// Shield v4 and the stream container beside the physical floor: raw OpenSSL EVP
// AES-256-GCM on the same sizes, with a context keyed once (no RNG, no KDF, no allocation).
// Ratios vs the floor are reported as counters:
//   x_raw        Shield throughput / raw throughput at the same size (target >= 0.85 at 1 MiB)
//   overhead_ns  Shield time per message - raw time per message (target <= 1000 at 64 B)
//   x_raw_1t     stream throughput / raw single-thread throughput (target >= 1.6 with 2 threads)
// The peak-memory benchmark decrypts 64 MiB and 1 GiB streams in a child process (fed
// through a pipe by another child, so generating the input costs the measured one nothing)
// and reports the growth of its RSS high-water mark for each size.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/shield/shield.h"
#include "shield_nitro/shield/stream.h"

using namespace shield_nitro;
using namespace shield_nitro::shield;

namespace {

constexpr size_t kStreamBytes = size_t{256} << 20;
const Bytes kKey(32, 0x5a);

const Bytes& stream_plaintext();

// ---- raw floor ----

class RawGcm {
 public:
  RawGcm() {
    ctx_ = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, kKey.data(), nullptr);
  }
  ~RawGcm() { EVP_CIPHER_CTX_free(ctx_); }
  void seal(const uint8_t* iv, ByteView pt, uint8_t* out) {
    int len = 0;
    static const uint8_t aad[2] = {0x13, 0x01};
    EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, iv);
    EVP_EncryptUpdate(ctx_, nullptr, &len, aad, 2);
    EVP_EncryptUpdate(ctx_, out, &len, pt.data(), static_cast<int>(pt.size()));
    EVP_EncryptFinal_ex(ctx_, out + pt.size(), &len);
    EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, 16, out + pt.size());
  }
  bool open(const uint8_t* iv, ByteView sealed, uint8_t* out) {
    int len = 0;
    static const uint8_t aad[2] = {0x13, 0x01};
    const size_t n = sealed.size() - 16;
    EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, iv);
    EVP_DecryptUpdate(ctx_, nullptr, &len, aad, 2);
    EVP_DecryptUpdate(ctx_, out, &len, sealed.data(), static_cast<int>(n));
    EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, 16, const_cast<uint8_t*>(sealed.data() + n));
    return EVP_DecryptFinal_ex(ctx_, out + n, &len) == 1;
  }

 private:
  EVP_CIPHER_CTX* ctx_;
};

// CPU time of the calling thread: per-message ratios stay meaningful on a busy machine.
double cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double now_ns() {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

// Raw seal (or open) time per message of `size` bytes, measured once per size for ~0.3 s.
double raw_ns_per_message(size_t size, bool open) {
  static std::map<std::pair<size_t, bool>, double> cache;
  if (auto it = cache.find({size, open}); it != cache.end()) return it->second;
  RawGcm gcm;
  Bytes pt(size, 1), sealed(size + 16), out(size + 16);
  uint8_t iv[12] = {};
  gcm.seal(iv, pt, sealed.data());
  uint64_t n = 0;
  double start = cpu_ns(), end;
  do {
    for (int i = 0; i < 16; ++i, ++n) {
      if (open) {
        benchmark::DoNotOptimize(gcm.open(iv, sealed, out.data()));
      } else {
        std::memcpy(iv, &n, sizeof n);
        gcm.seal(iv, pt, out.data());
      }
    }
    end = cpu_ns();
  } while (end - start < 3e8);
  return cache[{size, open}] = (end - start) / static_cast<double>(n);
}

// Raw single-thread AES-256-GCM over kStreamBytes in 1 MiB chunks, read from memory into a
// reused chunk buffer (the memory traffic of the stream pipeline): the stream floor.
double raw_stream_ns() {
  static double ns = [] {
    const Bytes& pt = stream_plaintext();
    Bytes out((1 << 20) + 16);
    RawGcm gcm;
    double best = 1e30;
    for (int round = 0; round < 5; ++round) {
      double start = now_ns();
      uint8_t iv[12] = {};
      for (size_t off = 0, i = 0; off < kStreamBytes; off += 1 << 20, ++i) {
        iv[11] = static_cast<uint8_t>(i);
        gcm.seal(iv, ByteView(pt).subspan(off, 1 << 20), out.data());
      }
      best = std::min(best, now_ns() - start);
    }
    return best;
  }();
  return ns;
}

// The decryption floor: single-thread raw AES-256-GCM *open* of the same 256 MiB as 1 MiB
// records (sealed once, outside the timing), into one reused buffer. GCM decryption runs a few
// percent slower than encryption here, so decrypt figures are also given against this floor.
double raw_stream_open_ns() {
  static double ns = [] {
    const Bytes& pt = stream_plaintext();
    constexpr size_t kRecord = (1 << 20) + 16;
    Bytes sealed(kStreamBytes / (1 << 20) * kRecord);
    RawGcm gcm;
    uint8_t iv[12] = {};
    for (size_t off = 0, i = 0; off < kStreamBytes; off += 1 << 20, ++i) {
      iv[11] = static_cast<uint8_t>(i);
      gcm.seal(iv, ByteView(pt).subspan(off, 1 << 20), sealed.data() + i * kRecord);
    }
    Bytes out(kRecord);
    double best = 1e30;
    for (int round = 0; round < 5; ++round) {
      double start = now_ns();
      for (size_t i = 0; i < kStreamBytes / (1 << 20); ++i) {
        iv[11] = static_cast<uint8_t>(i);
        if (!gcm.open(iv, ByteView(sealed).subspan(i * kRecord, kRecord), out.data())) std::abort();
      }
      best = std::min(best, now_ns() - start);
    }
    return best;
  }();
  return ns;
}

void report_vs_raw(benchmark::State& state, size_t size, bool open, double ns_per_message) {
  const double raw = raw_ns_per_message(size, open);
  state.counters["raw_ns"] = raw;
  state.counters["ns"] = ns_per_message;
  state.counters["overhead_ns"] = ns_per_message - raw;
  state.counters["x_raw"] = raw / ns_per_message;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

// ---- Shield v4 ----

void BM_RawAesGcm(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  RawGcm gcm;
  Bytes pt(size, 1), out(size + 16);
  uint8_t iv[12] = {};
  uint64_t n = 0;
  for (auto _ : state) {
    std::memcpy(iv, &n, sizeof n);
    ++n;
    gcm.seal(iv, pt, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

void BM_ShieldEncrypt(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  Shield s = Shield::with_key(ShieldKey::from_bytes(kKey));
  Bytes pt(size, 1);
  double start = cpu_ns();
  for (auto _ : state) benchmark::DoNotOptimize(s.encrypt(pt));
  report_vs_raw(state, size, false, (cpu_ns() - start) / static_cast<double>(state.iterations()));
}

void BM_ShieldDecrypt(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  Shield s = Shield::with_key(ShieldKey::from_bytes(kKey));
  Bytes msg = s.encrypt(Bytes(size, 1));
  double start = cpu_ns();
  for (auto _ : state) benchmark::DoNotOptimize(s.decrypt(msg));
  report_vs_raw(state, size, true, (cpu_ns() - start) / static_cast<double>(state.iterations()));
}

// encrypt_into a reused buffer: no allocation or zero-fill per message.
void BM_ShieldEncryptInto(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  Shield s = Shield::with_key(ShieldKey::from_bytes(kKey));
  Bytes pt(size, 1), out;
  double start = cpu_ns();
  for (auto _ : state) s.encrypt_into(pt, out);
  report_vs_raw(state, size, false, (cpu_ns() - start) / static_cast<double>(state.iterations()));
}

// decrypt_into a reused buffer: no allocation, zero-fill or wipe per message.
void BM_ShieldDecryptInto(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  Shield s = Shield::with_key(ShieldKey::from_bytes(kKey));
  Bytes msg = s.encrypt(Bytes(size, 1));
  SecureBytes out;
  double start = cpu_ns();
  for (auto _ : state) s.decrypt_into(msg, out);
  report_vs_raw(state, size, true, (cpu_ns() - start) / static_cast<double>(state.iterations()));
}

// The raw open into a fresh SecureBytes, as every decrypt of the project returns plaintext:
// the floor plus the secure-buffer convention (allocate, zero-fill, wipe on release).
void BM_RawAesGcmOpenIntoSecureBytes(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  RawGcm gcm;
  Bytes sealed(size + 16);
  uint8_t iv[12] = {};
  gcm.seal(iv, Bytes(size, 1), sealed.data());
  double start = cpu_ns();
  for (auto _ : state) {
    SecureBytes out(size + 16);
    benchmark::DoNotOptimize(gcm.open(iv, sealed, out.data()));
  }
  report_vs_raw(state, size, true, (cpu_ns() - start) / static_cast<double>(state.iterations()));
}

BENCHMARK(BM_RawAesGcm)->Arg(64)->Arg(4096)->Arg(1 << 20);
BENCHMARK(BM_RawAesGcmOpenIntoSecureBytes)->Arg(64)->Arg(4096)->Arg(1 << 20);
BENCHMARK(BM_ShieldEncrypt)->Arg(64)->Arg(4096)->Arg(1 << 20);
BENCHMARK(BM_ShieldEncryptInto)->Arg(64)->Arg(4096)->Arg(1 << 20);
BENCHMARK(BM_ShieldDecrypt)->Arg(64)->Arg(4096)->Arg(1 << 20);
BENCHMARK(BM_ShieldDecryptInto)->Arg(64)->Arg(4096)->Arg(1 << 20);

// ---- stream container over 256 MiB ----

const Bytes& stream_plaintext() {
  static const Bytes pt(kStreamBytes, 0x42);
  return pt;
}

const Bytes& stream_container() {
  static const Bytes c = encrypt_stream(Shield::with_key(ShieldKey::from_bytes(kKey)), stream_plaintext());
  return c;
}

// Stream figures use the best of several runs (wall time): on a shared machine the minimum
// is the run least disturbed by other work, for the floor and the stream alike.
void report_stream(benchmark::State& state, double best_ns) {
  state.counters["GiB/s"] = static_cast<double>(kStreamBytes) / best_ns / 1.073741824;
  state.counters["raw_1t_GiB/s"] = static_cast<double>(kStreamBytes) / raw_stream_ns() / 1.073741824;
  state.counters["x_raw_1t"] = raw_stream_ns() / best_ns;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kStreamBytes));
}

template <typename F>
void run_best_of(benchmark::State& state, F&& once) {
  raw_stream_ns();
  double best = 1e30;
  for (auto _ : state) {
    double start = now_ns();
    once();
    double ns = now_ns() - start;
    best = std::min(best, ns);
    state.SetIterationTime(ns / 1e9);
  }
  report_stream(state, best);
}

void BM_RawAesGcmStream(benchmark::State& state) {
  run_best_of(state, [] {
    RawGcm gcm;
    static Bytes out((1 << 20) + 16);
    uint8_t iv[12] = {};
    for (size_t off = 0, i = 0; off < kStreamBytes; off += 1 << 20, ++i) {
      iv[11] = static_cast<uint8_t>(i);
      gcm.seal(iv, ByteView(stream_plaintext()).subspan(off, 1 << 20), out.data());
    }
  });
}

// Constant-memory pipeline from memory (records are lent, not copied) to a discarding sink:
// the container's own cost, as the raw floor has none for I/O either.
void BM_StreamEncrypt(benchmark::State& state) {
  Shield s = Shield::with_key(ShieldKey::from_bytes(kKey));
  const unsigned threads = static_cast<unsigned>(state.range(0));
  stream_plaintext();
  run_best_of(state, [&] {
    MemorySource in(stream_plaintext());
    NullSink out;
    encrypt_stream(s, in, out, {.threads = threads});
  });
}

void BM_StreamDecrypt(benchmark::State& state) {
  Shield s = Shield::with_key(ShieldKey::from_bytes(kKey));
  const unsigned threads = static_cast<unsigned>(state.range(0));
  stream_container();
  run_best_of(state, [&] {
    MemorySource in(stream_container());
    NullSink out;
    decrypt_stream(s, in, out, {.threads = threads});
  });
  state.counters["x_raw_open_1t"] = raw_stream_open_ns() / (raw_stream_ns() / state.counters["x_raw_1t"]);
}

// The in-memory convenience API: also allocates, zero-fills and finally wipes 256 MiB.
void BM_StreamDecryptToMemory(benchmark::State& state) {
  Shield s = Shield::with_key(ShieldKey::from_bytes(kKey));
  const unsigned threads = static_cast<unsigned>(state.range(0));
  stream_container();
  run_best_of(state, [&] { benchmark::DoNotOptimize(decrypt_stream(s, stream_container(), {.threads = threads})); });
}

BENCHMARK(BM_RawAesGcmStream)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(8);
BENCHMARK(BM_StreamEncrypt)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(8);
BENCHMARK(BM_StreamDecrypt)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(8);
BENCHMARK(BM_StreamDecryptToMemory)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

// ---- peak memory of a stream decrypt, in a child process ----

// Produces `size` bytes of a pattern without holding them.
class PatternSource final : public Source {
 public:
  explicit PatternSource(uint64_t size) : left_(size) {}
  size_t read(uint8_t* buf, size_t n) override {
    n = static_cast<size_t>(std::min<uint64_t>(n, left_));
    std::memset(buf, 0x37, n);
    left_ -= n;
    return n;
  }

 private:
  uint64_t left_;
};

class FdSink final : public Sink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  void write(ByteView d) override {
    for (size_t off = 0; off < d.size();) {
      ssize_t w = ::write(fd_, d.data() + off, d.size() - off);
      if (w <= 0) throw Error(Errc::kIo, "pipe write failed");
      off += static_cast<size_t>(w);
    }
  }

 private:
  int fd_;
};

long status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  return -1;
}

// Child: decrypt stdin to nowhere, print "rss_at_start_kib hwm_at_end_kib plaintext_bytes".
int child_decrypt() {
  long start = status_kib("VmRSS:");
  Shield s = Shield::with_key(ShieldKey::from_bytes(kKey));
  FileReader in("-");
  struct Counting final : Sink {
    uint64_t n = 0;
    void write(ByteView d) override { n += d.size(); }
  } out;
  decrypt_stream(s, in, out, {.threads = 2});
  std::printf("%ld %ld %llu\n", start, status_kib("VmHWM:"), static_cast<unsigned long long>(out.n));
  return 0;
}

// Returns the HWM growth in MiB of a child decrypting a `size`-byte stream.
double decrypt_hwm_growth_mib(uint64_t size) {
  int data[2], result[2];
  if (::pipe(data) != 0 || ::pipe(result) != 0) return -1;
  pid_t producer = ::fork();
  if (producer == 0) {
    ::close(data[0]);
    PatternSource src(size);
    FdSink sink(data[1]);
    encrypt_stream(Shield::with_key(ShieldKey::from_bytes(kKey)), src, sink, {.threads = 1});
    ::_exit(0);
  }
  pid_t consumer = ::fork();
  if (consumer == 0) {
    ::dup2(data[0], 0);
    ::dup2(result[1], 1);
    ::close(data[0]);
    ::close(data[1]);
    ::close(result[0]);
    ::execl("/proc/self/exe", "bench_shield", "--child-decrypt", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(data[0]);
  ::close(data[1]);
  ::close(result[1]);
  char buf[256] = {};
  ssize_t n = ::read(result[0], buf, sizeof buf - 1);
  ::close(result[0]);
  int st = 0;
  ::waitpid(producer, &st, 0);
  ::waitpid(consumer, &st, 0);
  long start = 0, hwm = 0;
  unsigned long long bytes = 0;
  if (n <= 0 || std::sscanf(buf, "%ld %ld %llu", &start, &hwm, &bytes) != 3 || bytes != size) return -1;
  return static_cast<double>(hwm - start) / 1024.0;
}

void BM_StreamDecryptPeakMemory(benchmark::State& state) {
  double small = 0, large = 0;
  for (auto _ : state) {
    small = decrypt_hwm_growth_mib(uint64_t{64} << 20);
    large = decrypt_hwm_growth_mib(uint64_t{1} << 30);
  }
  state.counters["hwm_growth_64MiB_MiB"] = small;
  state.counters["hwm_growth_1GiB_MiB"] = large;
  state.counters["size_ratio"] = 16;
  state.counters["growth_ratio"] = small > 0 ? large / small : -1;
}

BENCHMARK(BM_StreamDecryptPeakMemory)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--child-decrypt") == 0) return child_decrypt();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
