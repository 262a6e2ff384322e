// Fuzzes net's HTTP/1.1 request parser (the server's, and the egress proxy's) on untrusted
// bytes: it must return kNeedMore, kComplete with consumed within the input, or an
// HttpParseError with a 4xx/5xx status; never crash, hang or read past the buffer. A complete
// request is parsed again from its own bytes and must give the same result.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shield_nitro/net/http_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro::net;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  HttpLimits limits{4096, 8192, 8192};
  HttpServerRequest req;
  size_t used = 0;
  try {
    if (parse_http_request(text, limits, req, used) != HttpParse::kComplete) return 0;
  } catch (const HttpParseError& e) {
    if (e.status < 400 || e.status > 599) __builtin_trap();
    return 0;
  }
  if (used == 0 || used > size) __builtin_trap();
  HttpServerRequest again;
  size_t used_again = 0;
  if (parse_http_request(text.substr(0, used), limits, again, used_again) != HttpParse::kComplete ||
      used_again != used || again.body != req.body || again.headers != req.headers || again.path != req.path)
    __builtin_trap();
  (void)find_header(req.headers, "content-length");
  return 0;
}
