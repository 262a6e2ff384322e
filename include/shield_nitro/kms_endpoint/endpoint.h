// The attested KMS endpoint the supervisor serves to an unmodified app inside the enclave, on
// 127.0.0.1:<kms.api_port> (runtime/config.h), with the container-credentials endpoint on the
// same port. The app uses its stock AWS SDK:
//
//   KmsEndpoint endpoint({.port = 9100, .region = "us-east-1", .kms = kms_options,
//                         .role_credentials = pushed, .attestation = &nsm_source, .recipient_keys = &keys});
//   AppEnvironment env = endpoint.start();   // AWS_CONTAINER_CREDENTIALS_FULL_URI, ... for the app
//   ...
//   endpoint.stop();
//
// Credentials: GET /v1/credentials with `Authorization: <token>` (a random token per start,
// compared in constant time; none: 401, wrong: 403) answers {"AccessKeyId", "SecretAccessKey",
// "Token", "Expiration"} of LOCAL credentials minted by the endpoint: random, valid only against
// this endpoint, renewed when half their lifetime has passed. The role credentials never reach
// the app.
//
// KMS: POST / in KMS's JSON 1.1 protocol (X-Amz-Target: TrentService.<Op>). The app's SigV4
// signature is verified against the local credentials (unsigned, unknown key, wrong signature,
// expired: KMS's error types); the call is then made with the role credentials through the
// configured KmsClient (the parent's KMS proxy tunnel, TLS ending here). Decrypt,
// GenerateDataKey, GenerateDataKeyPair, DeriveSharedSecret and GenerateRandom get a Recipient (a
// fresh NSM attestation document for the enclave's RSA key): KMS answers CiphertextForRecipient,
// which is opened here, and the app gets KMS's ordinary response with the secret in clear
// (Plaintext, PrivateKeyPlaintext, SharedSecret: the app is inside the enclave). Those five
// accept the request fields the typed client carries; others (GrantTokens, DryRun, a non-default
// EncryptionAlgorithm, CustomKeyStoreId) are refused with ValidationException rather than
// dropped. A request that brings its own Recipient, and every other operation, is forwarded
// re-signed and unchanged. KMS's errors reach the app in KMS's shape with KMS's request id.
// Secrets (local and role credentials, plaintexts) are held in SecureBytes or wiped, never logged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/kms/recipient.h"
#include "shield_nitro/kms/recipient_key.h"

namespace shield_nitro::kms_endpoint {

// The path of the container-credentials endpoint.
inline constexpr const char* kCredentialsPath = "/v1/credentials";

struct EndpointOptions {
  int port = 0;        // 127.0.0.1:port; 0 picks a free one (tests)
  std::string region;  // the signing region of the app's requests and of KMS's (required)
  kms::KmsClientOptions kms;  // KMS endpoint, proxy tunnel (transport.via), CA, retries; its region is `region`
  std::shared_ptr<kms::CredentialsProvider> role_credentials;  // the pushed role credentials (required)
  kms::AttestationSource* attestation = nullptr;  // NSM documents (required; outlives the endpoint)
  kms::RecipientKeyManager* recipient_keys = nullptr;  // the enclave's RSA key (required; outlives it)
  int64_t local_credentials_lifetime_s = 6 * 3600;  // Expiration of the minted local credentials
  int workers = 2;                                  // handler threads
  const Clock* clock = nullptr;                     // nullptr: the system clock
};

// Environment variables for the app, in order: AWS_CONTAINER_CREDENTIALS_FULL_URI,
// AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_ENDPOINT_URL_KMS, AWS_REGION, AWS_DEFAULT_REGION and
// AWS_EC2_METADATA_DISABLED=true (there is no IMDS in an enclave: an SDK must not wait for one).
using AppEnvironment = std::vector<std::pair<std::string, std::string>>;

// Counters, for logs and metrics (never secrets).
struct EndpointStats {
  uint64_t credentials_served = 0;
  uint64_t credentials_refused = 0;  // missing or wrong Authorization token
  uint64_t kms_calls = 0;            // verified requests sent on to KMS
  uint64_t attested_calls = 0;       // of which with a Recipient added here
  uint64_t kms_refused = 0;          // refused here (signature, protocol, unsupported field)
  uint64_t kms_errors = 0;           // KMS (or the way to it) answered an error
};

// One endpoint; start() once, stop() (or destruction) ends it. Thread-safe.
class KmsEndpoint {
 public:
  // Checks the options (Error(kUsage) naming a missing one); serves nothing until start().
  explicit KmsEndpoint(EndpointOptions options);
  ~KmsEndpoint();
  KmsEndpoint(const KmsEndpoint&) = delete;
  KmsEndpoint& operator=(const KmsEndpoint&) = delete;

  // Mints the authorization token and first local credentials, listens on 127.0.0.1:port and
  // returns the app's environment. Error(kIo) when the port cannot be bound.
  AppEnvironment start();
  // Stops serving (in-flight calls finish first); the token and local credentials are wiped.
  void stop();
  // The bound port after start(), and http://127.0.0.1:<port>.
  int port() const;
  std::string url() const;
  EndpointStats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace shield_nitro::kms_endpoint
