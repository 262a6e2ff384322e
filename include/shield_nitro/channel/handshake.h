// Both ends of the channel handshake described in session.h.
//
// Client (parent SDK or a remote client):
//   ClientHandshake hs;                                  // draws a 32-byte nonce
//   Bytes doc = enclave.attest(hs.nonce());              // relayed by the parent
//   auto verified = attest::verify(doc, policy_with_nonce(hs.nonce()));
//   auto opened = hs.finish(doc, verified.public_key);   // X25519 + HKDF
//   enclave.channel_open(hs.nonce(), opened.client_public, versions = [2], pad);
//   SealedBox box(opened.keys, Role::kClient);
//
// Enclave: ChannelServer keeps the X25519 key pair (rotated), remembers which document it
// issued for which nonce, and turns channel-open into a SealedBox per session.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "shield_nitro/channel/session.h"
#include "shield_nitro/channel/x25519.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/random.h"

namespace shield_nitro::channel {

// The client's half of one handshake: a fresh nonce, then the key agreement. Use once.
class ClientHandshake {
 public:
  // Draws the 32-byte nonce from rng.
  explicit ClientHandshake(Random& rng = os_random());
  // The nonce to send in attest and channel-open (and to require in the document).
  const Bytes& nonce() const { return nonce_; }

  struct Opened {
    SessionKeys keys;
    Bytes client_public;  // raw 32 bytes, sent in channel-open
  };
  // document: the exact bytes the enclave returned (already verified by the caller);
  // enclave_spki: the verified document's public_key.
  // params: what channel-open will ask for (bound into the keys). Throws Error(kFormat) when
  // enclave_spki is not an X25519 key, Error(kVerify) for a low-order one. Fresh ephemeral key
  // per call.
  Opened finish(ByteView document, ByteView enclave_spki, const ChannelParams& params = {}) const;

 private:
  Bytes nonce_;
};

struct ChannelServerOptions {
  int64_t key_rotation_ms = 10 * 60 * 1000;  // a new X25519 key pair this often
  int64_t attestation_ttl_ms = 5 * 60 * 1000;  // channel-open must follow attest within this
  size_t max_pending = 1024;                  // attestations awaiting channel-open
  size_t max_sessions = 4096;                 // oldest sessions are dropped beyond this
  RecordLimits limits;                        // per session
  const Clock* clock = nullptr;               // tests only
};

// channel-open's version negotiation: 2 when offered, else Error(kVerify) with a message that
// tells an old SDK to upgrade. pad_bucket above kMaxPadBucket is Error(kUsage).
ChannelParams negotiate(const std::vector<uint64_t>& offered_versions, uint64_t pad_bucket);

// The enclave's side: key rotation, pending attestations and open sessions. Thread-safe.
class ChannelServer {
 public:
  explicit ChannelServer(ChannelServerOptions options = {});

  // The key to put in the next attestation document (rotates on schedule), with a handle
  // to pass back to remember_attestation().
  struct KeyRef {
    Bytes spki;
    std::shared_ptr<const X25519KeyPair> pair;
  };
  // Rotates first when the key is older than key_rotation_ms.
  KeyRef current_key();

  // Records that `document` (carrying key.spki and nonce) was handed out.
  void remember_attestation(ByteView nonce, ByteView document, const KeyRef& key);

  // channel-open: completes the handshake for a remembered nonce (each nonce opens once).
  // Throws Error(kVerify) for an unknown/expired/used nonce.
  std::shared_ptr<SealedBox> open(ByteView nonce, ByteView client_public_raw, const ChannelParams& params = {});

  // The session named by id, or nullptr.
  std::shared_ptr<SealedBox> find(ByteView session_id);
  // Forgets the session (no-op when unknown); holders of its SealedBox may finish with it.
  void close(ByteView session_id);
  // Open sessions, at most max_sessions.
  size_t session_count();

 private:
  struct Pending {
    Bytes document;
    std::shared_ptr<const X25519KeyPair> pair;
    int64_t issued_ms;
  };
  int64_t now() const;
  void expire_pending_locked();

  ChannelServerOptions options_;
  std::mutex mu_;
  std::shared_ptr<const X25519KeyPair> key_;
  Bytes key_spki_;
  int64_t key_born_ms_ = 0;
  std::map<Bytes, Pending> pending_;
  // Orders Bytes keys and looks them up by ByteView, so find() on every sealed request does
  // not copy the id first.
  struct IdLess {
    using is_transparent = void;
    bool operator()(ByteView a, ByteView b) const;
  };
  std::map<Bytes, std::pair<std::shared_ptr<SealedBox>, uint64_t>, IdLess> sessions_;  // id -> (box, age order)
  uint64_t session_counter_ = 0;
};

}  // namespace shield_nitro::channel
