// X25519 key pairs for the attested channel (RFC 7748, via OpenSSL EVP).
#pragma once

#include <memory>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::channel {

inline constexpr size_t kX25519KeySize = 32;

// An X25519 private key (freed and wiped by OpenSSL when dropped); move-only, and const
// calls are safe from many threads.
class X25519KeyPair {
 public:
  // A fresh key pair from OpenSSL's CSPRNG; Error(kInternal) if OpenSSL fails.
  static X25519KeyPair generate();
  ~X25519KeyPair();
  X25519KeyPair(X25519KeyPair&&) noexcept;
  X25519KeyPair& operator=(X25519KeyPair&&) noexcept;

  // The 32-byte public key as sent on the wire.
  Bytes public_raw() const;
  // DER SubjectPublicKeyInfo (44 bytes): what the enclave puts in its attestation
  // document's public_key, so the document says which kind of key it carries.
  Bytes public_spki() const;
  // X25519(our private key, peer public key). Throws Error(kVerify) for a low-order peer
  // key (all-zero shared secret), Error(kFormat) for a malformed one.
  SecureBytes agree(ByteView peer_public_raw) const;

 private:
  explicit X25519KeyPair(void* pkey) : pkey_(pkey) {}
  void* pkey_ = nullptr;  // EVP_PKEY*
};

// The raw key inside an X25519 SubjectPublicKeyInfo; throws Error(kFormat) if it is not one.
Bytes x25519_raw_from_spki(ByteView spki);

}  // namespace shield_nitro::channel
