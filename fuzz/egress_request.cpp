// Fuzzes the enclave egress proxy's request-head parser (relay/proxy_request.h): what an app
// sends to HTTPS_PROXY / HTTP_PROXY. Every input must give "need more", a request, or a refusal
// with a 4xx/5xx status, never a crash or an escaping exception; a parsed request must be
// self-consistent (head inside the input, an authority that splits back to itself, an
// origin-form head that parses again to the same destination).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "shield_nitro/relay/proxy_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro::relay;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string host;
  uint16_t port = 0;
  if (split_authority(text.substr(0, 300), host, port) && (port == 0 || host.empty())) __builtin_trap();

  ProxyLimits limits;
  limits.max_head_bytes = 4096;
  limits.max_headers = 32;
  ProxyParse p = parse_proxy_request(text, limits);
  if (p.status == ProxyParse::Status::kRefused) {
    if (p.http_status < 400 || p.http_status > 599 || p.why.empty()) __builtin_trap();
    return 0;
  }
  if (p.status == ProxyParse::Status::kNeedMore) {
    if (size > limits.max_head_bytes) __builtin_trap();
    return 0;
  }
  const ProxyRequest& r = p.request;
  if (r.head_size == 0 || r.head_size > size || r.head_size > limits.max_head_bytes) __builtin_trap();
  if (r.host.empty() || r.port == 0) __builtin_trap();
  if (!split_authority(r.authority(), host, port) || host != r.host || port != r.port) __builtin_trap();
  if (r.kind == ProxyRequest::Kind::kForward) {
    if (r.target.empty() || r.target[0] != '/') __builtin_trap();
    // Upstream sees origin-form; re-read as a proxy request after restoring the absolute URL.
    std::string head = origin_form_head(r);
    std::string again = r.method + " http://" + r.authority() + head.substr(head.find(' ') + 1);
    ProxyLimits roomy;
    roomy.max_head_bytes = again.size() + 1;
    roomy.max_headers = r.headers.size() + 2;
    ProxyParse q = parse_proxy_request(again, roomy);
    if (q.status != ProxyParse::Status::kOk || q.request.host != r.host || q.request.port != r.port ||
        q.request.target != r.target)
      __builtin_trap();
  }
  return 0;
}
