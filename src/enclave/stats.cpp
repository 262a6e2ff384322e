#include "shield_nitro/enclave/stats.h"

#include <cmath>

namespace shield_nitro::enclave {

// Bucket b holds latencies up to 100 ns * 1.09^b (covers 100 ns .. ~400 s).
size_t OpStats::bucket(int64_t ns) {
  if (ns <= 100) return 0;
  double b = std::log(static_cast<double>(ns) / 100.0) / std::log(1.09);
  size_t i = static_cast<size_t>(std::ceil(b));
  return i < kBuckets ? i : kBuckets - 1;
}

double OpStats::bucket_upper_us(size_t b) { return 0.1 * std::pow(1.09, static_cast<double>(b)); }

void OpStats::record(const std::string& op, int64_t latency_ns, bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  PerOp& p = ops_[op];
  ++p.requests;
  if (!ok) ++p.errors;
  ++p.hist[bucket(latency_ns)];
}

std::map<std::string, OpStats::Summary> OpStats::summary() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, Summary> out;
  for (const auto& [op, p] : ops_) {
    Summary s{p.requests, p.errors, 0, 0};
    uint64_t seen = 0;
    bool have50 = false;
    for (size_t b = 0; b < kBuckets; ++b) {
      seen += p.hist[b];
      if (!have50 && seen * 2 >= p.requests) {
        s.p50_us = bucket_upper_us(b);
        have50 = true;
      }
      if (seen * 100 >= p.requests * 99) {
        s.p99_us = bucket_upper_us(b);
        break;
      }
    }
    out[op] = s;
  }
  return out;
}

}  // namespace shield_nitro::enclave
