// The attested end-to-end channel between a client and the enclave (docs/threat-model.md,
// docs/protocol.md "Channel records, version 2").
//
// Handshake (the parent relays every byte and learns nothing from them):
//   1. client -> enclave  attest{nonce: 32 random bytes}
//   2. enclave -> client  attestation document D; D.public_key = the enclave's X25519 SPKI,
//                         D.nonce = nonce. The client verifies D (chain, PCR policy, nonce).
//   3. client -> enclave  channel-open{nonce, client_public, versions: [2], pad}
//   Both sides compute  shared = X25519(...), T = SHA-256(transcript(nonce, D, client_public,
//   version, pad)), and per direction an AES-256-GCM key and a 12-byte static IV with
//   HKDF-SHA256(ikm = shared, salt = T, info = label || purpose).
//
// Record (version 2): header = version(1) || flags(1) || session id(16) || seq(u64 BE), then
// AES-256-GCM(key, nonce = IV XOR seq, aad = header, inner) || tag(16). Each direction's seq
// counts from 0. Requests are accepted strictly in order (the enclave's workers wait for their
// turn), so replays and reordering fail. The enclave answers pipelined requests as they
// complete, so a reply carries the seq of the request it answers (flag kFlagReply) and is
// accepted once, by the caller of that request. After max_records records or max_bytes bytes
// the client ratchets both directions' keys (flag kFlagKeyUpdate on the first new record).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::channel {

inline constexpr std::string_view kLabel = "shield-nitro/channel/v2";
inline constexpr uint8_t kChannelVersion = 2;
inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kSessionIdSize = 16;
inline constexpr size_t kKeySize = 32;
inline constexpr size_t kIvSize = 12;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kHeaderSize = 1 + 1 + kSessionIdSize + 8;
inline constexpr uint32_t kMaxPadBucket = 65536;

// Record flags (the header's second byte); other bits are refused.
inline constexpr uint8_t kFlagReply = 0x01;      // enclave -> client
inline constexpr uint8_t kFlagKeyUpdate = 0x02;  // first record under the next keys
inline constexpr uint8_t kFlagPadded = 0x04;     // inner = payload || 0x80 || 0x00*

// What channel-open negotiated; both are bound into the transcript, so a relay that changes
// them gets a different session.
struct ChannelParams {
  uint8_t version = kChannelVersion;
  uint32_t pad_bucket = 0;  // 0: no padding; else inner sizes round up to a multiple of it
};

// SHA-256 over label, nonce, document, client key, version and pad bucket, each
// length-prefixed (u32 BE).
Bytes transcript_hash(ByteView nonce, ByteView attestation_document, ByteView client_public_raw,
                      const ChannelParams& params = {});

struct DirectionKeys {
  SecureBytes key;  // 32 bytes, AES-256-GCM
  SecureBytes iv;   // 12 bytes
  // A deep copy (SecureBytes has one owner).
  DirectionKeys clone() const { return {key.clone(), iv.clone()}; }
};

struct SessionKeys {
  DirectionKeys client_to_enclave;
  DirectionKeys enclave_to_client;
  Bytes session_id;  // 16 bytes, public: names the session on the wire
  uint32_t pad_bucket = 0;
};

// HKDF-SHA256 of the X25519 shared secret, salted with the transcript hash.
SessionKeys derive_session_keys(ByteView shared_secret, ByteView transcript, uint32_t pad_bucket = 0);
// The key update: the next key and IV of one direction, from its current key.
DirectionKeys next_keys(const DirectionKeys& current);

// One record, no state: header || AES-256-GCM(inner) || tag into out.
void seal_record(const DirectionKeys& k, uint8_t flags, ByteView session_id, uint64_t seq, ByteView payload,
                 uint32_t pad_bucket, Bytes& out);
struct RecordHeader {
  uint8_t version = 0;
  uint8_t flags = 0;
  ByteView session_id;
  uint64_t seq = 0;
};
// Error(kFormat) when shorter than a header and tag, Error(kVerify) for another version or
// unknown flags.
RecordHeader parse_record_header(ByteView record);
// Authenticates and decrypts (Error(kAuth)), then strips padding (Error(kFormat)).
void open_record(const DirectionKeys& k, ByteView record, SecureBytes& payload);

struct RecordLimits {
  uint64_t max_records = uint64_t{1} << 32;  // per key, then the client updates the keys
  uint64_t max_bytes = uint64_t{1} << 36;    // per key, both directions, ditto
  int64_t order_wait_ms = 10000;             // how long a request waits for its predecessor
  size_t max_unanswered = 4096;              // requests awaiting their reply (oldest dropped)
};

enum class Role { kClient, kEnclave };

// One side of an open session. Thread-safe.
//   client:  uint64_t seq; Bytes r = box.seal(request, &seq); ... box.open_reply(reply, seq)
//   enclave: uint64_t seq; box.open_into(r, payload, &seq); ... box.seal_reply_into(seq, answer, out)
// The client must put records on the wire in seq order (hold a lock over seal and send).
class SealedBox {
 public:
  SealedBox(const SessionKeys& keys, Role role, RecordLimits limits = {});

  // Client: the next request record. Enclave: the reply to the oldest unanswered request.
  Bytes seal(ByteView payload, uint64_t* seq = nullptr);
  void seal_into(ByteView payload, Bytes& out, uint64_t* seq = nullptr);
  // Enclave: the reply to request seq (each answered once; Error(kUsage) otherwise).
  void seal_reply_into(uint64_t seq, ByteView payload, Bytes& out);

  // Enclave: the next request, in order (waits up to order_wait_ms for its predecessors; when
  // one never comes the session is over). Client: a reply to any unanswered request. Throws
  // Error(kVerify) for a replay, a reordered record, another session or the wrong direction,
  // Error(kAuth) for a forgery (which takes no seq: the genuine record may still come).
  SecureBytes open(ByteView record, uint64_t* seq = nullptr);
  void open_into(ByteView record, SecureBytes& payload, uint64_t* seq = nullptr);
  // Enclave, from a thread that must not wait (the server's event loop, which reads a
  // connection's records in order): open_into() when record is the next request in order (or an
  // old one: refused as a replay); false, having changed nothing, while a predecessor is still
  // outstanding (then open_into() on a thread that may wait).
  bool try_open_into(ByteView record, SecureBytes& payload, uint64_t* seq = nullptr);
  // Client: the reply to request seq, and nothing else.
  SecureBytes open_reply(ByteView record, uint64_t seq);

  // The 16-byte public id of the session.
  const Bytes& session_id() const { return session_id_; }
  // The number of key updates so far (of the newest keys this side holds).
  uint64_t key_epoch();

 private:
  // AES-256-GCM contexts keyed once with one direction's key (each record then sets only its
  // nonce), lent to one thread at a time; freed, and so cleansed, with their epoch.
  class CtxPool;
  struct Epoch {
    uint64_t index = 0;
    DirectionKeys send, recv;
    std::shared_ptr<CtxPool> send_ctx, recv_ctx;
  };
  static std::shared_ptr<Epoch> make_epoch(uint64_t index, DirectionKeys send, DirectionKeys recv);
  using EpochPtr = std::shared_ptr<const Epoch>;
  static EpochPtr ratchet(const Epoch& e);
  RecordHeader check_header(ByteView record, bool want_reply) const;
  bool accept_request(ByteView record, SecureBytes& payload, uint64_t* seq_out, bool may_wait);
  void accept_reply(ByteView record, const uint64_t* expected, SecureBytes& payload, uint64_t* seq_out);
  void remember_unanswered_locked(uint64_t seq, EpochPtr epoch);

  Role role_;
  RecordLimits limits_;
  Bytes session_id_;
  uint32_t pad_bucket_;
  std::mutex mu_;
  std::condition_variable turn_;
  EpochPtr epoch_;                 // newest keys
  uint64_t next_send_ = 0;         // client: next request seq
  uint64_t next_recv_ = 0;         // enclave: the request seq whose turn it is
  uint64_t epoch_records_ = 0;     // records under epoch_ (requests)
  uint64_t epoch_bytes_ = 0;       // bytes under epoch_ (both directions, as this side saw)
  bool failed_ = false;            // enclave: a request never arrived; the session is over
  size_t waiters_ = 0;             // enclave: workers waiting for their turn
  std::map<uint64_t, EpochPtr> unanswered_;  // request seq -> the keys its reply uses
};

}  // namespace shield_nitro::channel
