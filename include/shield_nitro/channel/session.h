// The attested end-to-end channel between a client and the enclave (docs/threat-model.md).
//
// Handshake (the parent relays every byte and learns nothing from them):
//   1. client -> enclave  attest{nonce: 32 random bytes}
//   2. enclave -> client  attestation document D; D.public_key = the enclave's X25519 SPKI,
//                         D.nonce = nonce. The client verifies D (chain, PCR policy, nonce).
//   3. client -> enclave  channel-open{nonce, client_public}
//   Both sides compute  shared = X25519(...), T = SHA-256(transcript(nonce, D, client_public)),
//   and session keys with HKDF-SHA256(ikm = shared, salt = T, info = label || direction).
//   4. Every later request/response body is a SealedBox message (below) under those keys.
//
// A SealedBox message is a Shield v4 key-mode message (suite AES-256-GCM) whose plaintext is
// seq (8 bytes, big-endian) || payload. Each direction has its own key and counter; the
// receiver accepts each seq once, within a sliding window of 1024 (pipelined requests may be
// handled out of order), so a replayed, dropped-then-replayed or reflected message fails.
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/shield.h"

namespace shield_nitro::channel {

inline constexpr std::string_view kLabel = "shield-nitro/channel/v1";
inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kSessionIdSize = 16;
inline constexpr uint64_t kReplayWindow = 1024;

// SHA-256 over label, nonce, document and client key, each length-prefixed (u32 BE).
Bytes transcript_hash(ByteView nonce, ByteView attestation_document, ByteView client_public_raw);

struct SessionKeys {
  SecureBytes client_to_enclave;  // 32 bytes, a Shield key-mode master key
  SecureBytes enclave_to_client;  // 32 bytes
  Bytes session_id;               // 16 bytes, public: names the session on the wire
};

// HKDF-SHA256 of the X25519 shared secret, salted with the transcript hash: one key per
// direction and the session id. Both sides get the same keys from the same inputs.
SessionKeys derive_session_keys(ByteView shared_secret, ByteView transcript);

enum class Role { kClient, kEnclave };

// One side of an open session: seals what it sends, opens what it receives. Thread-safe:
// sending takes a sequence number from an atomic counter, and receiving locks only for the
// replay-window update (the AEAD work runs outside any lock).
//
//   Bytes m = box.seal(payload);          // or seal_into(payload, reused_buffer)
//   SecureBytes p = other.open(m);        // or open_into(m, reused_secure_buffer)
class SealedBox {
 public:
  // Copies the keys it needs; role picks which direction is sent and which received.
  SealedBox(const SessionKeys& keys, Role role);

  // The next message for payload (next sequence number); never fails for valid keys.
  Bytes seal(ByteView payload);
  // The same into out, reusing its storage (seq and payload are sealed without being
  // concatenated first).
  void seal_into(ByteView payload, Bytes& out);
  // Throws Error(kAuth) for a forged/tampered message, Error(kVerify) for a replay or a
  // message older than the window, Error(kExpired) outside Shield's freshness window,
  // Error(kFormat) when the plaintext has no 8-byte sequence number.
  SecureBytes open(ByteView message);
  // The same into payload, reusing its storage; payload is emptied (and wiped) on failure.
  void open_into(ByteView message, SecureBytes& payload);

  // The 16-byte public id of the session.
  const Bytes& session_id() const { return session_id_; }

 private:
  // Records seq in the replay window; throws Error(kVerify) if it was seen or is too old.
  void accept(uint64_t seq);

  shield::Shield send_;
  shield::Shield recv_;
  Bytes session_id_;
  std::atomic<uint64_t> next_send_{0};
  std::mutex recv_mu_;          // guards the two fields below
  uint64_t highest_seen_ = 0;  // highest accepted seq + 1 (0: none yet)
  std::bitset<kReplayWindow> window_;  // bit i: seq (highest_seen_ - 1 - i) was accepted
};

}  // namespace shield_nitro::channel
