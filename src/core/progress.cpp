#include "shield_nitro/core/progress.h"

#include <unistd.h>

#include <cstdio>

#include "shield_nitro/core/clock.h"

namespace shield_nitro {

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), start_ns_(monotonic_ns()), enabled_(enabled && ::isatty(STDERR_FILENO)) {}

Progress::~Progress() { finish(); }

void Progress::add(uint64_t n) {
  done_ += n;
  if (!enabled_) return;
  int64_t now = monotonic_ns();
  int64_t last = last_draw_ns_.load();
  // Draw at most 10 times a second, and only once the work has run for a second.
  if (now - start_ns_ < 1000000000LL || now - last < 100000000LL) return;
  if (last_draw_ns_.compare_exchange_strong(last, now)) draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_ && last_draw_ns_.load() != 0) draw(true);
}

void Progress::draw(bool final) {
  double secs = static_cast<double>(monotonic_ns() - start_ns_) / 1e9;
  double mib = static_cast<double>(done_.load()) / (1 << 20);
  double rate = secs > 0 ? mib / secs : 0;
  if (total_ > 0) {
    double frac = static_cast<double>(done_.load()) / static_cast<double>(total_);
    if (frac > 1) frac = 1;
    int filled = static_cast<int>(frac * 30);
    std::fprintf(stderr, "\r%s [%.*s%*s] %5.1f%% %.0f MiB %.0f MiB/s", label_.c_str(), filled,
                 "==============================", 30 - filled, "", frac * 100, mib, rate);
  } else {
    std::fprintf(stderr, "\r%s %.0f MiB %.0f MiB/s", label_.c_str(), mib, rate);
  }
  if (final) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace shield_nitro
