// Per-operation counters and latency percentiles for the `stats` operation.
// Latencies go into log-spaced buckets (about 9% wide), so recording is lock-free-cheap and
// percentiles are accurate to a bucket.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace shield_nitro::enclave {

// Thread-safe (one mutex; recording is a few increments).
class OpStats {
 public:
  // Counts one request of op that took latency_ns; ok false counts it as an error.
  void record(const std::string& op, int64_t latency_ns, bool ok);

  struct Summary {
    uint64_t requests = 0;
    uint64_t errors = 0;
    double p50_us = 0;
    double p99_us = 0;
  };
  // Per op: counts and p50/p99 latency (µs, upper edge of the bucket).
  std::map<std::string, Summary> summary() const;

 private:
  static constexpr size_t kBuckets = 256;
  struct PerOp {
    uint64_t requests = 0;
    uint64_t errors = 0;
    std::array<uint64_t, kBuckets> hist{};
  };
  static size_t bucket(int64_t ns);
  static double bucket_upper_us(size_t b);
  mutable std::mutex mu_;
  std::map<std::string, PerOp> ops_;
};

}  // namespace shield_nitro::enclave
