// The supervised runtime (issue 14, docs/performance.md "Runtime"), each figure beside its floor,
// measured in the same run:
//
// 1. A sealed artifact from the host agent into the enclave's memory filesystem: the real host
//    agent (host::Agent, in this process: digest cached, sendfile) on simulated vsock, and the
//    supervisor's artifact step as `shield-nitro-enclave run` does it for `source: host`
//    (HostLink::open_artifact, FdSource, supervisor::install_artifact: hashing on a thread of
//    its own, sealed::open decrypting on InstallOptions::threads workers into the file in a tmpfs), with a
//    stand-in key release (no KMS; its cost is per file, not per byte). Rows, alternated in rounds
//    (SN_BENCH_ROUNDS, default 3) so each round has its own floor:
//      AeadFloor              single-thread raw AES-256-GCM *decryption* of the same plaintext
//                             size in 1 MiB records (tags checked, one reused output buffer);
//      SupervisorArtifact/W   the artifact step with W decryption workers (0 = every core),
//                             wall time from the request to the published file; x_aead over the
//                             round's floor (target >= 0.9), x_best_floor over the fastest floor
//                             so far (robust to a preempted floor); read_s (the receiving thread inside
//                             read()); rss_over_plaintext_MiB (peak resident memory other than
//                             the tmpfs's, over its value at the start);
//    and, once, what the step is made of (where the time goes):
//      HostStream             the transport alone: open_artifact + FdSource reads into one buffer;
//      Sha256                 one thread hashing the sealed file (the receiving thread's digest);
//      TmpfsWrite             writing the plaintext's size into a file in the tmpfs, 1 MiB at a
//                             time (AtomicFileWriter, as install_artifact does).
// 2. Supervisor start to app start: `shield-nitro-enclave run --config C -- /bin/date +%s%N`
//    (config without artifacts or KMS; NSM simulator; credentials and logs from the host agent
//    above) started SN_BENCH_STARTS times (default 40), alternated with the floor: the same
//    posix_spawn of /bin/date alone. Figure: the time date prints minus the spawn time (p50).
//
// SN_BENCH_ARTIFACT_MIB sets the plaintext size (default 1024 = 1 GiB, what `make bench` uses).
// SN_BENCH_TMPFS a tmpfs folder to use instead of mounting one as the supervisor does (as root:
// supervisor::Storage, huge=within_size where the kernel has it; not root: /dev/shm).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <atomic>
#include <chrono>
#include <vector>

#include "bench_support.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/host/agent.h"
#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/net/vsock_network.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/sealed/sealed.h"
#include "shield_nitro/supervisor/artifact.h"
#include "shield_nitro/supervisor/system.h"

extern char** environ;

using namespace shield_nitro;

namespace {

constexpr uint32_t kChunk = 1u << 20;
constexpr uint32_t kLinkPort = 7000;
const std::map<std::string, std::string> kContext{{"app", "bench"}};

uint64_t g_mib = 1024;
int g_rounds = 3, g_starts = 40;
std::string g_tmpfs;  // SN_BENCH_TMPFS; empty: the supervisor's own tmpfs (supervisor::Storage) when root, else /dev/shm
double g_floor_s = 0;  // the latest AeadFloor (this round's)
double g_best_floor_s = 0;  // the fastest AeadFloor so far (a preempted floor inflates x_aead)

int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
double secs_since(int64_t t0) { return static_cast<double>(monotonic_ns() - t0) / 1e9; }

using sn_bench::cpu_seconds;
using sn_bench::reset_peak_rss;
using sn_bench::status_kib;

using Pattern = sn_bench::Pattern;

// Samples, every 2 ms while alive, the process's resident memory other than tmpfs/shared pages
// (VmRSS - RssShmem): what the receiving side holds beyond the plaintext, whether the plaintext
// is written into the tmpfs (not in RSS) or mapped from it (RssShmem). The largest seen, in MiB.
double rss_non_shmem_mib() {
  return (status_kib("VmRSS") - std::max(0.0, status_kib("RssShmem"))) / 1024;
}
class RssSampler {
 public:
  RssSampler() : thread_([this] {
      while (!stop_) {
        max_mib_ = std::max(max_mib_.load(), rss_non_shmem_mib());
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }) {}
  ~RssSampler() { stop(); }
  double stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return max_mib_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<double> max_mib_{0};
  std::thread thread_;
};

// The first bytes of a sealed file (its header and then some).
Bytes read_header_bytes(const std::string& path) {
  FileReader f(path);
  Bytes b(sealed::kMaxPrefixSize);
  b.resize(f.read(b.data(), b.size()));
  return b;
}

// The tmpfs exactly as the supervisor mounts it (huge pages where the kernel has them), unless
// SN_BENCH_TMPFS names a folder or mounting is not permitted (not root).
std::unique_ptr<supervisor::Storage> mount_storage(const std::string& path) {
  if (!g_tmpfs.empty()) return nullptr;
  try {
    return std::make_unique<supervisor::Storage>(path, (g_mib << 1) + 64, false);
  } catch (const Error&) {
    return nullptr;
  }
}

// Everything both parts share: the sealed file, the NSM simulator, the host agent.
struct World {
  std::string dir = (std::filesystem::temp_directory_path() / ("sn-runtime-bench-" + std::to_string(::getpid()))).string();
  std::unique_ptr<supervisor::Storage> mounted = mount_storage(dir + "/storage");
  std::string storage = mounted ? dir + "/storage" : (g_tmpfs.empty() ? "/dev/shm" : g_tmpfs) + "/sn-runtime-bench-" + std::to_string(::getpid());
  std::string sealed_path = dir + "/model.sealed";
  std::string vsock_dir = dir + "/vs";
  std::string nsm_dir = dir + "/nsm";
  uint64_t plaintext = g_mib << 20, sealed = 0;
  SecureBytes data_key = SecureBytes(os_random().bytes(sealed::kDataKeySize));
  runtime::ArtifactConfig artifact;        // pinned by its header's digest (header_sha256)
  runtime::ArtifactConfig artifact_whole;  // the same file pinned by the whole file's (sha256)
  std::shared_ptr<nsm::SimulatedNsm> sim;
  std::unique_ptr<nsm::SimulatorServer> nsm_server;
  std::unique_ptr<host::Agent> agent;
  UniqueFd devnull{::open("/dev/null", O_WRONLY | O_CLOEXEC)};

  World() {
    std::filesystem::create_directories(vsock_dir);
    std::filesystem::create_directories(storage);
    {
      AtomicFileWriter out(sealed_path);
      Pattern src(plaintext);
      sealed::seal(src, out, {"arn:aws:kms:us-east-1:111122223333:key/bench", Bytes(64, 7), data_key.clone()}, kContext,
                   {.chunk_size = kChunk});
      out.commit();
    }
    sealed = std::filesystem::file_size(sealed_path);
    artifact = {.name = "model", .source = "host", .path = storage + "/model.bin", .key_id = "arn:aws:kms:us-east-1:111122223333:key/bench",
                .encryption_context = kContext, .header_sha256 = sealed::parse_prefix(read_header_bytes(sealed_path)).prefix_digest_hex(), .sha256 = {}};
    artifact_whole = artifact;
    artifact_whole.name = "model-whole";
    artifact_whole.header_sha256.clear();
    artifact_whole.sha256 = host::file_sha256(sealed_path);
    nsm::BootPcrs pcrs;
    pcrs.debug = true;
    nsm::SimulatedNsm::init(nsm_dir, pcrs);
    sim = nsm::SimulatedNsm::open(nsm_dir);
    nsm_server = sim->serve(nsm::simulator_socket_path(nsm_dir));
    net::install_vsock_network(net::simulated_vsock(vsock_dir, 16));
    runtime::HostEnclave e;
    e.name = "bench";
    e.cid = 16;
    e.runtime.host = {.cid = 3, .port = kLinkPort};
    e.runtime.kms.region = "us-east-1";
    e.runtime.artifacts.push_back(artifact);
    e.runtime.artifacts.push_back(artifact_whole);
    e.artifacts["model"] = sealed_path;
    e.artifacts["model-whole"] = sealed_path;
    host::AgentOptions o;
    o.config.enclaves = {e};
    o.config.kms_target = "127.0.0.1:1";
    o.credentials = std::make_shared<kms::StaticCredentials>(
        kms::Credentials{"AKIDBENCH", SecureBytes(as_bytes(std::string_view("secret"))), SecureBytes(), system_clock().now_s() + 86400, "bench"});
    o.stdout_fd = devnull.get();
    agent = std::make_unique<host::Agent>(std::move(o));
    agent->start();
  }
  ~World() {
    agent.reset();
    mounted.reset();
    nsm_server.reset();
    net::install_vsock_network(nullptr);
    std::error_code ec;
    std::filesystem::remove_all(storage, ec);
    std::filesystem::remove_all(dir, ec);
  }
};

std::unique_ptr<World> g_world;
World& world() {
  if (!g_world) g_world = std::make_unique<World>();
  return *g_world;
}

// The file mapped and faulted in (the floor's and Sha256's input; the agent reads the page cache).
struct Mapped {
  const uint8_t* p = nullptr;
  uint64_t n = 0;
  explicit Mapped(const std::string& path) {
    FileReader f(path);
    n = std::filesystem::file_size(path);
    void* m = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, f.fd(), 0);
    if (m == MAP_FAILED) throw Error(Errc::kIo, "bench: cannot map " + path);
    p = static_cast<const uint8_t*>(m);
  }
  ~Mapped() { ::munmap(const_cast<uint8_t*>(p), n); }
};

// Raw AES-256-GCM records of the plaintext's size (1 MiB each, valid tags), made once.
struct FloorInput {
  Bytes key = Bytes(32, 0x42);
  Bytes records;  // per record: 1 MiB ciphertext + 16-byte tag
  uint64_t count = 0;
  FloorInput() {
    count = (g_mib << 20) / kChunk;
    records.resize(count * (kChunk + 16));
    Bytes plain(kChunk, 0x5a), iv(12, 0);
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), iv.data());
    for (uint64_t r = 0; r < count; ++r) {
      uint8_t* out = records.data() + r * (kChunk + 16);
      std::memcpy(iv.data() + 4, &r, sizeof r);
      int n = 0;
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.data());
      EVP_EncryptUpdate(ctx, out, &n, plain.data(), static_cast<int>(kChunk));
      EVP_EncryptFinal_ex(ctx, out + n, &n);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + kChunk);
    }
    EVP_CIPHER_CTX_free(ctx);
  }
};
std::unique_ptr<FloorInput> g_floor_input;

void BM_AeadFloor(benchmark::State& state) {
  if (!g_floor_input) g_floor_input = std::make_unique<FloorInput>();
  FloorInput& in = *g_floor_input;
  Bytes iv(12, 0), out(kChunk);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, in.key.data(), iv.data());
  double secs = 0, cpu = 0;
  for (auto _ : state) {
    double c0 = cpu_seconds();
    int64_t t0 = monotonic_ns();
    for (uint64_t r = 0; r < in.count; ++r) {
      uint8_t* rec = in.records.data() + r * (kChunk + 16);
      std::memcpy(iv.data() + 4, &r, sizeof r);
      int n = 0;
      EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.data());
      EVP_DecryptUpdate(ctx, out.data(), &n, rec, static_cast<int>(kChunk));
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, rec + kChunk);
      if (EVP_DecryptFinal_ex(ctx, out.data() + n, &n) != 1) throw Error(Errc::kInternal, "bench: floor tag mismatch");
    }
    secs = secs_since(t0);
    cpu = cpu_seconds() - c0;
    state.SetIterationTime(secs);
  }
  EVP_CIPHER_CTX_free(ctx);
  g_floor_s = secs;
  if (g_best_floor_s == 0 || secs < g_best_floor_s) g_best_floor_s = secs;
  state.counters["GiB_per_s"] = static_cast<double>(g_mib) / 1024 / secs;
  state.counters["cpu_s"] = cpu;
}

// A Source that times what the receiving thread spends inside read() (waiting + copying).
class TimedSource final : public Source {
 public:
  explicit TimedSource(Source& in) : in_(in) {}
  size_t read(uint8_t* buf, size_t n) override {
    int64_t t0 = monotonic_ns();
    size_t k = in_.read(buf, n);
    ns += monotonic_ns() - t0;
    return k;
  }
  int64_t ns = 0;

 private:
  Source& in_;
};

// The supervisor's artifact step for a `source: host` artifact (start.cpp), minus KMS.
// Args: workers; pin (0 header_sha256, 1 sha256).
void BM_SupervisorArtifact(benchmark::State& state) {
  World& w = world();
  const runtime::ArtifactConfig& art = state.range(1) == 0 ? w.artifact : w.artifact_whole;
  host_link::HostLink link({.cid = 3, .port = kLinkPort});
  supervisor::InstallOptions io;
  io.set_owner = false;
  io.threads = static_cast<unsigned>(state.range(0));
  io.max_plaintext = w.plaintext;  // the bench's plaintext may pass the default tmpfs size
  auto release = [&](const sealed::Header&) { return w.data_key.clone(); };
  double secs = 0, cpu = 0, growth = -1, sampled = -1, read_s = 0;
  for (auto _ : state) {
    std::filesystem::remove(art.path);
    ::malloc_trim(0);  // buffers freed earlier (sealing the file, the last run) are allocated anew: counted
    bool peak_ok = reset_peak_rss();
    double rss0 = status_kib("VmRSS"), base = rss_non_shmem_mib(), c0 = cpu_seconds();
    RssSampler sampler;
    int64_t t0 = monotonic_ns();
    auto stream = link.open_artifact(art.name);
    if (stream.sha256 != art.sha256 || stream.header_sha256 != art.header_sha256)
      throw Error(Errc::kVerify, "bench: the agent offers another file");
    supervisor::FdSource fd_src(stream.fd.get(), "artifact from the host agent", 60'000);
    TimedSource src(fd_src);
    auto r = supervisor::install_artifact(art, src, stream.size, release, io);
    secs = secs_since(t0);
    cpu = cpu_seconds() - c0;
    sampled = sampler.stop() - base;
    if (peak_ok) growth = (status_kib("VmHWM") - rss0) / 1024;
    read_s = static_cast<double>(src.ns) / 1e9;
    if (r.plaintext_bytes != w.plaintext) throw Error(Errc::kInternal, "bench: another plaintext size was placed");
    state.SetIterationTime(secs);
  }
  std::filesystem::remove(art.path);
  state.counters["pin_whole_file"] = static_cast<double>(state.range(1));
  state.counters["huge_pages"] = w.mounted && w.mounted->huge_pages() ? 1 : 0;
  state.counters["GiB_per_s"] = static_cast<double>(g_mib) / 1024 / secs;
  if (g_floor_s > 0) state.counters["x_aead"] = g_floor_s / secs;
  if (g_best_floor_s > 0) state.counters["x_best_floor"] = g_best_floor_s / secs;
  state.counters["cpu_s"] = cpu;
  state.counters["cores_used"] = cpu / secs;
  state.counters["read_s"] = read_s;  // the receiving thread inside read(): waiting for bytes + copying them
  state.counters["rss_growth_MiB"] = growth;  // VmHWM: counts the plaintext only where it is mapped
  state.counters["rss_over_plaintext_MiB"] = sampled;  // sampled peak of VmRSS - RssShmem, over its start
  state.counters["load1"] = [] { double l[1] = {-1}; ::getloadavg(l, 1); return l[0]; }();
}

// The transport alone: the same request and reads, into one reused 1 MiB buffer.
void BM_HostStream(benchmark::State& state) {
  World& w = world();
  host_link::HostLink link({.cid = 3, .port = kLinkPort});
  Bytes buf(kChunk);
  double secs = 0;
  for (auto _ : state) {
    int64_t t0 = monotonic_ns();
    auto stream = link.open_artifact(w.artifact.name);
    supervisor::FdSource src(stream.fd.get(), "artifact from the host agent", 60'000);
    uint64_t got = 0;
    while (size_t k = src.read(buf.data(), buf.size())) got += k;
    secs = secs_since(t0);
    if (got != w.sealed) throw Error(Errc::kInternal, "bench: short stream");
    state.SetIterationTime(secs);
  }
  state.counters["GiB_per_s"] = static_cast<double>(w.sealed) / (1 << 30) / secs;
  if (g_floor_s > 0) state.counters["x_aead"] = g_floor_s / secs;
}

void BM_Sha256(benchmark::State& state) {
  World& w = world();
  Mapped m(w.sealed_path);
  double secs = 0;
  for (auto _ : state) {
    int64_t t0 = monotonic_ns();
    EVP_MD_CTX* c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), nullptr);
    for (uint64_t off = 0; off < m.n; off += kChunk) EVP_DigestUpdate(c, m.p + off, std::min<uint64_t>(kChunk, m.n - off));
    uint8_t md[32];
    unsigned len = 0;
    EVP_DigestFinal_ex(c, md, &len);
    EVP_MD_CTX_free(c);
    secs = secs_since(t0);
    benchmark::DoNotOptimize(md);
    state.SetIterationTime(secs);
  }
  state.counters["GiB_per_s"] = static_cast<double>(m.n) / (1 << 30) / secs;
  if (g_floor_s > 0) state.counters["x_aead"] = g_floor_s / secs;
}

// The plaintext's way into the tmpfs as install_artifact writes it (AtomicFileWriter, 1 MiB writes).
void BM_TmpfsWrite(benchmark::State& state) {
  World& w = world();
  Bytes block(kChunk, 0x5a);
  const std::string path = w.storage + "/write.bin";
  double secs = 0;
  for (auto _ : state) {
    int64_t t0 = monotonic_ns();
    {
      AtomicFileWriter out(path, 0400);
      for (uint64_t done = 0; done < w.plaintext; done += kChunk) out.write(ByteView(block.data(), kChunk));
      out.commit();
    }
    secs = secs_since(t0);
    std::filesystem::remove(path);
    state.SetIterationTime(secs);
  }
  state.counters["GiB_per_s"] = static_cast<double>(g_mib) / 1024 / secs;
  if (g_floor_s > 0) state.counters["x_aead"] = g_floor_s / secs;
}

// posix_spawn with stdout+stderr into `log`; returns the exit status.
int spawn_wait(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw Error(Errc::kEnvironment, "bench: cannot start " + argv[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

// Supervisor start -> app start, alternated with the floor (spawning the app alone).
void BM_StartToApp(benchmark::State& state) {
  World& w = world();
  const std::string cfg = w.dir + "/runtime.yaml", log = w.dir + "/start.log";
  const std::string user = std::to_string(::getuid()) + ":" + std::to_string(::getgid());
  std::ofstream(cfg) << "version: 1\napp:\n  user: \"" + user + "\"\nhost: {cid: 3, port: 7000}\nlogs: {buffer_kib: 256}\n";
  ::setenv("SHIELD_NITRO_VSOCK_DIR", w.vsock_dir.c_str(), 1);
  const std::vector<std::string> app = {"/bin/date", "+%s%N"};
  std::vector<std::string> sup = {SN_ENCLAVE, "run", "--config", cfg, "--nsm", "sim:" + w.nsm_dir, "--"};
  sup.insert(sup.end(), app.begin(), app.end());
  std::vector<double> floor_ms, sup_ms, inside_ms;
  for (auto _ : state) {
    for (int i = 0; i < g_starts; ++i) {
      int64_t t0 = realtime_ns();
      if (spawn_wait(app, log) != 0) throw Error(Errc::kInternal, "bench: /bin/date failed");
      floor_ms.push_back(static_cast<double>(std::stoll(read_text_file(log)) - t0) / 1e6);
      t0 = realtime_ns();
      if (spawn_wait(sup, log) != 0) throw Error(Errc::kInternal, "bench: the supervisor failed: " + read_text_file(log));
      bool seen = false;
      std::istringstream lines(read_text_file(log));
      for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] != '{') continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded()) continue;
        if (j.value("event", "") == "app_started") inside_ms.push_back(static_cast<double>(j.value("since_start_us", int64_t{-1})) / 1e3);
        if (j.value("source", "") == "app" && j.value("stream", "") == "stdout") {
          sup_ms.push_back(static_cast<double>(std::stoll(j.value("line", "0")) - t0) / 1e6);
          seen = true;
        }
      }
      if (!seen) throw Error(Errc::kInternal, "bench: no app output in the supervisor's log: " + read_text_file(log));
    }
    state.SetIterationTime(percentile(sup_ms, 0.5) / 1e3);
  }
  state.counters["p50_ms"] = percentile(sup_ms, 0.5);
  state.counters["p10_ms"] = percentile(sup_ms, 0.1);
  state.counters["p90_ms"] = percentile(sup_ms, 0.9);
  state.counters["floor_p50_ms"] = percentile(floor_ms, 0.5);
  state.counters["floor_p90_ms"] = percentile(floor_ms, 0.9);
  state.counters["x_floor"] = percentile(sup_ms, 0.5) / percentile(floor_ms, 0.5);
  state.counters["inside_p50_ms"] = percentile(inside_ms, 0.5);  // main() to the app forked, as logged
  state.counters["starts"] = static_cast<double>(sup_ms.size());
}

}  // namespace

int main(int argc, char** argv) {
  set_log_level(LogLevel::kWarn);
  if (const char* e = std::getenv("SN_BENCH_ARTIFACT_MIB")) g_mib = static_cast<uint64_t>(std::max(1LL, std::atoll(e)));
  if (const char* e = std::getenv("SN_BENCH_ROUNDS")) g_rounds = std::max(1, std::atoi(e));
  if (const char* e = std::getenv("SN_BENCH_STARTS")) g_starts = std::max(1, std::atoi(e));
  if (const char* e = std::getenv("SN_BENCH_TMPFS")) g_tmpfs = e;
  auto reg = [](const char* name, auto fn) {
    return benchmark::RegisterBenchmark(name, fn)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  for (int r = 0; r < g_rounds; ++r) {
    reg("BM_AeadFloor", BM_AeadFloor);
    reg("BM_SupervisorArtifact", BM_SupervisorArtifact)->Args({1, 0})->Args({2, 0})->Args({2, 1});
  }
  reg("BM_HostStream", BM_HostStream);
  reg("BM_Sha256", BM_Sha256);
  reg("BM_TmpfsWrite", BM_TmpfsWrite);
  reg("BM_StartToApp", BM_StartToApp);
  benchmark::Initialize(&argc, argv);
  world();  // sealed and served before the first timing
  benchmark::RunSpecifiedBenchmarks();
  g_world.reset();
  return 0;
}
