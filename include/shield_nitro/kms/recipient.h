// The two seams between KMS and attestation, kept as small interfaces so the KMS code does
// not depend on how documents are produced (NSM device, simulator) or verified (attest).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::kms {

// Client side: produces a fresh attestation document (COSE_Sign1 bytes) whose public_key is
// the given DER SubjectPublicKeyInfo. Implemented over the NSM device or the simulator.
class AttestationSource {
 public:
  virtual ~AttestationSource() = default;
  // A new document for public_key_der; Error (e.g. NsmError, kIo) when the NSM refuses or is gone.
  virtual Bytes attestation_document(ByteView public_key_der) = 0;
};

// Server side (kms-local): what a verified document says.
struct VerifiedRecipient {
  std::map<int, Bytes> pcrs;  // index -> value (48 bytes for SHA-384)
  Bytes public_key;           // DER SubjectPublicKeyInfo from the document
  std::string module_id;
};

// Verifies a document against trusted roots at the current time; throws shield_nitro::Error
// (kVerify, kExpired, kFormat...) when it does not verify.
using RecipientVerifier = std::function<VerifiedRecipient(ByteView document)>;

}  // namespace shield_nitro::kms
