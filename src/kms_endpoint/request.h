// Internal: decoding the app's JSON body for the five operations the endpoint makes attested
// (a pure function over untrusted input: fuzz/kms_endpoint_request.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/kms/client.h"

namespace shield_nitro::kms_endpoint::detail {

// Decrypt, GenerateDataKey, GenerateDataKeyPair, DeriveSharedSecret, GenerateRandom.
bool is_attested(const std::string& op);

// What the typed client needs for one attested call.
struct AttestedRequest {
  std::string op;
  std::string key_id;
  Bytes blob;                   // Decrypt: CiphertextBlob; DeriveSharedSecret: PublicKey
  kms::EncryptionContext context;
  int number_of_bytes = 0;      // GenerateDataKey (from KeySpec or NumberOfBytes), GenerateRandom
  std::string spec;             // GenerateDataKeyPair: KeyPairSpec; DeriveSharedSecret: KeyAgreementAlgorithm
};

// Decodes body (a JSON object) for op (is_attested). Refuses, with KMS's error types (KmsError):
// wrong JSON types and bad base64 (SerializationException), missing or out-of-range members and
// members the typed client cannot carry, e.g. GrantTokens or DryRun (ValidationException:
// refused, never dropped).
AttestedRequest parse_attested_request(const std::string& op, const nlohmann::json& body);

}  // namespace shield_nitro::kms_endpoint::detail
