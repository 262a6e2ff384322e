#include "shield_nitro/core/clock.h"

#include <time.h>

#include <ctime>

namespace shield_nitro {
namespace {
class SystemClock final : public Clock {
 public:
  int64_t now_ms() const override {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  }
};
}  // namespace

const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string format_utc(int64_t unix_s, const char* strftime_format) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  char buf[64];
  if (!gmtime_r(&t, &tm) || std::strftime(buf, sizeof buf, strftime_format, &tm) == 0) return std::to_string(unix_s);
  return buf;
}

}  // namespace shield_nitro
