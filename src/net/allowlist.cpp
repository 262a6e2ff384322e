#include "shield_nitro/net/allowlist.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cctype>
#include <cstring>
#include <optional>
#include <set>

#include "text.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

namespace shield_nitro::net {
namespace {

using detail::iequals;

[[noreturn]] void fail(size_t line, const std::string& why) {
  throw Error(Errc::kFormat, "allowlist line " + std::to_string(line) + ": " + why);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A comment starts at '#' at the line start or after a blank (YAML's rule), outside quotes.
std::string_view strip_comment(std::string_view s) {
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
      return s.substr(0, i);
    }
  }
  return s;
}

size_t indent_of(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && s[n] == ' ') ++n;
  if (n < s.size() && s[n] == '\t') return std::string_view::npos;
  return n;
}

// A plain or quoted scalar without escapes; quotes are removed.
std::string scalar(std::string_view v, size_t line) {
  v = trim(v);
  if (v.empty()) fail(line, "empty value");
  if (v.front() == '"' || v.front() == '\'') {
    if (v.size() < 2 || v.back() != v.front()) fail(line, "unterminated quoted value");
    v = v.substr(1, v.size() - 2);
    if (v.find('\\') != std::string_view::npos) fail(line, "escapes in quoted values are not supported");
    return std::string(v);
  }
  for (char c : v)
    if (c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == ':' || c == '"' || c == '\'' || c == ' ')
      fail(line, "unexpected '" + std::string(1, c) + "' in value '" + std::string(v) + "'");
  return std::string(v);
}

struct PartialEntry {
  std::optional<std::string> address;
  std::optional<uint16_t> port;
};

void set_key(PartialEntry& e, std::string_view pair, size_t line) {
  size_t colon = pair.find(": ");
  if (colon == std::string_view::npos) {
    if (!pair.empty() && pair.back() == ':') fail(line, "missing value after '" + std::string(pair) + "'");
    fail(line, "expected 'key: value', got '" + std::string(trim(pair)) + "'");
  }
  std::string_view key = trim(pair.substr(0, colon));
  std::string value = scalar(pair.substr(colon + 2), line);
  if (key == "address") {
    if (e.address) fail(line, "duplicate key 'address'");
    if (value.empty()) fail(line, "address '' is not a host name or IP address");
    for (char c : value)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':'))
        fail(line, "address '" + value + "' is not a host name or IP address");
    e.address = value;
  } else if (key == "port") {
    if (e.port) fail(line, "duplicate key 'port'");
    if (value.empty() || value.size() > 5 || value.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(value) == 0 || std::stoul(value) > 65535)
      fail(line, "port must be a number 1-65535, got '" + value + "'");
    e.port = static_cast<uint16_t>(std::stoul(value));
  } else {
    fail(line, "unknown key '" + std::string(key) + "' (expected address and port)");
  }
}

AllowlistEntry complete(const PartialEntry& e, size_t line) {
  if (!e.address) fail(line, "entry without 'address'");
  if (!e.port) fail(line, "entry without 'port'");
  return {*e.address, *e.port};
}

// "{address: x, port: 443}"
AllowlistEntry flow_entry(std::string_view v, size_t line) {
  if (v.back() != '}') fail(line, "flow mapping must end with '}'");
  v = v.substr(1, v.size() - 2);
  PartialEntry e;
  while (!v.empty()) {
    size_t comma = v.find(',');
    set_key(e, trim(v.substr(0, comma)), line);
    if (comma == std::string_view::npos) break;
    v = v.substr(comma + 1);
    if (trim(v).empty()) fail(line, "trailing ',' in flow mapping");
  }
  return complete(e, line);
}

std::set<std::string> resolve_all(const std::string& host, uint16_t port) {
  std::set<std::string> out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    char buf[NI_MAXHOST];
    if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0) out.insert(buf);
  }
  ::freeaddrinfo(res);
  return out;
}


}  // namespace

Allowlist Allowlist::parse(std::string_view yaml) {
  Allowlist out;
  bool header = false, empty_list = false;
  size_t item_indent = std::string_view::npos;
  PartialEntry block;  // the block-style entry being read, when in_block
  bool in_block = false;
  size_t block_line = 0;
  size_t line_no = 0;
  auto flush_block = [&] {
    if (in_block) out.entries_.push_back(complete(block, block_line));
    in_block = false;
  };
  while (!yaml.empty()) {
    size_t nl = yaml.find('\n');
    std::string_view raw = yaml.substr(0, nl);
    yaml = nl == std::string_view::npos ? std::string_view() : yaml.substr(nl + 1);
    ++line_no;
    std::string_view text = strip_comment(raw);
    if (trim(text).empty()) continue;
    size_t indent = indent_of(text);
    if (indent == std::string_view::npos) fail(line_no, "tabs are not allowed for indentation");
    std::string_view body = trim(text);
    if (!header) {
      if (indent != 0) fail(line_no, "expected 'allowlist:' at the start of the line");
      if (body == "allowlist: []") empty_list = true;
      else if (body != "allowlist:") fail(line_no, "expected 'allowlist:', got '" + std::string(body) + "'");
      header = true;
      continue;
    }
    if (empty_list) fail(line_no, "unexpected content after 'allowlist: []'");
    if (body.starts_with("- ") || body == "-") {
      if (item_indent == std::string_view::npos) item_indent = indent;
      if (indent != item_indent) fail(line_no, "list items must all have the same indentation");
      flush_block();
      std::string_view item = trim(body.substr(1));
      if (item.empty()) fail(line_no, "empty list item");
      if (item.front() == '{') {
        out.entries_.push_back(flow_entry(item, line_no));
      } else {
        block = PartialEntry{};
        in_block = true;
        block_line = line_no;
        set_key(block, item, line_no);
      }
      continue;
    }
    if (in_block && indent > item_indent) {
      set_key(block, body, line_no);
      continue;
    }
    fail(line_no, "expected a list item '- {address: HOST, port: N}', got '" + std::string(body) + "'");
  }
  flush_block();
  if (!header) throw Error(Errc::kFormat, "allowlist: no 'allowlist:' key (empty file?)");
  return out;
}

Allowlist Allowlist::load(const std::string& path) {
  std::string text = read_text_file(path);
  try {
    return parse(text);
  } catch (const Error& e) {
    // A malformed file is the operator's configuration mistake: a usage error (exit 2), not a refusal.
    throw Error(e.code() == Errc::kFormat ? Errc::kUsage : e.code(), path + ": " + e.what());
  }
}

bool Allowlist::allows(const std::string& host, uint16_t port, bool resolve) const {
  for (const auto& e : entries_)
    if (e.port == port && iequals(e.address, host)) return true;
  if (!resolve) return false;
  std::set<std::string> target = resolve_all(host, port);
  if (target.empty()) return false;
  for (const auto& e : entries_) {
    if (e.port != port) continue;
    for (const auto& ip : resolve_all(e.address, e.port))
      if (target.count(ip)) return true;
  }
  return false;
}

}  // namespace shield_nitro::net
