// A 32-byte AEAD key with ready-keyed OpenSSL contexts, so sealing a message costs one IV
// setup, not a cipher fetch and key schedule. Thread-safe: each operation leases a context.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <mutex>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/suite.h"

namespace shield_nitro::shield::detail {

class AeadKey {
 public:
  explicit AeadKey(SecureBytes key);
  ~AeadKey();
  AeadKey(const AeadKey&) = delete;
  AeadKey& operator=(const AeadKey&) = delete;

  // Writes plaintext.size() + 16 bytes (ciphertext || tag) to out.
  void seal(Suite suite, ByteView nonce, ByteView aad, ByteView plaintext, uint8_t* out) const;
  // Writes sealed.size() - 16 bytes to out; false (and out wiped) if the tag fails.
  bool open(Suite suite, ByteView nonce, ByteView aad, ByteView sealed, uint8_t* out) const;

  EVP_CIPHER_CTX* lease(Suite suite) const;
  void give_back(Suite suite, EVP_CIPHER_CTX* ctx) const;

 private:
  SecureBytes key_;
  mutable std::mutex mu_;
  mutable std::array<std::vector<EVP_CIPHER_CTX*>, 2> idle_;
};

// One AEAD operation on a leased context, fed in pieces so callers need not concatenate
// (v4 seals a small inner header and the caller's plaintext without copying it).
class AeadOp {
 public:
  AeadOp(const AeadKey& key, Suite suite, bool encrypt, ByteView nonce, ByteView aad);
  ~AeadOp();
  AeadOp(const AeadOp&) = delete;
  AeadOp& operator=(const AeadOp&) = delete;

  // Transforms in to out (same length).
  void update(ByteView in, uint8_t* out);
  void finish_seal(uint8_t* tag_out);
  // True when the tag verifies. The caller must wipe what update() wrote if it does not.
  bool finish_open(ByteView tag);

 private:
  const AeadKey& key_;
  Suite suite_;
  EVP_CIPHER_CTX* ctx_;
};

}  // namespace shield_nitro::shield::detail
