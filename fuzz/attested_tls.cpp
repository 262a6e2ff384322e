// Fuzzes the attested-TLS client's parsers of untrusted bytes (parent/attested_tls.h): the
// answer to the attestation request, the peer's certificate (SPKI hash), the user_data key
// binding, and the target text. The first byte picks the parser. Any Error is a valid outcome;
// crashes, hangs and leaks are not, and a binding accepted must name the key it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/parent/attested_tls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  if (size == 0) return 0;
  ByteView in(data + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0:
        parent::parse_attestation_response(in);
        break;
      case 1:
        if (parent::spki_sha256_of_certificate(in).size() != 32) std::abort();
        break;
      case 2: {
        attest::OptionalBytes ud;
        ud.presence = attest::Presence::kBytes;
        ud.value.assign(in.begin(), in.end());
        Bytes key(32, 0xa5);
        Bytes app = parent::check_tls_binding(ud, key);
        if (std::memcmp(in.data() + 8, key.data(), 32) != 0 || app.size() + 40 != in.size()) std::abort();
        break;
      }
      default:
        parent::parse_tls_target(std::string_view(reinterpret_cast<const char*>(in.data()), in.size()));
    }
  } catch (const Error&) {
  }
  return 0;
}
