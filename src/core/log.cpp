#include "shield_nitro/core/log.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "shield_nitro/core/clock.h"

namespace shield_nitro {
namespace {
LogLevel initial_level() {
  const char* env = std::getenv("SHIELD_NITRO_LOG");
  if (!env) return LogLevel::kInfo;
  if (!std::strcmp(env, "debug")) return LogLevel::kDebug;
  if (!std::strcmp(env, "warn")) return LogLevel::kWarn;
  if (!std::strcmp(env, "error")) return LogLevel::kError;
  if (!std::strcmp(env, "off")) return LogLevel::kOff;
  return LogLevel::kInfo;
}

// A flood of one event (say, refused connections) must not fill the disk: a line identical to
// the one before is counted, and the count comes out as one line.
constexpr int64_t kRepeatReportNs = 10'000'000'000;
const char* const kNames[] = {"debug", "info", "warn", "error"};

struct State {
  std::mutex mu;
  std::string component = "shield-nitro";
  LogLevel last_level = LogLevel::kOff;
  std::string last;         // the last line printed (message only)
  uint64_t repeats = 0;     // identical lines since, not yet reported
  int64_t reported_ns = 0;  // when `last` or its count was last printed

  void print(LogLevel level, const std::string& message) {
    std::fprintf(stderr, "%s: %s: %s\n", component.c_str(), kNames[static_cast<int>(level)], message.c_str());
  }
  void report_repeats() {
    if (repeats == 0) return;
    std::fprintf(stderr, "%s: %s: %s (repeated %llu more times)\n", component.c_str(),
                 kNames[static_cast<int>(last_level)], last.c_str(), static_cast<unsigned long long>(repeats));
    repeats = 0;
    reported_ns = monotonic_ns();
  }
};

LogLevel g_level = initial_level();
// Never destroyed, so lines logged by other static destructors stay safe.
State& g_state = *new State;

void report_at_exit() {
  std::lock_guard<std::mutex> lock(g_state.mu);
  g_state.report_repeats();
}
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }
void set_log_component(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_state.mu);
  g_state.report_repeats();
  g_state.component = name;
}

void log(LogLevel level, const std::string& message) {
  if (level < g_level) return;
  std::lock_guard<std::mutex> lock(g_state.mu);
  if (level == g_state.last_level && message == g_state.last) {
    static const bool registered = std::atexit(report_at_exit) == 0;
    (void)registered;
    g_state.repeats++;
    if (monotonic_ns() - g_state.reported_ns >= kRepeatReportNs) g_state.report_repeats();
    return;
  }
  g_state.report_repeats();
  g_state.print(level, message);
  g_state.last_level = level;
  g_state.last = message;
  g_state.reported_ns = monotonic_ns();
}

void log_flush_repeats() {
  std::lock_guard<std::mutex> lock(g_state.mu);
  g_state.report_repeats();
}

}  // namespace shield_nitro
