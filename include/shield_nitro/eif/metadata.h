// The Metadata section (type 5, spec/eif.md §5): compact JSON in nitro-cli's field order.
// Not measured, but part of the file bytes, so the builder fixes BuildTime for reproducibility.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

namespace shield_nitro::eif {

// This library's version, written as BuildToolVersion.
std::string shield_nitro_version();

struct BuildMetadata {
  std::string image_name;
  std::string image_version;
  std::string build_time;  // RFC 3339, e.g. "1970-01-01T00:00:00+00:00"
  std::string build_tool = "shield-nitro";
  std::string build_tool_version = shield_nitro_version();
  std::string operating_system = "Linux";
  std::string kernel_version = "unknown";
  nlohmann::json docker_info;      // null when absent
  nlohmann::json custom_metadata;  // null when absent
};

// serde_json::to_vec form: struct field order, object keys inside DockerInfo/CustomMetadata sorted.
std::string serialize_metadata(const BuildMetadata& m);

// The reproducible default: $SOURCE_DATE_EPOCH when set, else 0 (1970-01-01T00:00:00+00:00).
int64_t default_build_time();
// Accepts Unix seconds ("1700000000") or RFC 3339 ("2024-01-02T03:04:05Z", "+00:00").
int64_t parse_build_time(const std::string& text);
std::string format_build_time(int64_t epoch_seconds);

// OperatingSystem and KernelVersion as nitro-cli takes them from <kernel>.config: words 1 and 3
// of line 3, split on ' ', '/' and '-'. Nullopt when the text does not have them.
std::optional<std::pair<std::string, std::string>> kernel_config_info(const std::string& config_text);

}  // namespace shield_nitro::eif
