#include "shield_nitro/host_link/host_link.h"

#include <poll.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/net/endpoint.h"

namespace shield_nitro::host_link {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

int poll_ms(steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

// Wait for fd to be readable/writable until deadline; false when the time is up.
bool wait_fd(int fd, short events, steady_clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int ms = poll_ms(deadline);
    int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) throw Error(Errc::kIo, std::string("poll failed: ") + std::strerror(errno));
  }
}

// A parsed line: an object of scalars, no key twice. nlohmann keeps the last of duplicate keys
// silently, so they are caught while parsing.
json parse_object(std::string_view line, std::string_view what) {
  if (line.size() >= kMaxLineBytes)
    throw Error(Errc::kFormat, std::string(what) + ": line of " + std::to_string(line.size()) + " bytes is over the " +
                                   std::to_string(kMaxLineBytes) + "-byte limit");
  std::vector<std::set<std::string>> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      seen.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!seen.empty()) seen.pop_back();
    } else if (ev == json::parse_event_t::key && !seen.empty()) {
      if (!seen.back().insert(parsed.get<std::string>()).second && duplicate.empty()) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json j = json::parse(line.begin(), line.end(), cb, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(Errc::kFormat, std::string(what) + ": not one JSON object");
  if (!j.is_object()) throw Error(Errc::kFormat, std::string(what) + ": not a JSON object");
  if (!duplicate.empty()) throw Error(Errc::kFormat, std::string(what) + ": member '" + duplicate + "' appears twice");
  for (const auto& [k, v] : j.items())
    if (v.is_object() || v.is_array())
      throw Error(Errc::kFormat, std::string(what) + ": member '" + k + "' is not a plain value");
  return j;
}

// Every member of j must be in `allowed`.
void only_members(const json& j, std::initializer_list<const char*> allowed, std::string_view what) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    bool ok = std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; });
    if (!ok) throw Error(Errc::kFormat, std::string(what) + ": unexpected member '" + k + "'");
  }
}

const std::string& need_string(const json& j, const char* key, std::string_view what) {
  auto it = j.find(key);
  if (it == j.end()) throw Error(Errc::kFormat, std::string(what) + ": missing '" + key + "'");
  if (!it->is_string()) throw Error(Errc::kFormat, std::string(what) + ": '" + key + "' is not a string");
  return it->get_ref<const std::string&>();
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::string printable(std::string_view s, size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Zeroes every string value of a parsed object (the JSON copy of secrets).
void wipe_json_strings(json& j) {
  for (auto& [k, v] : j.items())
    if (v.is_string()) kms::wipe_string(v.get_ref<std::string&>());
}

// Appends s as a JSON string (quotes included) to out without allocating elsewhere: for secrets.
void append_json_string(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out += "\\u00";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "YYYY-MM-DDTHH:MM:SS[.fraction]Z", exactly.
bool is_rfc3339_utc(std::string_view s) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  if (s.size() < kShape.size() + 1 || s.size() > 40 || s.back() != 'Z') return false;
  for (size_t i = 0; i < kShape.size(); ++i)
    if (kShape[i] == 'd' ? !is_digit(s[i]) : s[i] != kShape[i]) return false;
  std::string_view rest = s.substr(kShape.size(), s.size() - kShape.size() - 1);
  if (rest.empty()) return true;
  if (rest.size() < 2 || rest[0] != '.') return false;
  return std::all_of(rest.begin() + 1, rest.end(), is_digit);
}

bool is_lower_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); });
}

// The {"ok":false} branch shared by every answer parser: throws kPolicy with the host's reason.
void refuse_if_not_ok(const json& j, Op op, std::string_view what) {
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) throw Error(Errc::kFormat, std::string(what) + ": missing boolean 'ok'");
  if (ok->get<bool>()) return;
  only_members(j, {"ok", "error"}, what);
  const std::string& why = need_string(j, "error", what);
  if (why.empty()) throw Error(Errc::kFormat, std::string(what) + ": empty 'error'");
  throw Error(Errc::kPolicy, std::string("host agent refused ") + op_name(op) + ": " + printable(why, kMaxErrorBytes));
}

std::string answer_what(Op op) { return std::string("host agent's ") + op_name(op) + " answer"; }

}  // namespace

// ---- framing ----

std::string read_line(int fd, milliseconds timeout, std::string_view what, size_t max_bytes) {
  auto deadline = steady_clock::now() + timeout;
  std::string out;
  out.reserve(max_bytes);  // no reallocation: a credentials line leaves no stray copies
  std::vector<char> buf(max_bytes);
  struct Wipe {
    std::vector<char>& b;
    ~Wipe() { OPENSSL_cleanse(b.data(), b.size()); }
  } wipe{buf};
  for (;;) {
    if (!wait_fd(fd, POLLIN, deadline))
      throw Error(Errc::kTimeout, std::string(what) + " sent no complete line within " + std::to_string(timeout.count()) + " ms");
    // Peek first, then take only up to the '\n': what follows it (artifact bytes, relayed
    // traffic) stays in the socket for the caller.
    ssize_t n = ::recv(fd, buf.data(), max_bytes - out.size(), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      throw Error(Errc::kIo, std::string("reading from ") + std::string(what) + " failed: " + std::strerror(errno));
    }
    if (n == 0)
      throw Error(Errc::kIo, std::string(what) + (out.empty() ? " closed the connection without a line"
                                                               : " closed the connection in the middle of a line"));
    const char* nl = static_cast<const char*>(std::memchr(buf.data(), '\n', static_cast<size_t>(n)));
    size_t take = nl ? static_cast<size_t>(nl - buf.data()) + 1 : static_cast<size_t>(n);
    size_t got = 0;
    while (got < take) {
      ssize_t r = ::recv(fd, buf.data() + got, take - got, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw Error(Errc::kIo, std::string("reading from ") + std::string(what) + " failed");
      got += static_cast<size_t>(r);
    }
    out.append(buf.data(), nl ? take - 1 : take);
    if (nl) return out;
    if (out.size() >= max_bytes) {
      kms::wipe_string(out);
      throw Error(Errc::kFormat, std::string(what) + " sent a line longer than " + std::to_string(max_bytes) + " bytes");
    }
  }
}

void write_all(int fd, const uint8_t* data, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = ::send(fd, data + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Error(Errc::kIo, std::string("write to the host link failed: ") + std::strerror(errno));
    off += static_cast<size_t>(w);
  }
}

void write_line(int fd, std::string_view line, milliseconds timeout) {
  if (line.size() > kMaxLineBytes - 1)
    throw Error(Errc::kUsage, "host-link line of " + std::to_string(line.size()) + " bytes is over the limit");
  if (line.find('\n') != std::string_view::npos) throw Error(Errc::kUsage, "host-link line holds a newline");
  auto deadline = steady_clock::now() + timeout;
  for (int part = 0; part < 2; ++part) {
    std::string_view data = part == 0 ? line : std::string_view("\n");
    size_t off = 0;
    while (off < data.size()) {
      ssize_t w = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT | (part == 0 ? MSG_MORE : 0));
      if (w > 0) {
        off += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait_fd(fd, POLLOUT, deadline))
          throw Error(Errc::kTimeout, "the peer took no line within " + std::to_string(timeout.count()) + " ms");
        continue;
      }
      throw Error(Errc::kIo, std::string("write to the host link failed: ") + std::strerror(errno));
    }
  }
}

// ---- requests ----

const char* op_name(Op op) {
  switch (op) {
    case Op::kCredentials: return "credentials";
    case Op::kArtifact: return "artifact";
    case Op::kLogs: return "logs";
    case Op::kConnect: return "connect";
  }
  return "?";
}

std::pair<std::string, uint16_t> parse_target(std::string_view target) {
  auto bad = [&](const std::string& why) {
    return Error(Errc::kFormat, "target '" + printable(target, 300) + "': " + why);
  };
  size_t colon = target.rfind(':');
  if (colon == std::string_view::npos) throw bad("expected HOST:PORT");
  std::string_view host = target.substr(0, colon), port = target.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit) || (port.size() > 1 && port[0] == '0'))
    throw bad("the port is not a decimal number");
  unsigned long p = std::stoul(std::string(port));
  if (p == 0 || p > 65535) throw bad("the port is out of range (1-65535)");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    bool v6 = !host.empty() && host.find(':') != std::string_view::npos &&
              std::all_of(host.begin(), host.end(), [](char c) {
                return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
              });
    if (!v6) throw bad("malformed IPv6 literal");
  } else {
    bool name = !host.empty() && host.size() <= 253 && std::all_of(host.begin(), host.end(), [](char c) {
      return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '_';
    });
    if (!name) throw bad("the host is not a DNS name or IPv4 address");
  }
  return {std::string(host), static_cast<uint16_t>(p)};
}

std::string format_request(const Request& r) {
  json j = {{"op", op_name(r.op)}};
  if (r.op == Op::kArtifact) j["name"] = r.name;
  if (r.op == Op::kConnect)
    j["target"] = (r.host.find(':') != std::string::npos ? "[" + r.host + "]" : r.host) + ":" + std::to_string(r.port);
  return dump(j);
}

Request parse_request(std::string_view line) {
  static constexpr std::string_view kWhat = "host-link request";
  json j = parse_object(line, kWhat);
  const std::string& op = need_string(j, "op", kWhat);
  Request r;
  if (op == "credentials") {
    r.op = Op::kCredentials;
    only_members(j, {"op"}, kWhat);
  } else if (op == "logs") {
    r.op = Op::kLogs;
    only_members(j, {"op"}, kWhat);
  } else if (op == "artifact") {
    r.op = Op::kArtifact;
    only_members(j, {"op", "name"}, kWhat);
    r.name = need_string(j, "name", kWhat);
    if (r.name.empty() || r.name.size() > 128 || has_control(r.name))
      throw Error(Errc::kFormat, "host-link request: 'name' is empty, too long or holds control characters");
  } else if (op == "connect") {
    r.op = Op::kConnect;
    only_members(j, {"op", "target"}, kWhat);
    std::tie(r.host, r.port) = parse_target(need_string(j, "target", kWhat));
  } else {
    throw Error(Errc::kFormat, "host-link request: unknown op '" + printable(op, 64) + "'");
  }
  return r;
}

// ---- answers ----

std::string answer_ok() { return R"({"ok":true})"; }

std::string answer_error(std::string_view why) {
  std::string text = printable(why, kMaxErrorBytes);
  if (text.empty()) text = "refused";
  return dump(json{{"ok", false}, {"error", text}});
}

std::string answer_artifact(const ArtifactAnswer& a) {
  if (a.sha256.empty() == a.header_sha256.empty())
    throw Error(Errc::kUsage, "host link: an artifact answer announces exactly one of sha256 and header_sha256");
  if (!a.sha256.empty()) return dump(json{{"ok", true}, {"size", a.size}, {"sha256", a.sha256}});
  return dump(json{{"ok", true}, {"size", a.size}, {"header_sha256", a.header_sha256}});
}

void write_credentials_answer(int fd, const kms::Credentials& creds, milliseconds timeout) {
  if (creds.expiration_s <= 0) throw Error(Errc::kUsage, "host link: credentials without an expiration");
  std::string line;
  line.reserve(kMaxLineBytes * 2);  // one buffer, no reallocation: wiped as a whole below
  auto secret = [](const SecureBytes& b) {
    return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
  };
  line += R"({"ok":true,"AccessKeyId":)";
  append_json_string(line, creds.access_key_id);
  line += R"(,"SecretAccessKey":)";
  append_json_string(line, secret(creds.secret_access_key));
  line += R"(,"Token":)";
  append_json_string(line, secret(creds.session_token));
  line += R"(,"Expiration":")" + format_utc(creds.expiration_s, "%Y-%m-%dT%H:%M:%SZ") + "\"}";
  try {
    if (line.size() > kMaxLineBytes - 1)
      throw Error(Errc::kUsage, "host link: the credentials do not fit one " + std::to_string(kMaxLineBytes) + "-byte line");
    write_line(fd, line, timeout);
  } catch (...) {
    kms::wipe_string(line);
    throw;
  }
  kms::wipe_string(line);
}

void parse_ok_answer(std::string_view line, Op op) {
  std::string what = answer_what(op);
  json j = parse_object(line, what);
  refuse_if_not_ok(j, op, what);
  only_members(j, {"ok"}, what);
}

ArtifactAnswer parse_artifact_answer(std::string_view line) {
  std::string what = answer_what(Op::kArtifact);
  json j = parse_object(line, what);
  refuse_if_not_ok(j, Op::kArtifact, what);
  only_members(j, {"ok", "size", "sha256", "header_sha256"}, what);
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_unsigned())
    throw Error(Errc::kFormat, what + ": 'size' is missing or not a non-negative integer");
  const bool header = j.contains("header_sha256");
  if (header == j.contains("sha256"))
    throw Error(Errc::kFormat, what + ": expected exactly one of 'sha256' and 'header_sha256'");
  const char* key = header ? "header_sha256" : "sha256";
  ArtifactAnswer a{size->get<uint64_t>(), {}, {}};
  (header ? a.header_sha256 : a.sha256) = need_string(j, key, what);
  if (!is_lower_hex64(header ? a.header_sha256 : a.sha256))
    throw Error(Errc::kFormat, what + ": '" + key + "' is not 64 lowercase hex digits");
  return a;
}

kms::Credentials parse_credentials_answer(std::string_view line, const Clock& clock) {
  std::string what = answer_what(Op::kCredentials);
  json j = parse_object(line, what);
  struct WipeJson {
    json& j;
    ~WipeJson() { wipe_json_strings(j); }
  } wipe{j};
  refuse_if_not_ok(j, Op::kCredentials, what);
  only_members(j, {"ok", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}, what);
  const std::string& akid = need_string(j, "AccessKeyId", what);
  const std::string& secret = need_string(j, "SecretAccessKey", what);
  const std::string& expiration = need_string(j, "Expiration", what);
  if (akid.empty() || akid.size() > 128 || has_control(akid))
    throw Error(Errc::kFormat, what + ": 'AccessKeyId' is empty, too long or holds control characters");
  if (secret.empty()) throw Error(Errc::kFormat, what + ": 'SecretAccessKey' is empty");
  if (!is_rfc3339_utc(expiration)) throw Error(Errc::kFormat, what + ": 'Expiration' is not an RFC 3339 UTC time");
  kms::Credentials c;
  c.access_key_id = akid;
  c.secret_access_key = SecureBytes(as_bytes(secret));
  if (j.contains("Token")) c.session_token = SecureBytes(as_bytes(need_string(j, "Token", what)));
  c.expiration_s = kms::parse_iso8601_utc(expiration);
  c.source = "host agent";
  if (c.expiration_s <= clock.now_s())
    throw Error(Errc::kExpired, what + ": the credentials expired at " + expiration);
  return c;
}

// ---- log records ----

std::string format_log_time(int64_t unix_ms) {
  int64_t s = unix_ms / 1000, ms = unix_ms % 1000;
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms < 0 ? 0 : ms));
  return format_utc(s, "%Y-%m-%dT%H:%M:%S") + frac + "Z";
}

std::string format_log_record(const LogRecord& r) {
  json j = {{"time", r.time}, {"source", r.source}, {"stream", r.stream}, {"line", r.line}};
  if (!r.event.empty()) j["event"] = r.event;
  for (const auto& [k, v] : r.fields) {
    if (j.contains(k)) continue;  // a field never overrides a member of the record itself
    std::visit([&, key = k](const auto& x) { j[key] = x; }, v);
  }
  std::string out = dump(j);
  // Cut the text (never the structure) until the record fits one line.
  while (out.size() > kMaxLineBytes - 1) {
    std::string& text = j["line"].get_ref<std::string&>();
    size_t excess = out.size() - (kMaxLineBytes - 1);
    if (text.empty()) throw Error(Errc::kUsage, "log record: its fields alone do not fit one line");
    size_t keep = text.size() > excess + 8 ? text.size() - excess - 8 : 0;
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;  // whole UTF-8 characters
    text.resize(keep);
    out = dump(j);
  }
  return out;
}

LogRecord parse_log_record(std::string_view line) {
  static constexpr std::string_view kWhat = "log record";
  json j = parse_object(line, kWhat);
  LogRecord r;
  r.time = need_string(j, "time", kWhat);
  if (!is_rfc3339_utc(r.time)) throw Error(Errc::kFormat, "log record: 'time' is not an RFC 3339 UTC time");
  r.source = need_string(j, "source", kWhat);
  if (r.source != "app" && r.source != "supervisor")
    throw Error(Errc::kFormat, "log record: 'source' is neither app nor supervisor");
  r.stream = need_string(j, "stream", kWhat);
  if (r.stream != "stdout" && r.stream != "stderr" && r.stream != "event")
    throw Error(Errc::kFormat, "log record: 'stream' is not stdout, stderr or event");
  if (j.contains("line")) r.line = need_string(j, "line", kWhat);
  if (j.contains("event")) {
    r.event = need_string(j, "event", kWhat);
    if (r.event.empty() || r.event.size() > 64 || has_control(r.event))
      throw Error(Errc::kFormat, "log record: 'event' is empty, too long or holds control characters");
  }
  if ((r.stream == "event") != !r.event.empty())
    throw Error(Errc::kFormat, "log record: 'event' is required for stream event and only there");
  for (const auto& [k, v] : j.items()) {
    if (k == "time" || k == "source" || k == "stream" || k == "line" || k == "event") continue;
    if (r.event.empty()) throw Error(Errc::kFormat, "log record: unexpected member '" + printable(k, 64) + "'");
    if (v.is_number_integer())
      r.fields[k] = v.get<int64_t>();
    else if (v.is_string())
      r.fields[k] = v.get<std::string>();
    else
      throw Error(Errc::kFormat, "log record: event field '" + printable(k, 64) + "' is neither an integer nor a string");
  }
  return r;
}

// ---- the client ----

HostLink::HostLink(runtime::HostLinkConfig config, HostLinkOptions options, const Clock& clock)
    : config_(config), options_(options), clock_(clock) {}

std::string HostLink::describe() const { return net::Endpoint::vsock(config_.cid, config_.port).to_string(); }

UniqueFd HostLink::request(const Request& r, std::string& answer) {
  std::string where = "host agent at " + describe();
  UniqueFd fd;
  try {
    fd = net::connect(net::Endpoint::vsock(config_.cid, config_.port), options_.connect_timeout);
  } catch (const Error& e) {
    throw Error(Errc::kIo, where + " is unreachable: " + e.what());
  }
  try {
    write_line(fd.get(), format_request(r), options_.connect_timeout);
    answer = read_line(fd.get(), options_.answer_timeout, where);
  } catch (const Error& e) {
    if (e.code() == Errc::kFormat) throw;
    throw Error(Errc::kIo, std::string(op_name(r.op)) + " request: " + e.what());
  }
  return fd;
}

kms::Credentials HostLink::fetch_credentials() {
  std::string answer;
  request({.op = Op::kCredentials}, answer);
  struct Wipe {
    std::string& s;
    ~Wipe() { kms::wipe_string(s); }
  } wipe{answer};
  return parse_credentials_answer(answer, clock_);
}

HostLink::Artifact HostLink::open_artifact(const std::string& name) {
  std::string answer;
  UniqueFd fd = request({.op = Op::kArtifact, .name = name}, answer);
  ArtifactAnswer a = parse_artifact_answer(answer);
  return Artifact{std::move(fd), a.size, std::move(a.sha256), std::move(a.header_sha256)};
}

UniqueFd HostLink::open_logs() {
  std::string answer;
  UniqueFd fd = request({.op = Op::kLogs}, answer);
  parse_ok_answer(answer, Op::kLogs);
  return fd;
}

UniqueFd HostLink::connect(const std::string& host, uint16_t port) {
  std::string answer;
  UniqueFd fd = request({.op = Op::kConnect, .host = host, .port = port}, answer);
  parse_ok_answer(answer, Op::kConnect);
  return fd;
}

}  // namespace shield_nitro::host_link
