// Per-operation counters and latency percentiles for the `stats` operation.
// Latencies go into log-spaced buckets (about 9% wide), so percentiles are accurate to a bucket.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shield_nitro::enclave {

// The ops are fixed when it is built; recording is lock-free (a few relaxed atomic increments:
// it runs on every request's hot path, from the event loop and the workers at once).
class OpStats {
 public:
  static constexpr size_t kUnknown = SIZE_MAX;
  explicit OpStats(const std::vector<std::string>& ops);

  // The index of op for record(), or kUnknown (a peer's made-up name counts nowhere).
  size_t index(std::string_view op) const;
  // Counts one request of ops[op] that took latency_ns; ok false counts it as an error.
  // kUnknown is ignored.
  void record(size_t op, int64_t latency_ns, bool ok);

  struct Summary {
    uint64_t requests = 0;
    uint64_t errors = 0;
    double p50_us = 0;
    double p99_us = 0;
  };
  // Per op that had requests: counts and p50/p99 latency (µs, upper edge of the bucket).
  std::map<std::string, Summary> summary() const;

 private:
  static constexpr size_t kBuckets = 256;
  struct PerOp {
    std::string name;
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> errors{0};
    std::array<std::atomic<uint64_t>, kBuckets> hist{};
  };
  static size_t bucket(int64_t ns);
  static double bucket_upper_us(size_t b);
  std::vector<std::unique_ptr<PerOp>> ops_;
};

}  // namespace shield_nitro::enclave
