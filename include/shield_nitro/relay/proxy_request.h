// The egress proxy's request-head parser: the first bytes an app inside the enclave sends to
// HTTPS_PROXY / HTTP_PROXY. Pure (no I/O), strict and fuzzed (fuzz/egress_request.cpp): it never
// reads past the buffer, and any input gets either "need more", a request, or an HTTP status to
// answer with a one-line reason. Nothing throws for bad input.
//
//   CONNECT api.example.com:443 HTTP/1.1          → kConnect, host "api.example.com", port 443
//   GET http://api.example.com/v1?q=1 HTTP/1.1     → kForward, port 80, target "/v1?q=1"
//
// (net/http_server.h's parser takes origin-form targets only, so the proxy forms are parsed here.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shield_nitro::relay {

struct ProxyRequest {
  enum class Kind {
    kConnect,  // CONNECT host:port: a tunnel (HTTPS)
    kForward,  // absolute-form plain HTTP: forwarded in origin-form
  };
  Kind kind = Kind::kConnect;
  std::string method;
  std::string host;    // lowercase; an IPv6 literal without its brackets
  uint16_t port = 0;
  std::string target;  // kForward: the origin-form target ("/path?query", at least "/")
  std::string version; // "HTTP/1.1" or "HTTP/1.0"
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, in order
  size_t head_size = 0;  // bytes of the head, through the blank line

  // format_authority(host, port), for log lines and the host link's "target".
  std::string authority() const;
};

struct ProxyParse {
  enum class Status {
    kNeedMore,  // no complete head yet, and nothing wrong so far
    kOk,        // `request` is set
    kRefused,   // answer `http_status` (400, 405, 431, 501, 505) with `why`, then close
  };
  Status status = Status::kNeedMore;
  ProxyRequest request;
  int http_status = 0;
  std::string why;  // one line, safe to log and to send (never echoes the input verbatim)
};

struct ProxyLimits {
  size_t max_head_bytes = 16 * 1024;  // the whole head; beyond: 431
  size_t max_headers = 100;           // header lines; beyond: 431
};

// Parses the request head at the front of buffer (see above).
ProxyParse parse_proxy_request(std::string_view buffer, const ProxyLimits& limits = {});

// The head sent upstream for a kForward request: origin-form request line, Host set from the
// URL, the proxy's hop-by-hop headers (Proxy-Connection, Proxy-Authorization, Connection,
// Keep-Alive) dropped and "Connection: close" added (one request per upstream connection, so a
// client's next absolute-form request never reaches the wrong host).
std::string origin_form_head(const ProxyRequest& request);

// "host:port", or "[v6]:port" for an IPv6 literal.
std::string format_authority(const std::string& host, uint16_t port);

// Splits "host:port" / "[v6]:port" as in a CONNECT target or the host link's "target": false when
// malformed (the host is checked as in parse_proxy_request: a DNS name or an IP literal).
bool split_authority(std::string_view text, std::string& host, uint16_t& port);

}  // namespace shield_nitro::relay
