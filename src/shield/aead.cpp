#include "aead.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <climits>

#include "shield_nitro/core/error.h"
#include "shield_nitro/shield/shield.h"

namespace shield_nitro::shield::detail {
namespace {

constexpr size_t kMaxIdleContexts = 64;
constexpr size_t kUpdateStep = size_t{1} << 30;  // EVP lengths are int

const EVP_CIPHER* cipher_for(Suite suite) {
  static EVP_CIPHER* gcm = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static EVP_CIPHER* chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  const EVP_CIPHER* c = suite == Suite::kChaCha20Poly1305 ? chacha : gcm;
  if (!c) throw_openssl(std::string("cannot fetch ") + suite_name(suite));
  return c;
}

size_t slot(Suite suite) { return suite == Suite::kChaCha20Poly1305 ? 1 : 0; }

}  // namespace

AeadKey::AeadKey(SecureBytes key) : key_(std::move(key)) {
  if (key_.size() != kKeySize) throw Error(Errc::kInternal, "AEAD key must be 32 bytes");
}

AeadKey::~AeadKey() {
  for (auto& pool : idle_)
    for (EVP_CIPHER_CTX* c : pool) EVP_CIPHER_CTX_free(c);
}

EVP_CIPHER_CTX* AeadKey::lease(Suite suite) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& pool = idle_[slot(suite)];
    if (!pool.empty()) {
      EVP_CIPHER_CTX* c = pool.back();
      pool.pop_back();
      return c;
    }
  }
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (!c) throw_openssl("cannot create cipher context");
  if (EVP_CipherInit_ex2(c, cipher_for(suite), key_.data(), nullptr, 1, nullptr) != 1) {
    EVP_CIPHER_CTX_free(c);
    throw_openssl(std::string("cannot key ") + suite_name(suite));
  }
  return c;
}

void AeadKey::give_back(Suite suite, EVP_CIPHER_CTX* ctx) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& pool = idle_[slot(suite)];
    if (pool.size() < kMaxIdleContexts) {
      pool.push_back(ctx);
      return;
    }
  }
  EVP_CIPHER_CTX_free(ctx);
}

void AeadKey::seal(Suite suite, ByteView nonce, ByteView aad, ByteView plaintext, uint8_t* out) const {
  AeadOp op(*this, suite, true, nonce, aad);
  op.update(plaintext, out);
  op.finish_seal(out + plaintext.size());
}

bool AeadKey::open(Suite suite, ByteView nonce, ByteView aad, ByteView sealed, uint8_t* out) const {
  if (sealed.size() < kTagSize) return false;
  size_t n = sealed.size() - kTagSize;
  AeadOp op(*this, suite, false, nonce, aad);
  op.update(sealed.first(n), out);
  if (op.finish_open(sealed.subspan(n))) return true;
  OPENSSL_cleanse(out, n);
  return false;
}

AeadOp::AeadOp(const AeadKey& key, Suite suite, bool encrypt, ByteView nonce, ByteView aad)
    : key_(key), suite_(suite), ctx_(key.lease(suite)) {
  int len = 0;
  if (nonce.size() != kNonceSize || EVP_CipherInit_ex2(ctx_, nullptr, nullptr, nonce.data(), encrypt ? 1 : 0, nullptr) != 1 ||
      (!aad.empty() && EVP_CipherUpdate(ctx_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)) {
    EVP_CIPHER_CTX_free(ctx_);
    ctx_ = nullptr;
    throw_openssl("cannot start AEAD operation");
  }
}

AeadOp::~AeadOp() {
  if (ctx_) key_.give_back(suite_, ctx_);
}

void AeadOp::update(ByteView in, uint8_t* out) {
  while (!in.empty()) {
    size_t step = in.size() < kUpdateStep ? in.size() : kUpdateStep;
    int len = 0;
    if (EVP_CipherUpdate(ctx_, out, &len, in.data(), static_cast<int>(step)) != 1 || static_cast<size_t>(len) != step)
      throw_openssl("AEAD update failed");
    in = in.subspan(step);
    out += step;
  }
}

void AeadOp::finish_seal(uint8_t* tag_out) {
  int len = 0;
  uint8_t scratch[16];
  if (EVP_CipherFinal_ex(ctx_, scratch, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagSize), tag_out) != 1)
    throw_openssl("AEAD seal failed");
}

bool AeadOp::finish_open(ByteView tag) {
  int len = 0;
  uint8_t scratch[16];
  if (tag.size() != kTagSize ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagSize), const_cast<uint8_t*>(tag.data())) != 1)
    return false;
  bool ok = EVP_CipherFinal_ex(ctx_, scratch, &len) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace shield_nitro::shield::detail
