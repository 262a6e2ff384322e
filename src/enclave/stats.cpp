#include "shield_nitro/enclave/stats.h"

#include <cmath>

namespace shield_nitro::enclave {

OpStats::OpStats(const std::vector<std::string>& ops) {
  for (const auto& name : ops) {
    ops_.push_back(std::make_unique<PerOp>());
    ops_.back()->name = name;
  }
}

size_t OpStats::index(std::string_view op) const {
  for (size_t i = 0; i < ops_.size(); ++i)
    if (ops_[i]->name == op) return i;
  return kUnknown;
}

// Bucket b holds latencies up to 100 ns * 1.09^b (covers 100 ns .. ~400 s).
size_t OpStats::bucket(int64_t ns) {
  if (ns <= 100) return 0;
  double b = std::log(static_cast<double>(ns) / 100.0) / std::log(1.09);
  size_t i = static_cast<size_t>(std::ceil(b));
  return i < kBuckets ? i : kBuckets - 1;
}

double OpStats::bucket_upper_us(size_t b) { return 0.1 * std::pow(1.09, static_cast<double>(b)); }

void OpStats::record(size_t op, int64_t latency_ns, bool ok) {
  if (op >= ops_.size()) return;
  PerOp& p = *ops_[op];
  p.requests.fetch_add(1, std::memory_order_relaxed);
  if (!ok) p.errors.fetch_add(1, std::memory_order_relaxed);
  p.hist[bucket(latency_ns)].fetch_add(1, std::memory_order_relaxed);
}

std::map<std::string, OpStats::Summary> OpStats::summary() const {
  std::map<std::string, Summary> out;
  for (const auto& p : ops_) {
    // A snapshot of counters that keep moving: the percentiles use the histogram's own total.
    std::array<uint64_t, kBuckets> hist;
    uint64_t total = 0;
    for (size_t b = 0; b < kBuckets; ++b) total += hist[b] = p->hist[b].load(std::memory_order_relaxed);
    if (total == 0) continue;
    Summary s{p->requests.load(std::memory_order_relaxed), p->errors.load(std::memory_order_relaxed), 0, 0};
    uint64_t seen = 0;
    bool have50 = false;
    for (size_t b = 0; b < kBuckets; ++b) {
      seen += hist[b];
      if (!have50 && seen * 2 >= total) {
        s.p50_us = bucket_upper_us(b);
        have50 = true;
      }
      if (seen * 100 >= total * 99) {
        s.p99_us = bucket_upper_us(b);
        break;
      }
    }
    out[p->name] = s;
  }
  return out;
}

}  // namespace shield_nitro::enclave
