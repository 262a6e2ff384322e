// Internal: certificate chain verification of attestation.md §5 steps 4–6.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "shield_nitro/attest/certificate.h"
#include "shield_nitro/attest/trust_anchor.h"
#include "x509_util.h"

namespace shield_nitro::attest::detail {

// What a verified chain yields: the leaf's key (to check the COSE signature) and the window
// in which the whole chain, root included, is valid. Immutable, so safe to share and cache.
struct ChainResult {
  PkeyPtr leaf_key;
  int64_t valid_from_s = 0;   // latest notBefore of leaf, bundle and anchor
  int64_t valid_until_s = 0;  // earliest notAfter
  int64_t leaf_not_before_s = 0;
  int64_t leaf_not_after_s = 0;
  CertificateSummary leaf;
  std::vector<CertificateSummary> cabundle;
};

// Verifies leaf <- cabundle[n-1] <- ... <- cabundle[1] <- anchor at Unix time at_s.
// cabundle[0] must be byte-identical to the anchor; it is compared, never trusted.
// Throws Error: kFormat (not DER), kVerify (chain, profile, key), kExpired (validity).
std::shared_ptr<const ChainResult> verify_chain(const TrustAnchor& anchor, const Bytes& leaf,
                                                const std::vector<Bytes>& cabundle, int64_t at_s);

// Cache key: SHA-256 over the length-prefixed leaf and bundle certificates.
Bytes chain_key(const Bytes& leaf, const std::vector<Bytes>& cabundle);

}  // namespace shield_nitro::attest::detail
