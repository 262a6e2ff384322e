// KMS key policy generator for attestation-gated keys.
//
// The generated policy lets the enclave's role use Decrypt / GenerateDataKey / GenerateRandom
// only with a Recipient attestation whose measurements match (StringEqualsIgnoreCase on
// kms:RecipientAttestation:ImageSha384 and :PCRn), and explicitly denies those actions to the
// role when no attestation is present (Null on ImageSha384): without that Deny, a stolen role
// could decrypt outside the enclave through IAM grants (aws-nitro-enclaves-sdk-c #100).
#pragma once

#include <map>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::kms {

struct KeyPolicyRequest {
  std::map<int, Bytes> pcrs;  // index -> 48-byte SHA-384 value
  std::string role_arn;       // the enclave parent's role
  std::string admin_arn;      // empty: the account root
  std::string producer_arn;   // optional: may Encrypt / GenerateDataKey[WithoutPlaintext] (seal)
  std::string account;        // empty: taken from role_arn
  bool signed_by_pcr8 = false;  // pin PCR8 (signing cert) instead of PCR0, to survive rebuilds
  // Pairs the role's context-bearing operations (Decrypt, GenerateDataKey, GenerateDataKeyPair)
  // must carry: StringEquals on kms:EncryptionContext:K (docs/threat-model.md, key substitution).
  std::map<std::string, std::string> encryption_context;
};

// The key policy document as compact JSON text (statements: admin, the attested role's use,
// the Deny without attestation, and the producer's when producer_arn is set), ready for
// PutKeyPolicy. Throws Error(kUsage) for a malformed ARN, a PCR that is not 48 bytes, a
// missing PCR0 (or PCR8 with signed_by_pcr8), and Error(kPolicy) for an all-zero
// (debug-mode) PCR.
std::string generate_key_policy(const KeyPolicyRequest& request);

// Parses "N=HEX" PCR arguments, validating 96 hex characters.
std::pair<int, Bytes> parse_pcr_argument(const std::string& arg);

// "arn:aws:iam::111122223333:role/x" -> "111122223333"; kUsage when not an IAM ARN.
std::string account_of_arn(const std::string& arn);

}  // namespace shield_nitro::kms
