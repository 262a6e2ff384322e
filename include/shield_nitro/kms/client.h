// KMS client: the AWS JSON 1.1 protocol over HTTPS (OpenSSL), SigV4-signed.
//
//   KmsClient kms({.region = "us-east-1"}, std::make_shared<DefaultCredentialsChain>());
//   auto dk = kms.generate_data_key("alias/app", 32, {}, &recipient);  // opened in-process
//
// Every KMS error surfaces as a KmsError carrying HTTP status, __type, message and request id.
// Throttling and 5xx are retried with jittered exponential backoff; nothing else is.
// With a Recipient, KMS answers CiphertextForRecipient (CMS to the enclave key pair) and the
// client opens it here; a response carrying Plaintext for a Recipient request is refused.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/kms/http_client.h"
#include "shield_nitro/kms/recipient.h"
#include "shield_nitro/kms/recipient_key.h"

namespace shield_nitro::kms {

using EncryptionContext = std::map<std::string, std::string>;

struct KmsClientOptions {
  std::string region = "us-east-1";
  std::string endpoint;  // URL override, e.g. https://127.0.0.1:4443 or http://127.0.0.1:8080
  bool fips = false;
  TransportOptions transport;
  int max_attempts = 4;
  int base_backoff_ms = 50;
  int max_backoff_ms = 2000;
};

// Attestation-gated call: a document is produced fresh for every request.
struct Recipient {
  AttestationSource* attestation = nullptr;
  RecipientKeyManager* keys = nullptr;
};

struct EncryptResult {
  std::string key_id;
  Bytes ciphertext_blob;
};

struct DecryptResult {
  std::string key_id;
  std::string encryption_algorithm;
  SecureBytes plaintext;
};

struct DataKeyResult {
  std::string key_id;
  Bytes ciphertext_blob;
  SecureBytes plaintext;  // empty for GenerateDataKeyWithoutPlaintext
};

// GenerateDataKeyPair(WithoutPlaintext). public_key is DER SubjectPublicKeyInfo; private_key
// is DER PKCS #8 PrivateKeyInfo (empty for ...WithoutPlaintext), checked to belong to public_key.
struct DataKeyPairResult {
  std::string key_id;
  std::string key_pair_spec;
  Bytes public_key;
  Bytes private_key_ciphertext_blob;
  SecureBytes private_key;
};

struct SharedSecretResult {
  std::string key_id;
  std::string key_agreement_algorithm;
  SecureBytes shared_secret;  // the raw ECDH secret (x coordinate), field-size bytes
};

struct PublicKeyResult {
  std::string key_id, key_spec, key_usage;
  Bytes public_key;  // DER SubjectPublicKeyInfo
  std::vector<std::string> encryption_algorithms, signing_algorithms, key_agreement_algorithms;
};

// DescribeKey's KeyMetadata. Fields KMS leaves out stay empty (0, false).
struct KeyMetadata {
  std::string key_id, arn, aws_account_id, description;
  std::string key_state;  // Enabled, Disabled, PendingDeletion, PendingImport, Unavailable, ...
  std::string key_usage;  // ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC, KEY_AGREEMENT
  std::string key_spec;   // SYMMETRIC_DEFAULT, RSA_2048, ECC_NIST_P256, ...
  std::string origin, key_manager;
  bool enabled = false;
  bool multi_region = false;
  int64_t creation_date_s = 0;  // Unix seconds
  int64_t deletion_date_s = 0;  // set while PendingDeletion
  std::vector<std::string> encryption_algorithms, signing_algorithms, key_agreement_algorithms;
};

// kms.<region>.amazonaws.com, with the partition suffixes SDK-C knows.
std::string kms_endpoint_for_region(const std::string& region, bool fips = false);

// One KMS endpoint and credentials source; calls are thread-safe (each is its own request).
class KmsClient {
 public:
  // Resolves the endpoint (options.endpoint or the region's); no request until the first call.
  // clock (for SigV4) must outlive the client.
  KmsClient(KmsClientOptions options, std::shared_ptr<CredentialsProvider> credentials,
            const Clock& clock = system_clock());

  // KMS Encrypt / Decrypt (Decrypt with a Recipient returns the plaintext opened here, never
  // sent in clear by KMS). Errors: KmsError for KMS's answers, Error(kIo/kTimeout) for the
  // transport, Error(kEnvironment) when no credentials can be had.
  EncryptResult encrypt(const std::string& key_id, ByteView plaintext, const EncryptionContext& context = {});
  DecryptResult decrypt(ByteView ciphertext_blob, const EncryptionContext& context = {},
                        const std::string& key_id = "", const Recipient* recipient = nullptr);
  // number_of_bytes 32 -> KeySpec AES_256, 16 -> AES_128, else NumberOfBytes.
  DataKeyResult generate_data_key(const std::string& key_id, int number_of_bytes = 32,
                                  const EncryptionContext& context = {}, const Recipient* recipient = nullptr);
  DataKeyResult generate_data_key_without_plaintext(const std::string& key_id, int number_of_bytes = 32,
                                                    const EncryptionContext& context = {});
  SecureBytes generate_random(int number_of_bytes, const Recipient* recipient = nullptr);
  // KMS DescribeKey: the key's metadata (key id, alias or ARN). Errors as for encrypt(), and
  // Error(kFormat) when the answer has no KeyMetadata object.
  KeyMetadata describe_key(const std::string& key_id);
  // key_pair_spec: RSA_2048|RSA_3072|RSA_4096|ECC_NIST_P256|ECC_NIST_P384|ECC_NIST_P521 (else
  // Error(kUsage), nothing sent). With a Recipient the private key comes back in
  // CiphertextForRecipient and is opened here.
  DataKeyPairResult generate_data_key_pair(const std::string& key_id, const std::string& key_pair_spec,
                                           const EncryptionContext& context = {}, const Recipient* recipient = nullptr);
  DataKeyPairResult generate_data_key_pair_without_plaintext(const std::string& key_id, const std::string& key_pair_spec,
                                                             const EncryptionContext& context = {});
  // ECDH between the KMS key (KEY_AGREEMENT) and peer_public_key (DER SPKI on NIST P-256,
  // P-384 or P-521, else Error(kUsage)); with a Recipient the secret is opened here.
  SharedSecretResult derive_shared_secret(const std::string& key_id, ByteView peer_public_key,
                                          const Recipient* recipient = nullptr, const std::string& algorithm = "ECDH");
  PublicKeyResult get_public_key(const std::string& key_id);

  // One signed call with retries, in JSON text: for the operations without a method here
  // (CreateKey, PutKeyPolicy, ListKeys, ...) and for passing an app's request through
  // unchanged. json_body (one JSON object, e.g. "{}") is signed and sent byte for byte; the
  // answer is KMS's JSON object as it came. Error(kUsage) when json_body is not one JSON
  // object (nothing sent), KmsError on a KMS error answer, Error(kFormat) when the answer is
  // not a JSON object, and transport errors as for encrypt(). An answer may carry a secret
  // (a Decrypt's Plaintext without a Recipient): the caller wipes it (wipe_string) when done.
  std::string call_text(const std::string& operation, const std::string& json_body);

  // The endpoint URL requests go to, and the signing region.
  const std::string& url() const { return url_; }
  const std::string& region() const { return options_.region; }

 private:
  // One attempt; the answer's text (checked to be a JSON object).
  std::string call_once(const std::string& operation, const std::string& body);
  KmsClientOptions options_;
  std::shared_ptr<CredentialsProvider> credentials_;
  const Clock& clock_;
  std::string url_;
  std::string host_;
};

}  // namespace shield_nitro::kms
