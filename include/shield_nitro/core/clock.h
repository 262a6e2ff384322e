// Injectable time source. Production code takes a Clock& defaulting to system_clock();
// tests pass a FixedClock to reproduce vectors. Never use FixedClock on a production path.
#pragma once

#include <cstdint>
#include <string>

namespace shield_nitro {

// A time source; implementations are safe to read from many threads.
class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (UTC).
  virtual int64_t now_ms() const = 0;
  // Seconds since the epoch (truncated).
  int64_t now_s() const { return now_ms() / 1000; }
};

// The real wall clock (CLOCK_REALTIME).
const Clock& system_clock();

// A clock that reads ms until told otherwise (tests). Not thread-safe.
class FixedClock final : public Clock {
 public:
  explicit FixedClock(int64_t ms) : ms_(ms) {}
  int64_t now_ms() const override { return ms_; }
  // Sets the time, or moves it by d ms (either way).
  void set_ms(int64_t ms) { ms_ = ms; }
  void advance_ms(int64_t d) { ms_ += d; }

 private:
  int64_t ms_;
};

// Monotonic nanoseconds, for latency measurement only.
int64_t monotonic_ns();

// unix_s as UTC text in a strftime format: "%Y-%m-%dT%H:%M:%SZ" (RFC 3339), "%Y%m%dT%H%M%SZ"
// (SigV4), "%a, %d %b %Y %H:%M:%S GMT" (HTTP Date). The decimal seconds if out of range.
std::string format_utc(int64_t unix_s, const char* strftime_format);

}  // namespace shield_nitro
