// Minimal leveled logging to stderr. Never pass secrets: there is deliberately no overload
// for SecureBytes.
#pragma once

#include <string>

namespace shield_nitro {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// The process-wide threshold (default: $SHIELD_NITRO_LOG or kInfo); lines below it are dropped.
void set_log_level(LogLevel level);
LogLevel log_level();
// Sets a component prefix, e.g. "enclave", printed on every line of this process.
void set_log_component(const std::string& name);
// A line identical to the previous one (level and text) is not printed again: it is counted,
// and "<line> (repeated N more times)" is printed before the next different line, at most
// every 10 s while the repeats go on, by log_flush_repeats() and at exit.
void log(LogLevel level, const std::string& message);
void log_flush_repeats();
// log() at one level.
inline void log_debug(const std::string& m) { log(LogLevel::kDebug, m); }
inline void log_info(const std::string& m) { log(LogLevel::kInfo, m); }
inline void log_warn(const std::string& m) { log(LogLevel::kWarn, m); }
inline void log_error(const std::string& m) { log(LogLevel::kError, m); }

}  // namespace shield_nitro
