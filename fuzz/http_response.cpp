// Fuzzes the KMS client's HTTP/1.1 response parser (what KMS, IMDS or anything behind the
// parent's proxy answers the enclave): it must return kNeedMore, kComplete with consumed within
// the input, or Error(kFormat); never crash, hang or read past the buffer. The first byte picks
// whether the connection has ended. A complete answer parsed again from its own bytes must give
// the same result.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shield_nitro/core/error.h"
#include "shield_nitro/kms/http_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  using namespace shield_nitro::kms;
  if (size == 0) return 0;
  bool at_eof = data[0] & 1;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  HttpResponseLimits limits{4096, 8192};
  HttpResponse r;
  size_t used = 0;
  try {
    if (parse_http_response(text, at_eof, limits, r, used) != HttpResponseParse::kComplete) return 0;
  } catch (const Error& e) {
    if (e.code() != Errc::kFormat) __builtin_trap();
    return 0;
  }
  if (used == 0 || used > text.size() || r.body.size() > limits.max_body_bytes || r.status < 200 || r.status > 999) __builtin_trap();
  HttpResponse again;
  size_t used_again = 0;
  if (parse_http_response(text.substr(0, used), true, limits, again, used_again) != HttpResponseParse::kComplete ||
      used_again != used || again.body != r.body || again.headers != r.headers || again.status != r.status)
    __builtin_trap();
  return 0;
}
