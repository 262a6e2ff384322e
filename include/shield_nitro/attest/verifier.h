// attest::Verifier: the strict attestation-document verifier (attestation.md §5, §7).
//
//   attest::Verifier v(attest::TrustAnchor::aws());
//   attest::Claims c = v.verify(doc, policy);                 // live: checked at "now"
//   attest::Claims c = v.verify_at(doc, ts_ms, policy);      // stored document, explicit time
//
// verify() returns claims only when everything passed: envelope and payload structure,
// certificate chain to the one trust anchor at the check time, the COSE ES384 signature over
// the payload as received, timestamp inside the leaf's validity, then the policy. Otherwise
// it throws Error with the first reason: kFormat (malformed), kVerify (chain or signature),
// kExpired (outside a validity window or max age), kPolicy (refused by policy). Nothing
// partially verified is ever returned.
//
// Chain results are cached (SHA-256 of leaf + bundle -> verified leaf key and the chain's
// validity window), so documents from one instance cost about one ES384 verification each.
// A Verifier is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shield_nitro/attest/certificate.h"
#include "shield_nitro/attest/document.h"
#include "shield_nitro/attest/policy.h"
#include "shield_nitro/attest/trust_anchor.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::attest {

struct Claims {
  std::string module_id;
  uint64_t timestamp_ms = 0;
  std::string digest;
  std::map<uint32_t, Bytes> pcrs;
  OptionalBytes public_key;
  OptionalBytes user_data;
  OptionalBytes nonce;
  bool debug = false;               // PCR0 is 48 zero bytes (debug-mode enclave)
  CertificateSummary leaf;
  std::vector<CertificateSummary> cabundle;  // root first, as in the document
  int64_t checked_at_ms = 0;        // the verification time T
};

struct VerifierOptions {
  bool chain_cache = true;          // false: every document re-verifies its whole chain
  size_t cache_capacity = 1024;     // distinct chains kept
  const Clock* clock = nullptr;     // "now" for verify(); nullptr = the system clock
};

// Result of check(): claims when valid, else the first reason. Never both.
struct VerifyResult {
  std::optional<Claims> claims;
  std::optional<Error> error;
  // True when the document verified (claims set, error empty).
  bool ok() const { return claims.has_value(); }
};

class Verifier {
 public:
  explicit Verifier(TrustAnchor anchor, VerifierOptions options = {});
  ~Verifier();
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  // Live verification at the clock's now.
  Claims verify(ByteView doc, const Policy& policy = {}) const;
  // Verification at an explicit time (Unix ms), for stored or replayed documents. This
  // proves only that the document was valid at that time.
  Claims verify_at(ByteView doc, int64_t at_unix_ms, const Policy& policy = {}) const;
  // Same, reporting instead of throwing. at_unix_ms empty = now.
  VerifyResult check(ByteView doc, const Policy& policy, std::optional<int64_t> at_unix_ms) const;

  // The one root this verifier trusts.
  const TrustAnchor& anchor() const { return anchor_; }

  // Chain-cache counters since construction (all zero when the cache is off).
  struct CacheStats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    size_t entries = 0;
  };
  // A consistent snapshot; thread-safe.
  CacheStats cache_stats() const;

 private:
  TrustAnchor anchor_;
  VerifierOptions options_;
  struct Cache;  // the verified-chain cache, defined in src/attest
  std::unique_ptr<Cache> cache_;
};

}  // namespace shield_nitro::attest
