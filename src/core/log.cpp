#include "shield_nitro/core/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

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
LogLevel g_level = initial_level();
std::string g_component = "shield-nitro";
std::mutex g_mu;
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }
void set_log_component(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_component = name;
}

void log(LogLevel level, const std::string& message) {
  if (level < g_level) return;
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::lock_guard<std::mutex> lock(g_mu);
  std::fprintf(stderr, "%s: %s: %s\n", g_component.c_str(), kNames[static_cast<int>(level)], message.c_str());
}

}  // namespace shield_nitro
