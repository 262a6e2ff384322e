// The enclave's RSA-2048 key pair for KMS Recipient answers.
//
// KMS envelopes CiphertextForRecipient to the public key inside the attestation document, so
// the enclave needs an RSA key pair whose DER SubjectPublicKeyInfo goes into the NSM request's
// public_key. RSA-2048 generation takes tens of milliseconds, so RecipientKeyManager does it
// on a background thread at start and rotates on a schedule; a request only takes a
// shared_ptr to the current pair (held until its CMS envelope is opened, so a rotation never
// breaks an in-flight request). The private key stays in process memory and is freed (OpenSSL
// wipes RSA private components) when the last holder drops it.
#pragma once

#include <openssl/evp.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::kms {

// One RSA-2048 key pair; immutable, shared by the requests using it.
class RecipientKeyPair {
 public:
  // RSA-2048, e = 65537, from the OpenSSL DRBG (seeded from the kernel, or the NSM's random).
  static std::shared_ptr<const RecipientKeyPair> generate();
  // Adopts a private key (tests: the fixture key). Takes ownership.
  static std::shared_ptr<const RecipientKeyPair> adopt(EVP_PKEY* private_key);
  ~RecipientKeyPair();
  RecipientKeyPair(const RecipientKeyPair&) = delete;
  RecipientKeyPair& operator=(const RecipientKeyPair&) = delete;

  // DER SubjectPublicKeyInfo: 294 bytes for RSA-2048 with e = 65537.
  const Bytes& spki_der() const { return spki_; }
  EVP_PKEY* private_key() const { return key_; }
  // Opens a CiphertextForRecipient addressed to this key pair.
  SecureBytes open(ByteView ciphertext_for_recipient) const;

 private:
  explicit RecipientKeyPair(EVP_PKEY* key);
  EVP_PKEY* key_;
  Bytes spki_;
};

class RecipientKeyManager {
 public:
  // Starts generating the first pair immediately on a background thread; rotates every
  // `rotate_every` (0 disables rotation).
  explicit RecipientKeyManager(std::chrono::seconds rotate_every = std::chrono::hours(1));
  ~RecipientKeyManager();
  RecipientKeyManager(const RecipientKeyManager&) = delete;
  RecipientKeyManager& operator=(const RecipientKeyManager&) = delete;

  // The current pair; waits only if the very first generation has not finished.
  std::shared_ptr<const RecipientKeyPair> current();
  // Number of pairs generated so far (for tests and metrics).
  uint64_t generations() const;

 private:
  void run();
  std::chrono::seconds rotate_every_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const RecipientKeyPair> current_;
  uint64_t generations_ = 0;
  bool stopping_ = false;
  std::string failure_;
  std::thread thread_;
};

}  // namespace shield_nitro::kms
