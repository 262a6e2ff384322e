// Fuzzes attestation-document handling end to end: input sniffing (CBOR or base64), strict
// decoding, certificate summaries (`attest show`), and full verification against the pinned
// AWS root at a fixed time inside the window of the seed anjuna_prod_2021-03-17, so mutated
// seeds reach the chain and COSE checks. Any Error is a valid outcome; crashes, leaks and
// "verified" claims without a real chain are not.
#include <cstddef>
#include <cstdint>

#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/core/error.h"

namespace {
constexpr int64_t kAtMs = 1616020200000;  // 2021-03-17T22:30:00Z
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  static const attest::Verifier verifier(attest::TrustAnchor::aws(), {.chain_cache = false});
  attest::Policy policy;
  policy.allow_debug = true;
  try {
    Bytes doc = attest::document_bytes_from_text_or_binary({data, size});
    attest::Document d = attest::decode_document(doc);
    for (const Bytes& cert : d.cabundle) {
      try {
        attest::summarize_certificate(cert);
      } catch (const Error&) {
      }
    }
    attest::Claims c = verifier.verify_at(doc, kAtMs, policy);
    if (c.cabundle.empty() || c.leaf.key_type != "EC P-384") __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
