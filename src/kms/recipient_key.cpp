#include "shield_nitro/kms/recipient_key.h"

#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/kms/cms.h"

namespace shield_nitro::kms {

namespace {

Bytes encode_spki(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0) throw_openssl("encode SubjectPublicKeyInfo");
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

}  // namespace

RecipientKeyPair::RecipientKeyPair(EVP_PKEY* key) : key_(key), spki_(encode_spki(key)) {}

RecipientKeyPair::~RecipientKeyPair() { EVP_PKEY_free(key_); }

std::shared_ptr<const RecipientKeyPair> RecipientKeyPair::generate() {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  if (!key) throw_openssl("RSA-2048 key generation");
  return std::shared_ptr<const RecipientKeyPair>(new RecipientKeyPair(key));
}

std::shared_ptr<const RecipientKeyPair> RecipientKeyPair::adopt(EVP_PKEY* private_key) {
  if (!private_key || EVP_PKEY_get_base_id(private_key) != EVP_PKEY_RSA)
    throw Error(Errc::kUsage, "recipient key must be an RSA private key");
  return std::shared_ptr<const RecipientKeyPair>(new RecipientKeyPair(private_key));
}

SecureBytes RecipientKeyPair::open(ByteView ciphertext_for_recipient) const {
  return open_recipient_envelope(ciphertext_for_recipient, key_);
}

RecipientKeyManager::RecipientKeyManager(std::chrono::seconds rotate_every)
    : rotate_every_(rotate_every), thread_([this] { run(); }) {}

RecipientKeyManager::~RecipientKeyManager() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void RecipientKeyManager::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    std::shared_ptr<const RecipientKeyPair> fresh;
    std::string failure;
    try {
      fresh = RecipientKeyPair::generate();
    } catch (const std::exception& e) {
      failure = e.what();
      log_error(std::string("recipient key generation failed: ") + e.what());
    }
    lock.lock();
    if (fresh) {
      current_ = std::move(fresh);
      ++generations_;
    } else if (!current_) {
      failure_ = failure;
    }
    cv_.notify_all();
    if (rotate_every_.count() == 0 && current_) break;
    auto wait = current_ ? std::chrono::seconds(rotate_every_) : std::chrono::seconds(1);
    cv_.wait_for(lock, wait, [this] { return stopping_; });
  }
}

std::shared_ptr<const RecipientKeyPair> RecipientKeyManager::current() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return current_ || !failure_.empty() || stopping_; });
  if (!current_) throw Error(Errc::kInternal, "no recipient key pair: " + failure_);
  return current_;
}

uint64_t RecipientKeyManager::generations() const {
  std::lock_guard lock(mu_);
  return generations_;
}

}  // namespace shield_nitro::kms
