// Internal: strict reading of a yaml-cpp document for the runtime and host configs. Every
// refusal is one Error(kFormat) line: "<source>: <key path>: <why> (line N)".
#pragma once

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shield_nitro::runtime::detail {

// Larger than any sane config; bounds the work a hostile file can cause.
inline constexpr size_t kMaxConfigBytes = 1 << 20;

class Doc {
 public:
  explicit Doc(std::string_view source) : source_(source) {}
  // Throws Error(kFormat); the line is added when the node carries one.
  [[noreturn]] void fail(const std::string& key, const YAML::Node& at, const std::string& why) const;
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  [[noreturn]] void fail_at(const std::string& key, const YAML::Mark& mark, const std::string& why) const;
  // Exactly one YAML document of at most kMaxConfigBytes; syntax errors become fail().
  YAML::Node load(std::string_view yaml) const;
  // Where the key of `key` is, for values without a position of their own (`key:` alone).
  void remember(const std::string& key, const YAML::Mark& mark) const { key_marks_[key] = mark; }
  // Where a key seen so far was written, if it was.
  std::optional<YAML::Mark> mark_of(const std::string& key) const {
    auto it = key_marks_.find(key);
    return it == key_marks_.end() ? std::nullopt : std::optional<YAML::Mark>(it->second);
  }

 private:
  std::string source_;
  mutable std::map<std::string, YAML::Mark> key_marks_;
};

// The file's text, read up to one byte past kMaxConfigBytes (so /dev/zero or a huge file is
// refused by the parser's size check, not read whole). Error(kIo) naming the path.
std::string read_config_file(const std::string& path);

// "a.b" / "a[2]" key paths.
std::string join(const std::string& prefix, std::string_view key);
std::string index(const std::string& prefix, size_t i);

// A mapping with a fixed set of keys: anything unknown or repeated is refused up front.
class Map {
 public:
  Map(const Doc& doc, const YAML::Node& node, std::string path, std::initializer_list<std::string_view> known);
  // The value of key, when present (an explicit null counts as present).
  std::optional<YAML::Node> get(std::string_view key) const;
  // As get(), but a missing key is refused.
  YAML::Node need(std::string_view key) const;
  std::string path(std::string_view key) const { return join(path_, key); }
  const YAML::Node& node() const { return node_; }
  const Doc& doc() const { return doc_; }

 private:
  const Doc& doc_;
  YAML::Node node_;
  std::string path_;
  std::vector<std::pair<std::string, YAML::Node>> values_;
};

// A scalar, as text (plain or quoted); null, sequences and mappings are refused.
std::string text(const Doc& doc, const YAML::Node& node, const std::string& path);
// A non-empty scalar.
std::string nonempty(const Doc& doc, const YAML::Node& node, const std::string& path);
// A plain decimal integer in [min, max] (quoted numbers, signs, leading zeros are refused).
uint64_t integer(const Doc& doc, const YAML::Node& node, const std::string& path, uint64_t min, uint64_t max);
// An absolute, normalized path: leading '/', no '.', '..' or empty components, no trailing '/'.
std::string abs_path(const Doc& doc, const YAML::Node& node, const std::string& path);
// A sequence (possibly empty).
std::vector<YAML::Node> sequence(const Doc& doc, const YAML::Node& node, const std::string& path);
// A mapping of scalar keys to scalar values, keys unique and non-empty.
std::map<std::string, std::string> string_map(const Doc& doc, const YAML::Node& node, const std::string& path);

// Letters, digits, '.', '_', '-'; at most 64; starting alphanumeric (artifact and enclave names).
bool is_simple_name(std::string_view s);

// Whether child lies strictly below dir (both normalized absolute paths).
bool is_below(std::string_view child, std::string_view dir);

}  // namespace shield_nitro::runtime::detail
