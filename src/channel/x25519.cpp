#include "shield_nitro/channel/x25519.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>

#include "shield_nitro/core/error.h"

namespace shield_nitro::channel {
namespace {
EVP_PKEY* pkey(void* p) { return static_cast<EVP_PKEY*>(p); }
}  // namespace

X25519KeyPair X25519KeyPair::generate() {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  if (!k) throw_openssl("X25519 key generation failed");
  return X25519KeyPair(k);
}

X25519KeyPair::~X25519KeyPair() { EVP_PKEY_free(pkey(pkey_)); }
X25519KeyPair::X25519KeyPair(X25519KeyPair&& o) noexcept : pkey_(o.pkey_) { o.pkey_ = nullptr; }
X25519KeyPair& X25519KeyPair::operator=(X25519KeyPair&& o) noexcept {
  std::swap(pkey_, o.pkey_);
  return *this;
}

Bytes X25519KeyPair::public_raw() const {
  Bytes out(kX25519KeySize);
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(pkey(pkey_), out.data(), &len) != 1 || len != kX25519KeySize)
    throw_openssl("cannot read the X25519 public key");
  return out;
}

Bytes X25519KeyPair::public_spki() const {
  int len = i2d_PUBKEY(pkey(pkey_), nullptr);
  if (len <= 0) throw_openssl("cannot encode the X25519 public key");
  Bytes out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  i2d_PUBKEY(pkey(pkey_), &p);
  return out;
}

SecureBytes X25519KeyPair::agree(ByteView peer_raw) const {
  if (peer_raw.size() != kX25519KeySize)
    throw Error(Errc::kFormat, "channel: peer X25519 key is " + std::to_string(peer_raw.size()) + " bytes, expected 32");
  EVP_PKEY* peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_raw.data(), peer_raw.size());
  if (!peer) throw Error(Errc::kFormat, "channel: malformed peer X25519 key");
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(pkey(pkey_), nullptr);
  SecureBytes secret(kX25519KeySize);
  size_t len = secret.size();
  bool ok = ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
            EVP_PKEY_derive(ctx, secret.data(), &len) == 1 && len == kX25519KeySize;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  // OpenSSL refuses an all-zero result (a low-order peer point) in derive itself.
  if (!ok) throw Error(Errc::kVerify, "channel: X25519 key agreement failed (low-order or invalid peer key)");
  return secret;
}

// DER is canonical and RFC 8410 forbids parameters, so every X25519 SubjectPublicKeyInfo is
// these 12 bytes then the 32-byte key: compared, not parsed (OpenSSL 3's d2i_PUBKEY builds a
// decoder context per call, ~0.2 ms of a channel open).
Bytes x25519_raw_from_spki(ByteView spki) {
  static constexpr uint8_t kPrefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00};
  if (spki.size() != sizeof kPrefix + kX25519KeySize || !std::equal(std::begin(kPrefix), std::end(kPrefix), spki.begin()))
    throw Error(Errc::kFormat, "channel: public_key is not an X25519 SubjectPublicKeyInfo");
  return Bytes(spki.begin() + sizeof kPrefix, spki.end());
}

}  // namespace shield_nitro::channel
