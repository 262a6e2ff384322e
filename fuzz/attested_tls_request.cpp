// Fuzzes the enclave side of attested TLS (relay/attested_tls.h): what a remote client's first
// bytes are (classify_first_request, fed the input prefix by prefix as a trickling client would
// send it) and the attestation request line (parse_attestation_request). Neither may crash or
// throw; a 200 must carry a nonce of 1-512 bytes and a 400 a one-line reason; once a prefix is
// decided, longer ones stay decided the same way.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shield_nitro/relay/attested_tls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro::relay;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  FirstRequest decided = FirstRequest::kNeedMore;
  for (size_t n = 0; n <= in.size() && n <= 128; ++n) {
    FirstRequest k = classify_first_request(in.substr(0, n));
    if (decided != FirstRequest::kNeedMore && k != decided) __builtin_trap();
    decided = k;
  }
  AttestationRequest r = parse_attestation_request(in);
  if (r.status == 200 && (r.nonce.empty() || r.nonce.size() > 512 || !r.error.empty())) __builtin_trap();
  if (r.status != 200 && (r.status != 400 || r.error.empty() || r.error.find('\n') != std::string::npos)) __builtin_trap();
  return 0;
}
