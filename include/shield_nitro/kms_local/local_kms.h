// kms-local: a KMS-compatible service for development and CI (the AWS CLI, botocore and the
// shield-nitro client talk to it with --endpoint-url).
//
// State lives in one folder: `credentials` (AWS shared-credentials format; each profile's
// principal_arn names the IAM principal its key stands for), `keys/<key-id>.json` (metadata,
// policy and the 256-bit key material, mode 0600) and `aliases/`. Every change is written
// atomically with fsync before the answer is sent, so an acknowledged key survives kill -9.
//
// Requests are SigV4-verified against the credentials file, authorised by the key policy
// (policy_eval.h), and answered exactly in KMS's JSON 1.1 shapes and error types. With a
// Recipient, the attestation document is verified (RecipientVerifier), its PCRs feed the
// kms:RecipientAttestation:* conditions, and the secret goes back only as
// CiphertextForRecipient enveloped to the document's public key.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/kms_local/http_server.h"
#include "shield_nitro/kms/recipient.h"

namespace shield_nitro::kms {

struct LocalKmsOptions {
  std::string state_dir;
  std::string account = "111122223333";
  std::string region = "us-east-1";
  RecipientVerifier verifier;  // empty: Recipient requests are refused
  const Clock* clock = nullptr;  // nullptr: system clock
};

// The service state of one folder; thread-safe.
class LocalKms {
 public:
  // Creates the state folder and credentials file on first start; loads keys and aliases.
  explicit LocalKms(LocalKmsOptions options);
  ~LocalKms();

  // Serves one HTTP request (thread-safe). Never throws.
  HttpServerResponse handle(const HttpServerRequest& request);

  // Dispatches an already-authenticated operation; throws KmsError. Exposed for tests.
  nlohmann::json dispatch(const std::string& operation, const nlohmann::json& body, const std::string& principal_arn);

  // STATE_DIR/credentials: the profiles clients sign with.
  std::string credentials_path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shield_nitro::kms
