// EIF build throughput: an EIF from a 512 MiB root filesystem of incompressible files, beside
// the physical floor measured in the same run (one SHA-384 pass over the same bytes), and the
// peak memory of a fresh `shield-nitro eif build` process (ru_maxrss via wait4).
//
// The build must do two SHA-384 passes over the customer ramdisk (PCR0 and PCR2 are separate
// chains) plus CRC-32, cpio framing and the file write; with two cores it should stay within
// 1.3x of one pass. Files live on /dev/shm when present, so the disk is not what is measured.
#include <benchmark/benchmark.h>
#include <openssl/rand.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/eif/builder.h"
#include "shield_nitro/eif/image.h"
#include "shield_nitro/eif/metadata.h"
#include "shield_nitro/eif/pcr.h"
#include "shield_nitro/eif/ramdisk.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace shield_nitro;
using namespace shield_nitro::eif;

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

constexpr size_t kTotal = size_t{512} << 20;
constexpr size_t kFileSize = size_t{4} << 20;

struct Fixture {
  std::string dir, rootfs, out;
  std::vector<std::string> files;
  double floor_seconds = 0;
  double floor_cpu_seconds = 0;

  Fixture() {
    std::string base = fs::exists("/dev/shm") ? "/dev/shm" : fs::temp_directory_path().string();
    std::string tmpl = base + "/eif-bench-XXXXXX";
    dir = ::mkdtemp(tmpl.data());
    rootfs = dir + "/rootfs";
    out = dir + "/out.eif";
    std::vector<uint8_t> buf(kFileSize);
    for (size_t i = 0; i < kTotal / kFileSize; ++i) {
      std::string sub = rootfs + "/usr/share/model/part" + std::to_string(i / 16);
      fs::create_directories(sub);
      std::string path = sub + "/shard-" + std::to_string(i) + ".bin";
      RAND_bytes(buf.data(), static_cast<int>(buf.size()));
      std::ofstream(path, std::ios::binary).write(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
      files.push_back(path);
    }
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

std::string blob(const std::string& name) { return std::string(SN_FIXTURES_DIR) + "/eif/blobs/x86_64/" + name; }
std::string kernel() { return std::string(SN_FIXTURES_DIR) + "/eif/tiny/kernel.bin"; }

// The floor: read every file once and hash it with one SHA-384, on one core.
void BM_FloorSha384(benchmark::State& state) {
  Fixture& f = fixture();
  std::vector<uint8_t> buf(1 << 20);
  for (auto _ : state) {
    int64_t t0 = monotonic_ns();
    double c0 = process_cpu_seconds();
    Sha384 h;
    for (const auto& path : f.files) {
      std::ifstream in(path, std::ios::binary);
      while (in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
        h.update(ByteView(buf.data(), static_cast<size_t>(in.gcount())));
    }
    benchmark::DoNotOptimize(h.final());
    f.floor_seconds = static_cast<double>(monotonic_ns() - t0) / 1e9;
    f.floor_cpu_seconds = process_cpu_seconds() - c0;
  }
  state.counters["cpu_s"] = f.floor_cpu_seconds;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kTotal));
}

void BM_BuildEif512MiB(benchmark::State& state) {
  Fixture& f = fixture();
  double best = 1e9, cpu = 0;
  for (auto _ : state) {
    int64_t t0 = monotonic_ns();
    double c0 = process_cpu_seconds();
    BuildInput in;
    in.kernel_path = kernel();
    in.cmdline = Bytes{'c'};
    in.ramdisks = {{"", bootstrap_ramdisk(blob("init"), blob("nsm.ko"))},
                   {"", customer_ramdisk(scan_rootfs_dir(f.rootfs, 0), {"/bin/app"}, {})}};
    std::string meta = serialize_metadata(BuildMetadata{});
    in.metadata = Bytes(meta.begin(), meta.end());
    in.progress = false;
    benchmark::DoNotOptimize(build_eif(in, f.out));
    best = std::min(best, static_cast<double>(monotonic_ns() - t0) / 1e9);
    cpu = process_cpu_seconds() - c0;
  }
  state.counters["cpu_s"] = cpu;
  state.counters["cpu_ratio_vs_floor"] = f.floor_cpu_seconds > 0 ? cpu / f.floor_cpu_seconds : 0;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kTotal));
  state.counters["floor_s"] = f.floor_seconds;
  state.counters["best_s"] = best;
  state.counters["ratio_vs_floor"] = f.floor_seconds > 0 ? best / f.floor_seconds : 0;
  state.counters["target_ratio"] = 1.3;
}

// Peak resident memory of a fresh CLI process doing the same build.
void BM_BuildEifPeakMemory(benchmark::State& state) {
  Fixture& f = fixture();
  long max_kib = 0;
  for (auto _ : state) {
    std::vector<std::string> args = {SN_CLI, "eif", "build", "--kernel", kernel(), "--cmdline-text", "c",
                                     "--init", blob("init"), "--nsm-ko", blob("nsm.ko"), "--rootfs", f.rootfs,
                                     "--cmd", "[\"/bin/app\"]", "-o", f.dir + "/cli.eif"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    if (posix_spawn(&pid, SN_CLI, &fa, nullptr, argv.data(), environ) != 0) {
      state.SkipWithError("cannot start the CLI");
      break;
    }
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    rusage ru{};
    wait4(pid, &status, 0, &ru);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("the CLI build failed");
      break;
    }
    max_kib = std::max(max_kib, ru.ru_maxrss);
  }
  state.counters["peak_rss_MiB"] = static_cast<double>(max_kib) / 1024.0;
  state.counters["target_MiB"] = 64;
}

}  // namespace

BENCHMARK(BM_FloorSha384)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_BuildEif512MiB)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_BuildEifPeakMemory)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_MAIN();
