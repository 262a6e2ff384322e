#include "yaml_check.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

namespace shield_nitro::runtime::detail {
namespace {

std::string line_of(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return "";
  return " (line " + std::to_string(mark.line + 1) + ")";
}

// Printable, bounded excerpt of a value for messages.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 64) out += "...";
  return "'" + out + "'";
}

const char* kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

// Sees documents go by without building them.
struct DocumentCounter : YAML::EventHandler {
  YAML::Mark last_start = YAML::Mark::null_mark();
  void OnDocumentStart(const YAML::Mark& mark) override { last_start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

void Doc::fail_at(const std::string& key, const YAML::Mark& mark, const std::string& why) const {
  // Keys and values come from the file: one printable line of bounded length, whatever they hold.
  std::string text = (key.empty() ? "" : key + ": ") + why;
  if (text.size() > 512) text = text.substr(0, 512) + "...";
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  throw Error(Errc::kFormat, source_ + ": " + text + line_of(mark));
}

void Doc::fail(const std::string& key, const YAML::Node& at, const std::string& why) const {
  // A null value is marked where the next token starts: the key's line is the useful one.
  if (!at.IsDefined() || at.IsNull()) {
    auto it = key_marks_.find(key);
    if (it != key_marks_.end()) fail_at(key, it->second, why);
  }
  fail_at(key, at.IsDefined() ? at.Mark() : YAML::Mark::null_mark(), why);
}

void Doc::fail(const std::string& key, const std::string& why) const {
  fail_at(key, YAML::Mark::null_mark(), why);
}

YAML::Node Doc::load(std::string_view yaml) const {
  if (yaml.size() > kMaxConfigBytes)
    fail("", std::to_string(yaml.size()) + " bytes, more than the " + std::to_string(kMaxConfigBytes) + " allowed");
  std::string input(yaml);
  YAML::Node root;
  try {
    root = YAML::Load(input);
    // A second document is refused, not ignored. Not YAML::LoadAll: yaml-cpp 0.7 reports a
    // never-ending run of empty documents after some stray tokens (found by fuzz_runtime_config).
    std::istringstream stream(input);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    if (parser.HandleNextDocument(counter) && parser.HandleNextDocument(counter))
      fail_at("", counter.last_start, "expected one YAML document");
  } catch (const YAML::ParserException& e) {
    fail_at("", e.mark, "YAML syntax: " + e.msg);
  } catch (const YAML::Exception& e) {
    fail_at("", e.mark, "YAML: " + e.msg);
  }
  if (!root.IsDefined() || (root.IsNull() && yaml.find_first_not_of(" \t\r\n") == std::string_view::npos))
    fail("", "empty file (expected a mapping)");
  return root;
}

std::string read_config_file(const std::string& path) {
  FileReader in(path);
  std::string text(kMaxConfigBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    size_t n = in.read(reinterpret_cast<uint8_t*>(text.data()) + got, text.size() - got);
    if (n == 0) break;
    got += n;
  }
  text.resize(got);
  return text;
}

std::string join(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

std::string index(const std::string& prefix, size_t i) { return prefix + "[" + std::to_string(i) + "]"; }

Map::Map(const Doc& doc, const YAML::Node& node, std::string path, std::initializer_list<std::string_view> known)
    : doc_(doc), node_(node), path_(std::move(path)) {
  if (!node.IsMap()) doc.fail(path_, node, std::string("expected a mapping, got ") + kind(node));
  for (const auto& kv : node) {
    YAML::Node k = kv.first;  // copies: the iterator's pair is a temporary
    if (!k.IsScalar()) doc.fail(path_, k, std::string("expected a plain key, got ") + kind(k));
    const std::string& name = k.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string expected;
      for (std::string_view s : known) expected += (expected.empty() ? "" : ", ") + std::string(s);
      doc.fail(join(path_, name), k, "unknown key; expected one of: " + expected);
    }
    for (const auto& [seen, _] : values_)
      if (seen == name) doc.fail(join(path_, name), k, "duplicate key");
    doc.remember(join(path_, name), k.Mark());
    values_.emplace_back(name, kv.second);
  }
}

std::optional<YAML::Node> Map::get(std::string_view key) const {
  for (const auto& [name, value] : values_)
    if (name == key) return value;
  return std::nullopt;
}

YAML::Node Map::need(std::string_view key) const {
  auto v = get(key);
  if (!v) doc_.fail(path(key), node_, "required key missing");
  return *v;
}

std::string text(const Doc& doc, const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) doc.fail(path, node, std::string("expected a string, got ") + kind(node));
  const std::string& s = node.Scalar();
  if (s.find('\0') != std::string::npos) doc.fail(path, node, "NUL byte in value");
  return s;
}

std::string nonempty(const Doc& doc, const YAML::Node& node, const std::string& path) {
  std::string s = text(doc, node, path);
  if (s.empty()) doc.fail(path, node, "must not be empty");
  return s;
}

uint64_t integer(const Doc& doc, const YAML::Node& node, const std::string& path, uint64_t min, uint64_t max) {
  std::string range = std::to_string(min) + "-" + std::to_string(max);
  if (!node.IsScalar() || node.Tag() != "?")
    doc.fail(path, node, "expected an integer " + range + ", got " + (node.IsScalar() ? "a quoted string" : kind(node)));
  const std::string& s = node.Scalar();
  bool digits = !s.empty() && s.size() <= 20 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || (s.size() > 1 && s[0] == '0')) doc.fail(path, node, "expected an integer " + range + ", got " + shown(s));
  uint64_t v = 0;
  for (char c : s) {
    if (v > (UINT64_MAX - (c - '0')) / 10) doc.fail(path, node, "out of range " + range + ": " + s);
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v < min || v > max) doc.fail(path, node, "out of range " + range + ": " + s);
  return v;
}

std::string abs_path(const Doc& doc, const YAML::Node& node, const std::string& path) {
  std::string s = nonempty(doc, node, path);
  if (s[0] != '/') doc.fail(path, node, "expected an absolute path, got " + shown(s));
  if (s.size() > 4095) doc.fail(path, node, "path longer than 4095 bytes");
  if (s == "/") return s;
  if (s.back() == '/') doc.fail(path, node, "trailing '/' in " + shown(s));
  for (size_t start = 1; start <= s.size();) {
    size_t end = s.find('/', start);
    if (end == std::string::npos) end = s.size();
    std::string_view part(s.data() + start, end - start);
    if (part.empty()) doc.fail(path, node, "empty component ('//') in " + shown(s));
    if (part == "." || part == "..") doc.fail(path, node, "'" + std::string(part) + "' component in " + shown(s));
    start = end + 1;
  }
  return s;
}

std::vector<YAML::Node> sequence(const Doc& doc, const YAML::Node& node, const std::string& path) {
  if (!node.IsSequence()) doc.fail(path, node, std::string("expected a list, got ") + kind(node));
  std::vector<YAML::Node> out;
  for (const auto& item : node) out.push_back(item);
  return out;
}

std::map<std::string, std::string> string_map(const Doc& doc, const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) doc.fail(path, node, std::string("expected a mapping, got ") + kind(node));
  std::map<std::string, std::string> out;
  for (const auto& kv : node) {
    YAML::Node k = kv.first;
    if (!k.IsScalar()) doc.fail(path, k, std::string("expected a plain key, got ") + kind(k));
    std::string key = k.Scalar();
    std::string key_path = join(path, key);
    if (key.empty()) doc.fail(path, k, "empty key");
    if (out.count(key)) doc.fail(key_path, k, "duplicate key");
    doc.remember(key_path, k.Mark());
    out[key] = text(doc, kv.second, key_path);
  }
  return out;
}

bool is_simple_name(std::string_view s) {
  if (s.empty() || s.size() > 64 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; });
}

bool is_below(std::string_view child, std::string_view dir) {
  if (dir == "/") return child.size() > 1 && child[0] == '/';
  return child.size() > dir.size() && child.starts_with(dir) && child[dir.size()] == '/';
}

}  // namespace shield_nitro::runtime::detail
