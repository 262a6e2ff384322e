#include "shield_nitro/relay/proxy_request.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace shield_nitro::relay {
namespace {

bool is_token_char(char c) {
  // c != 0: strchr finds the terminator, which would make NUL a token character.
  return std::isalnum(static_cast<unsigned char>(c)) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

char lower_char(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower_char(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return lower_char(x) == lower_char(y);
         });
}

// A DNS name (letters, digits, '-', '_', dots; labels of 1-63) or an IPv4 literal.
bool valid_name(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t label = 0;
  for (char c : h) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return label > 0;
}

bool valid_ipv6(const std::string& h) {
  in6_addr a{};
  return h.size() <= 45 && ::inet_pton(AF_INET6, h.c_str(), &a) == 1;
}

bool parse_port(std::string_view s, uint16_t& port) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v == 0 || v > 65535) return false;
  port = static_cast<uint16_t>(v);
  return true;
}

// host[:port] / [v6][:port]; default_port 0 means the port is required.
bool parse_authority(std::string_view text, uint16_t default_port, std::string& host, uint16_t& port) {
  std::string_view h, p;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return false;
    h = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      p = rest.substr(1);
      has_port = true;
    }
    host = lower(h);
    if (!valid_ipv6(host)) return false;
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string_view::npos) {
      h = text.substr(0, colon);
      p = text.substr(colon + 1);
      has_port = true;
    } else {
      h = text;
    }
    host = lower(h);
    if (!valid_name(host)) return false;
  }
  if (!has_port) {
    if (default_port == 0) return false;
    port = default_port;
    return true;
  }
  return parse_port(p, port);
}

ProxyParse refuse(int status, std::string why) {
  ProxyParse r;
  r.status = ProxyParse::Status::kRefused;
  r.http_status = status;
  r.why = std::move(why);
  return r;
}

// Visible ASCII only: no spaces, controls or bytes past 0x7e in a request target.
bool visible(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

}  // namespace

std::string format_authority(const std::string& host, uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string ProxyRequest::authority() const { return format_authority(host, port); }

bool split_authority(std::string_view text, std::string& host, uint16_t& port) {
  return parse_authority(text, 0, host, port);
}

ProxyParse parse_proxy_request(std::string_view buffer, const ProxyLimits& limits) {
  // Garbage is refused as soon as it shows, not after max_head_bytes of it: the first byte must
  // start a method, and every line break must be CRLF.
  if (!buffer.empty() && !is_token_char(buffer.front())) return refuse(400, "not an HTTP request");
  auto end = buffer.find("\r\n\r\n");
  std::string_view seen = buffer.substr(0, end == std::string_view::npos ? buffer.size() : end + 4);
  for (size_t i = seen.find('\n'); i != std::string_view::npos; i = seen.find('\n', i + 1))
    if (i == 0 || seen[i - 1] != '\r') return refuse(400, "bare LF in the request head");
  if (end == std::string_view::npos) {
    if (buffer.size() > limits.max_head_bytes)
      return refuse(431, "request head exceeds " + std::to_string(limits.max_head_bytes) + " bytes");
    return {};
  }
  if (end + 4 > limits.max_head_bytes)
    return refuse(431, "request head exceeds " + std::to_string(limits.max_head_bytes) + " bytes");

  ProxyRequest req;
  req.head_size = end + 4;
  std::string_view head = buffer.substr(0, end);
  auto eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);

  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return refuse(400, "malformed request line");
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char)) return refuse(400, "malformed method");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    if (version.substr(0, 5) == "HTTP/") return refuse(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    return refuse(400, "malformed HTTP version");
  }
  if (target.empty() || !visible(target)) return refuse(400, "malformed request target");
  req.method = std::string(method);
  req.version = std::string(version);

  if (method == "CONNECT") {
    req.kind = ProxyRequest::Kind::kConnect;
    if (!parse_authority(target, 0, req.host, req.port)) return refuse(400, "CONNECT needs a HOST:PORT target");
  } else {
    req.kind = ProxyRequest::Kind::kForward;
    constexpr std::string_view kHttp = "http://";
    if (target.size() >= 8 && iequals(target.substr(0, 8), "https://"))
      return refuse(400, "https:// URLs go through CONNECT, not as a plain request");
    if (target.size() < kHttp.size() || !iequals(target.substr(0, kHttp.size()), kHttp)) {
      if (target.front() == '/') return refuse(400, "this is a proxy: send an absolute http:// URL or CONNECT");
      return refuse(400, "malformed request target");
    }
    std::string_view rest = target.substr(kHttp.size());
    size_t path_at = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, path_at);
    if (authority.find('@') != std::string_view::npos) return refuse(400, "credentials in the URL are not forwarded");
    if (!parse_authority(authority, 80, req.host, req.port)) return refuse(400, "malformed host in the URL");
    std::string_view path = path_at == std::string_view::npos ? std::string_view() : rest.substr(path_at);
    if (path.find('#') != std::string_view::npos) return refuse(400, "a fragment in the request target");
    req.target = path.empty() || path.front() != '/' ? "/" + std::string(path) : std::string(path);
  }

  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  bool has_te = false, has_cl = false;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    std::string_view h = head.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    pos = next == std::string_view::npos ? head.size() : next + 2;
    if (h.empty()) return refuse(400, "empty header line");
    if (h.front() == ' ' || h.front() == '\t') return refuse(400, "obsolete header folding");
    auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return refuse(400, "malformed header line");
    std::string_view name = h.substr(0, colon), value = h.substr(colon + 1);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) return refuse(400, "malformed header name");
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return refuse(400, "control character in a header");
    if (req.headers.size() >= limits.max_headers)
      return refuse(431, "more than " + std::to_string(limits.max_headers) + " header lines");
    has_te |= iequals(name, "transfer-encoding");
    has_cl |= iequals(name, "content-length");
    req.headers.emplace_back(std::string(name), std::string(value));
  }
  // Both framings at once is how requests get smuggled past a proxy: refused (RFC 9112 §6.3).
  if (has_te && has_cl) return refuse(400, "both Transfer-Encoding and Content-Length");

  ProxyParse ok;
  ok.status = ProxyParse::Status::kOk;
  ok.request = std::move(req);
  return ok;
}

std::string origin_form_head(const ProxyRequest& r) {
  std::string host = r.host.find(':') != std::string::npos ? "[" + r.host + "]" : r.host;
  if (r.port != 80) host += ":" + std::to_string(r.port);
  std::string out = r.method + " " + r.target + " " + r.version + "\r\nHost: " + host + "\r\n";
  for (const auto& [k, v] : r.headers) {
    if (iequals(k, "host") || iequals(k, "proxy-connection") || iequals(k, "proxy-authorization") ||
        iequals(k, "connection") || iequals(k, "keep-alive"))
      continue;
    out += k + ": " + v + "\r\n";
  }
  return out + "Connection: close\r\n\r\n";
}

}  // namespace shield_nitro::relay
