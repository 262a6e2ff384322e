// Fuzzes the runtime config parser (yaml-cpp and the strict schema on top): anything but
// Error(kFormat) escaping is a bug, and what is accepted must keep the schema's promises.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shield_nitro/core/error.h"
#include "shield_nitro/runtime/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  using namespace shield_nitro::runtime;
  RuntimeConfig c;
  try {
    c = parse_runtime_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const Error& e) {
    if (e.code() != Errc::kFormat) __builtin_trap();
    return 0;
  }
  const std::string& dir = c.storage.path;
  for (const auto& a : c.artifacts) {
    bool below = a.path.size() > dir.size() && a.path.compare(0, dir.size(), dir) == 0 && a.path[dir.size()] == '/';
    // Exactly one pin: the whole file's digest or its prefix's (header_sha256).
    bool one_pin = (a.sha256.size() == 64 && a.header_sha256.empty()) || (a.header_sha256.size() == 64 && a.sha256.empty());
    if (!below || !one_pin) __builtin_trap();
  }
  for (const auto& r : c.egress.allow) {
    // Every accepted rule matches the name it was written for, and a wildcard never its suffix.
    bool wild = r.host.size() > 2 && r.host[0] == '*';
    std::string name = wild ? "a" + r.host.substr(1) : r.host;
    if (r.port == 0 || !r.matches(name, r.port) || !c.egress.allows(name, r.port)) __builtin_trap();
    if (wild && r.matches(r.host.substr(2), r.port)) __builtin_trap();
  }
  return 0;
}
