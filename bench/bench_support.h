// Shared by the benches: what they read about their own process (RSS, peak RSS, CPU time) and
// a plaintext generated as it is read.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>

#include "shield_nitro/core/byte_io.h"

namespace sn_bench {

// /proc/self/status field in KiB ("VmRSS", "VmHWM"); -1 when absent.
inline double status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1));
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false if not allowed here.
inline bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// Process CPU time (user + system, all threads), in s.
inline double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

// Plaintext: a counter pattern, generated as it is read (never whole in memory).
class Pattern final : public shield_nitro::Source {
 public:
  explicit Pattern(uint64_t n) : left_(n) {}
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

}  // namespace sn_bench
