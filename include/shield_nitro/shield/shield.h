// Shield v4: authenticated encryption of messages, byte-compatible with Guard8-ai/Shield.
//
// A Shield is built once from a password (+ service name) or a 32-byte key, then encrypts
// and decrypts any number of messages. Nonces, salts, padding and timestamps are chosen
// inside; callers cannot pass them, so they cannot reuse a nonce by mistake.
//
//   auto key = ShieldKey::generate();
//   Shield s = Shield::with_key(key);
//   Bytes msg = s.encrypt(as_bytes("hello"));
//   SecureBytes pt = s.decrypt(msg);        // throws Error(kAuth) if tampered
//
// Decrypt enforces a freshness window (default: at most 60 s old, at most 5 s in the
// future), because v4 messages are meant for transport. For data at rest, disable it:
//   Shield::with_key(key, {.max_age_ms = std::nullopt})
// The window is not replay protection: a captured message replays within it.
//
// A Shield is cheap to copy (copies share keys and caches) and safe to use from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/kdf.h"
#include "shield_nitro/shield/suite.h"

namespace shield_nitro::shield {

inline constexpr uint8_t kVersionPassword = 0x03;
inline constexpr uint8_t kVersionKey = 0x13;
inline constexpr size_t kKeySize = 32;
inline constexpr size_t kSaltSize = 16;
inline constexpr size_t kNonceSize = 12;
inline constexpr size_t kTagSize = 16;
inline constexpr int64_t kDefaultMaxAgeMs = 60000;
inline constexpr int64_t kDefaultFutureSkewMs = 5000;

// A 32-byte master key for key mode ("pre-shared key"). Zeroized when dropped.
class ShieldKey {
 public:
  // 32 bytes from the CSPRNG.
  static ShieldKey generate(Random& rng = os_random());
  // Throws Error(kUsage) unless key is exactly 32 bytes.
  static ShieldKey from_bytes(ByteView key);

  // The raw key, only for the code that must hold the bytes themselves: building a Shield and
  // writing a key file. Everything else passes the ShieldKey (or a Shield built from it).
  ByteView expose_secret() const { return bytes_.view(); }
  ShieldKey clone() const { return ShieldKey(bytes_.clone()); }

 private:
  explicit ShieldKey(SecureBytes b) : bytes_(std::move(b)) {}
  SecureBytes bytes_;
};

struct ShieldOptions {
  Suite suite = Suite::kAes256Gcm;  // for encryption; decryption accepts both suites
  // Oldest accepted message age; std::nullopt disables the freshness check (data at rest).
  std::optional<int64_t> max_age_ms = kDefaultMaxAgeMs;
  // How far in the future a timestamp may be (sender clock ahead of ours).
  int64_t future_skew_ms = kDefaultFutureSkewMs;
  // Password mode: master keys of other senders' salts kept after their first message
  // verifies, so their next messages skip PBKDF2. Least recently used entries are dropped.
  size_t salt_cache_entries = 64;
  // Password mode: PBKDF2 iterations, for encryption and decryption alike (a v4 message does
  // not record them: both sides must agree). At least 1; below 100000 only for old data.
  int pbkdf2_iterations = kPbkdf2Iterations;
  // Test seams only: a FixedClock / ScriptedRandom reproduce vectors. Null means the
  // system clock and the OpenSSL CSPRNG. Never set these on a production path.
  const Clock* clock = nullptr;
  Random* random = nullptr;
};

namespace detail {
struct ShieldState;
struct ShieldAccess;
}  // namespace detail

class Shield {
 public:
  // Password mode (0x03). The instance draws its own 16-byte salt now; PBKDF2 (~0.3 s) runs
  // on the first encrypt, so a decrypt-only instance never pays for its own salt.
  static Shield with_password(ByteView password, std::string_view service, ShieldOptions options = {});
  // Key mode (0x13).
  static Shield with_key(const ShieldKey& key, ShieldOptions options = {});

  // A fresh v4 message: header || nonce || AEAD(timestamp || pad_len || padding || plaintext).
  Bytes encrypt(ByteView plaintext) const;
  // The same into out, reusing its storage: for loops that seal many messages of similar
  // size, it saves an allocation and a zero-fill per message. out must not overlap plaintext.
  void encrypt_into(ByteView plaintext, Bytes& out) const;
  // The message for the plaintext head || body, byte for byte what encrypt_into(head || body)
  // makes, without concatenating them first: for framed protocols that put a small header
  // (e.g. a sequence number) before a large payload. out must not overlap head or body.
  void encrypt_into(ByteView head, ByteView body, Bytes& out) const;
  // The plaintext of a v4 message. Throws Error with:
  //   kFormat / kUnsupported  empty, truncated, unknown version or suite, mode mismatch
  //   kAuth                   "authentication failed" (wrong key or service, tampered)
  //   kExpired                outside the freshness window
  SecureBytes decrypt(ByteView message) const;
  // The same into out, reusing its storage: for loops that decrypt many messages of similar
  // size, it saves an allocation, a zero-fill and a wipe per message. out is emptied (and
  // wiped) when decryption fails.
  void decrypt_into(ByteView message, SecureBytes& out) const;
  // The counterpart of the two-part encrypt_into: the plaintext's first head.size() bytes go
  // to head, the rest to body (storage reused). Checks as decrypt(), then Error(kFormat) when
  // the plaintext is shorter than head. On any failure head is wiped and body emptied; nothing
  // is left in either before the tag verifies.
  void decrypt_split_into(ByteView message, std::span<uint8_t> head, SecureBytes& body) const;

  // The suite this instance encrypts with (options.suite), and whether it was built from a
  // password (0x03) rather than a key (0x13).
  Suite suite() const;
  bool password_mode() const;
  // Entries in the decrypt-side salt cache (for tests and monitoring).
  size_t cached_salts() const;

 private:
  explicit Shield(std::shared_ptr<detail::ShieldState> state) : state_(std::move(state)) {}
  friend struct detail::ShieldAccess;
  std::shared_ptr<detail::ShieldState> state_;
};

}  // namespace shield_nitro::shield
