#include "shield_nitro/eif/metadata.h"

#include <cstdlib>
#include <ctime>
#include <sstream>
#include <vector>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/version.h"

namespace shield_nitro::eif {
namespace {

std::string q(const std::string& s) { return nlohmann::json(s).dump(); }

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

std::string shield_nitro_version() { return version(); }

std::string serialize_metadata(const BuildMetadata& m) {
  // Compact, in nitro-cli's struct order; nlohmann::json sorts nested object keys like serde_json.
  return "{\"ImageName\":" + q(m.image_name) + ",\"ImageVersion\":" + q(m.image_version) +
         ",\"BuildMetadata\":{\"BuildTime\":" + q(m.build_time) + ",\"BuildTool\":" + q(m.build_tool) +
         ",\"BuildToolVersion\":" + q(m.build_tool_version) + ",\"OperatingSystem\":" + q(m.operating_system) +
         ",\"KernelVersion\":" + q(m.kernel_version) + "},\"DockerInfo\":" + m.docker_info.dump() +
         ",\"CustomMetadata\":" + m.custom_metadata.dump() + "}";
}

int64_t default_build_time() {
  const char* sde = std::getenv("SOURCE_DATE_EPOCH");
  if (sde && *sde) {
    if (!all_digits(sde)) throw Error(Errc::kUsage, "SOURCE_DATE_EPOCH must be a non-negative integer");
    return std::strtoll(sde, nullptr, 10);
  }
  return 0;
}

int64_t parse_build_time(const std::string& text) {
  if (all_digits(text) && text.size() <= 12) return std::strtoll(text.c_str(), nullptr, 10);
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    throw Error(Errc::kUsage, "--build-time must be Unix seconds or RFC 3339 UTC, e.g. 2024-01-02T03:04:05Z");
  std::string zone = text.substr(static_cast<size_t>(consumed));
  if (zone != "Z" && zone != "+00:00")
    throw Error(Errc::kUsage, "--build-time must be in UTC (end in Z or +00:00): " + text);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm));
}

std::string format_build_time(int64_t epoch_seconds) { return format_utc(epoch_seconds, "%Y-%m-%dT%H:%M:%S+00:00"); }

std::optional<std::pair<std::string, std::string>> kernel_config_info(const std::string& config_text) {
  std::istringstream in(config_text);
  std::string line;
  for (int i = 0; i < 3; ++i)
    if (!std::getline(in, line)) return std::nullopt;
  std::vector<std::string> words(1);
  for (char c : line) {
    if (c == ' ' || c == '/' || c == '-') words.emplace_back();
    else words.back() += c;
  }
  if (words.size() < 4) return std::nullopt;
  return std::make_pair(words[1], words[3]);
}

}  // namespace shield_nitro::eif
