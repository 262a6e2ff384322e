// A human-readable summary of one X.509 certificate of an attestation chain, for display
// (`attest show`, verified claims). Names use RFC 2253-like "C=US, O=Amazon, CN=..." order.
#pragma once

#include <cstdint>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::attest {

struct CertificateSummary {
  std::string subject;
  std::string issuer;
  std::string serial_hex;
  int64_t not_before_s = 0;  // Unix seconds
  int64_t not_after_s = 0;
  std::string key_type;      // "EC P-384", "EC P-256", "RSA-2048", ...
  bool is_ca = false;
  std::string sha256_hex;    // SHA-256 of the DER
};

// Parses strict DER (no trailing bytes); throws Error(kFormat) otherwise.
CertificateSummary summarize_certificate(ByteView der);

// "2021-03-17T22:01:55Z" (seconds) or "2021-03-17T22:01:55.685Z" (milliseconds).
std::string format_utc_seconds(int64_t unix_s);
std::string format_utc_millis(int64_t unix_ms);

}  // namespace shield_nitro::attest
