// How the enclave turns a wrapped data key into the data key: KMS Decrypt with a Recipient
// attestation document (kms_releaser.h), or a stand-in in tests.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::enclave {

// AWS credentials pushed by the parent (the enclave has no other source).
struct PushedCredentials {
  std::string access_key_id;
  SecureBytes secret_access_key;
  SecureBytes session_token;        // empty when none
  std::optional<int64_t> expiration;  // Unix seconds
};

struct ReleaseRequest {
  Bytes ciphertext_blob;
  std::string key_id;  // may be empty: KMS reads it from the blob
  std::map<std::string, std::string> encryption_context;
};

struct ReleasedKey {
  SecureBytes plaintext;
  std::string key_arn;  // the key KMS used
};

// Turns a wrapped data key into the key; implementations are called from many request
// threads at once and must be thread-safe.
class KeyReleaser {
 public:
  virtual ~KeyReleaser() = default;
  // Throws Error: kPolicy for AccessDenied, kRemote for other KMS errors (with status,
  // __type and message), kEnvironment when credentials are missing or expired.
  virtual ReleasedKey release(const ReleaseRequest& request, const PushedCredentials& credentials) = 0;
};

}  // namespace shield_nitro::enclave
