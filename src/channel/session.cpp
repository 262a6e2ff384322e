#include "shield_nitro/channel/session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <chrono>
#include <climits>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/hkdf.h"
#include "shield_nitro/core/openssl_ptr.h"

namespace shield_nitro::channel {
namespace {

void put_prefixed(Bytes& out, ByteView part) {
  put_u32be(out, static_cast<uint32_t>(part.size()));
  out.insert(out.end(), part.begin(), part.end());
}

std::string info(std::string_view purpose) { return std::string(kLabel) + " " + std::string(purpose); }

void nonce_for(const DirectionKeys& k, uint64_t seq, uint8_t nonce[kIvSize]) {
  for (size_t i = 0; i < kIvSize; ++i) nonce[i] = k.iv.data()[i];
  for (int i = 0; i < 8; ++i) nonce[kIvSize - 1 - i] ^= static_cast<uint8_t>(seq >> (8 * i));
}

// Fetched once: EVP_aes_256_gcm() would make OpenSSL 3 look the cipher up on every record.
const EVP_CIPHER* aes_256_gcm() {
  static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (!c) throw_openssl("channel: AES-256-GCM is not available");
  return c;
}

// Keyed once (the AES key schedule and GHASH key); each record then sets only its nonce.
ossl::Ptr<EVP_CIPHER_CTX> keyed_ctx(const DirectionKeys& k, bool encrypt) {
  if (k.key.size() != kKeySize || k.iv.size() != kIvSize) throw Error(Errc::kInternal, "channel: record keys are not set");
  ossl::Ptr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_CipherInit_ex2(ctx.get(), aes_256_gcm(), k.key.data(), nullptr, encrypt ? 1 : 0, nullptr) != 1)
    throw_openssl("channel: AES-256-GCM init failed");
  return ctx;
}

void set_nonce(EVP_CIPHER_CTX* ctx, const DirectionKeys& k, uint64_t seq, bool encrypt) {
  uint8_t nonce[kIvSize];
  nonce_for(k, seq, nonce);
  if (EVP_CipherInit_ex2(ctx, nullptr, nullptr, nonce, encrypt ? 1 : 0, nullptr) != 1)
    throw_openssl("channel: AES-256-GCM nonce setup failed");
}

// EVP lengths are int: feed large buffers in pieces.
void update(EVP_CIPHER_CTX* ctx, uint8_t* out, const uint8_t* in, size_t n) {
  while (n > 0) {
    int piece = static_cast<int>(std::min<size_t>(n, INT_MAX / 2));
    int len = 0;
    if (EVP_CipherUpdate(ctx, out, &len, in, piece) != 1) throw_openssl("channel: AES-256-GCM failed");
    if (out) out += piece;
    in += piece;
    n -= static_cast<size_t>(piece);
  }
}

}  // namespace

Bytes transcript_hash(ByteView nonce, ByteView document, ByteView client_public_raw, const ChannelParams& params) {
  Bytes t;
  put_prefixed(t, as_bytes(kLabel));
  put_prefixed(t, nonce);
  put_prefixed(t, document);
  put_prefixed(t, client_public_raw);
  Bytes negotiated{params.version};
  put_u32be(negotiated, params.pad_bucket);
  put_prefixed(t, negotiated);
  Bytes digest(32);
  unsigned int len = 0;
  if (EVP_Digest(t.data(), t.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1) throw_openssl("SHA-256 failed");
  return digest;
}

SessionKeys derive_session_keys(ByteView shared_secret, ByteView transcript, uint32_t pad_bucket) {
  SessionKeys k;
  auto d = [&](const char* purpose, size_t n) { return hkdf_sha256(shared_secret, transcript, as_bytes(info(purpose)), n); };
  k.client_to_enclave = {d("client->enclave key", kKeySize), d("client->enclave iv", kIvSize)};
  k.enclave_to_client = {d("enclave->client key", kKeySize), d("enclave->client iv", kIvSize)};
  SecureBytes id = d("session id", kSessionIdSize);
  k.session_id = to_bytes(id.view());
  k.pad_bucket = pad_bucket;
  return k;
}

DirectionKeys next_keys(const DirectionKeys& current) {
  return {hkdf_sha256(current.key.view(), {}, as_bytes(info("key update key")), kKeySize),
          hkdf_sha256(current.key.view(), {}, as_bytes(info("key update iv")), kIvSize)};
}

class SealedBox::CtxPool {
 public:
  CtxPool(const DirectionKeys& keys, bool encrypt) : keys_(keys), encrypt_(encrypt) {}
  const DirectionKeys& keys() const { return keys_; }

  // A context for one record, returned to the pool when dropped.
  class Lease {
   public:
    Lease(CtxPool& pool, ossl::Ptr<EVP_CIPHER_CTX> ctx) : pool_(pool), ctx_(std::move(ctx)) {}
    ~Lease() { pool_.give_back(std::move(ctx_)); }
    EVP_CIPHER_CTX* get() const { return ctx_.get(); }

   private:
    CtxPool& pool_;
    ossl::Ptr<EVP_CIPHER_CTX> ctx_;
  };
  Lease lease() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        ossl::Ptr<EVP_CIPHER_CTX> c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(*this, std::move(c));
      }
    }
    return Lease(*this, keyed_ctx(keys_, encrypt_));
  }

 private:
  static constexpr size_t kMaxIdle = 8;  // about the threads that seal or open at once
  void give_back(ossl::Ptr<EVP_CIPHER_CTX> c) {
    std::lock_guard lock(mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(c));
  }
  const DirectionKeys& keys_;  // the epoch's own, which outlives the pool
  const bool encrypt_;
  std::mutex mu_;
  std::vector<ossl::Ptr<EVP_CIPHER_CTX>> idle_;
};

namespace {

// seal_record / open_record with a context keyed with k.key (keyed_ctx).
void seal_with(EVP_CIPHER_CTX* ctx, const DirectionKeys& k, uint8_t flags, ByteView session_id, uint64_t seq,
               ByteView payload, uint32_t pad_bucket, Bytes& out) {
  if (session_id.size() != kSessionIdSize) throw Error(Errc::kInternal, "channel: the session id must be 16 bytes");
  if (pad_bucket > kMaxPadBucket) throw Error(Errc::kUsage, "channel: pad bucket above 65536");
  size_t inner = payload.size();
  if (pad_bucket > 0) {
    flags |= kFlagPadded;
    inner = (payload.size() + 1 + pad_bucket - 1) / pad_bucket * pad_bucket;  // room for the 0x80 marker
  }
  out.resize(kHeaderSize + inner + kTagSize);
  uint8_t* h = out.data();
  h[0] = kChannelVersion;
  h[1] = flags;
  std::copy(session_id.begin(), session_id.end(), h + 2);
  for (int i = 0; i < 8; ++i) h[2 + kSessionIdSize + i] = static_cast<uint8_t>(seq >> (56 - 8 * i));
  set_nonce(ctx, k, seq, true);
  update(ctx, nullptr, h, kHeaderSize);
  uint8_t* body = h + kHeaderSize;
  update(ctx, body, payload.data(), payload.size());
  if (flags & kFlagPadded) {
    Bytes tail(inner - payload.size(), 0);
    tail[0] = 0x80;
    update(ctx, body + payload.size(), tail.data(), tail.size());
  }
  int len = 0;
  if (EVP_CipherFinal_ex(ctx, body + inner, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, body + inner) != 1)
    throw_openssl("channel: AES-256-GCM final failed");
}

void open_with(EVP_CIPHER_CTX* ctx, const DirectionKeys& k, ByteView record, SecureBytes& payload) {
  RecordHeader h = parse_record_header(record);
  const size_t inner = record.size() - kHeaderSize - kTagSize;
  set_nonce(ctx, k, h.seq, false);
  payload.resize_for_overwrite(inner);
  try {
    update(ctx, nullptr, record.data(), kHeaderSize);
    update(ctx, payload.data(), record.data() + kHeaderSize, inner);
    uint8_t tag[kTagSize];
    std::copy(record.end() - kTagSize, record.end(), tag);
    int len = 0;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagSize, tag) != 1 || EVP_CipherFinal_ex(ctx, nullptr, &len) != 1)
      throw Error(Errc::kAuth, "channel: record failed authentication (wrong key, session or direction, or tampered)");
    if (h.flags & kFlagPadded) {
      size_t n = inner;
      while (n > 0 && payload.data()[n - 1] == 0) --n;
      if (n == 0 || payload.data()[n - 1] != 0x80) throw Error(Errc::kFormat, "channel: record padding is malformed");
      payload.resize(n - 1);
    }
  } catch (...) {
    payload.clear();
    throw;
  }
}

}  // namespace

void seal_record(const DirectionKeys& k, uint8_t flags, ByteView session_id, uint64_t seq, ByteView payload,
                 uint32_t pad_bucket, Bytes& out) {
  seal_with(keyed_ctx(k, true).get(), k, flags, session_id, seq, payload, pad_bucket, out);
}

void open_record(const DirectionKeys& k, ByteView record, SecureBytes& payload) {
  open_with(keyed_ctx(k, false).get(), k, record, payload);
}

RecordHeader parse_record_header(ByteView record) {
  if (record.size() < kHeaderSize + kTagSize)
    throw Error(Errc::kFormat, "channel: record of " + std::to_string(record.size()) + " bytes is shorter than its header and tag");
  RecordHeader h;
  h.version = record[0];
  h.flags = record[1];
  if (h.version != kChannelVersion)
    throw Error(Errc::kVerify, "channel: record version " + std::to_string(h.version) + "; this side speaks channel version 2");
  if (h.flags & ~(kFlagReply | kFlagKeyUpdate | kFlagPadded))
    throw Error(Errc::kVerify, "channel: record has unknown flags");
  h.session_id = record.subspan(2, kSessionIdSize);
  h.seq = get_u64be(record.data() + 2 + kSessionIdSize);
  return h;
}

// ---------------- SealedBox ----------------

SealedBox::SealedBox(const SessionKeys& keys, Role role, RecordLimits limits)
    : role_(role), limits_(limits), session_id_(keys.session_id), pad_bucket_(keys.pad_bucket) {
  const bool client = role == Role::kClient;
  epoch_ = make_epoch(0, (client ? keys.client_to_enclave : keys.enclave_to_client).clone(),
                      (client ? keys.enclave_to_client : keys.client_to_enclave).clone());
}

std::shared_ptr<SealedBox::Epoch> SealedBox::make_epoch(uint64_t index, DirectionKeys send, DirectionKeys recv) {
  auto e = std::make_shared<Epoch>();
  e->index = index;
  e->send = std::move(send);
  e->recv = std::move(recv);
  e->send_ctx = std::make_shared<CtxPool>(e->send, true);  // refers to e's keys, which do not move
  e->recv_ctx = std::make_shared<CtxPool>(e->recv, false);
  return e;
}

SealedBox::EpochPtr SealedBox::ratchet(const Epoch& e) { return make_epoch(e.index + 1, next_keys(e.send), next_keys(e.recv)); }

uint64_t SealedBox::key_epoch() {
  std::lock_guard lock(mu_);
  return epoch_->index;
}

void SealedBox::remember_unanswered_locked(uint64_t seq, EpochPtr epoch) {
  if (unanswered_.size() >= limits_.max_unanswered) unanswered_.erase(unanswered_.begin());  // its reply is lost
  unanswered_.emplace(seq, std::move(epoch));
}

Bytes SealedBox::seal(ByteView payload, uint64_t* seq) {
  Bytes out;
  seal_into(payload, out, seq);
  return out;
}

void SealedBox::seal_into(ByteView payload, Bytes& out, uint64_t* seq_out) {
  if (role_ == Role::kEnclave) {
    uint64_t seq;
    {
      std::lock_guard lock(mu_);
      if (unanswered_.empty()) throw Error(Errc::kUsage, "channel: no request is waiting for a reply");
      seq = unanswered_.begin()->first;
    }
    seal_reply_into(seq, payload, out);
    if (seq_out) *seq_out = seq;
    return;
  }
  EpochPtr epoch;
  uint64_t seq;
  uint8_t flags = 0;
  {
    // The seq, the key and the counters move together; the AES work runs outside the lock.
    std::lock_guard lock(mu_);
    if (epoch_records_ >= limits_.max_records || epoch_bytes_ >= limits_.max_bytes) {
      epoch_ = ratchet(*epoch_);
      epoch_records_ = 0;
      epoch_bytes_ = 0;
      flags |= kFlagKeyUpdate;
    }
    seq = next_send_++;
    ++epoch_records_;
    epoch_bytes_ += payload.size();
    epoch = epoch_;
    remember_unanswered_locked(seq, epoch);
  }
  seal_with(epoch->send_ctx->lease().get(), epoch->send, flags, session_id_, seq, payload, pad_bucket_, out);
  if (seq_out) *seq_out = seq;
}

void SealedBox::seal_reply_into(uint64_t seq, ByteView payload, Bytes& out) {
  if (role_ != Role::kEnclave) throw Error(Errc::kUsage, "channel: only the enclave seals replies");
  EpochPtr epoch;
  {
    std::lock_guard lock(mu_);
    auto it = unanswered_.find(seq);
    if (it == unanswered_.end()) throw Error(Errc::kUsage, "channel: request " + std::to_string(seq) + " has no reply pending");
    epoch = std::move(it->second);
    unanswered_.erase(it);
  }
  seal_with(epoch->send_ctx->lease().get(), epoch->send, kFlagReply, session_id_, seq, payload, pad_bucket_, out);
}

SecureBytes SealedBox::open(ByteView record, uint64_t* seq) {
  SecureBytes payload;
  open_into(record, payload, seq);
  return payload;
}

SecureBytes SealedBox::open_reply(ByteView record, uint64_t seq) {
  if (role_ != Role::kClient) throw Error(Errc::kUsage, "channel: only the client opens replies");
  SecureBytes payload;
  accept_reply(record, &seq, payload, nullptr);
  return payload;
}

void SealedBox::open_into(ByteView record, SecureBytes& payload, uint64_t* seq) {
  payload.clear();
  if (role_ == Role::kEnclave) accept_request(record, payload, seq, true);
  else accept_reply(record, nullptr, payload, seq);
}

bool SealedBox::try_open_into(ByteView record, SecureBytes& payload, uint64_t* seq) {
  if (role_ != Role::kEnclave) throw Error(Errc::kUsage, "channel: only the enclave accepts requests");
  payload.clear();
  return accept_request(record, payload, seq, false);
}

RecordHeader SealedBox::check_header(ByteView record, bool want_reply) const {
  RecordHeader h = parse_record_header(record);
  if (CRYPTO_memcmp(h.session_id.data(), session_id_.data(), kSessionIdSize) != 0)
    throw Error(Errc::kVerify, "channel: record belongs to another session");
  if (((h.flags & kFlagReply) != 0) != want_reply)
    throw Error(Errc::kVerify, want_reply ? "channel: expected a reply, got a request (wrong direction)"
                                          : "channel: expected a request, got a reply (wrong direction)");
  return h;
}

bool SealedBox::accept_request(ByteView record, SecureBytes& payload, uint64_t* seq_out, bool may_wait) {
  RecordHeader h = check_header(record, false);
  auto replayed = [&] {
    return Error(Errc::kVerify, "channel: replayed or reordered request (seq " + std::to_string(h.seq) + ", expected " +
                                    std::to_string(next_recv_) + ")");
  };
  EpochPtr base, keys;
  {
    std::lock_guard lock(mu_);
    if (failed_) throw Error(Errc::kVerify, "channel: a request never arrived; the session is over, open a new channel");
    if (h.seq < next_recv_) throw replayed();
    if (!may_wait && h.seq > next_recv_) return false;  // its turn has not come: nothing taken
    base = epoch_;
  }
  // Workers decrypt concurrently, under the keys current now (a predecessor's key update is
  // caught below), then take their turn: records are accepted in the order the connection
  // delivered them (the client sends in seq order).
  keys = (h.flags & kFlagKeyUpdate) ? ratchet(*base) : base;
  bool opened = true;
  try {
    open_with(keys->recv_ctx->lease().get(), keys->recv, record, payload);
  } catch (const Error& e) {
    if (e.code() != Errc::kAuth) throw;
    opened = false;
  }
  std::unique_lock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits_.order_wait_ms);
  while (!failed_ && next_recv_ < h.seq) {
    ++waiters_;
    const bool timed_out = turn_.wait_until(lock, deadline) == std::cv_status::timeout;
    --waiters_;
    if (timed_out && !failed_ && next_recv_ < h.seq) {
      failed_ = true;
      turn_.notify_all();
      payload.clear();
      throw Error(Errc::kVerify, "channel: request " + std::to_string(next_recv_) + " never arrived; the session is over");
    }
  }
  if (failed_) {
    payload.clear();
    throw Error(Errc::kVerify, "channel: a request never arrived; the session is over, open a new channel");
  }
  if (h.seq < next_recv_) {  // a copy of a request accepted meanwhile
    payload.clear();
    throw replayed();
  }
  if (epoch_ != base) {  // a predecessor updated the keys after this record was decrypted: rare
    keys = (h.flags & kFlagKeyUpdate) ? ratchet(*epoch_) : epoch_;
    try {
      open_with(keys->recv_ctx->lease().get(), keys->recv, record, payload);
      opened = true;
    } catch (const Error& e) {
      if (e.code() != Errc::kAuth) throw;
      opened = false;
    }
  }
  // A forgery is refused without taking the seq: the genuine record may still come.
  if (!opened) throw Error(Errc::kAuth, "channel: record failed authentication (wrong key, session or direction, or tampered)");
  const bool update = (h.flags & kFlagKeyUpdate) != 0;
  if (!update && epoch_records_ >= limits_.max_records) {
    payload.clear();
    throw Error(Errc::kVerify, "channel: the client did not update its keys after " + std::to_string(epoch_records_) + " records");
  }
  epoch_ = keys;
  epoch_records_ = (update ? 0 : epoch_records_) + 1;
  epoch_bytes_ = (update ? 0 : epoch_bytes_) + payload.size();
  remember_unanswered_locked(h.seq, keys);
  ++next_recv_;
  if (waiters_ > 0) turn_.notify_all();
  if (seq_out) *seq_out = h.seq;
  return true;
}

void SealedBox::accept_reply(ByteView record, const uint64_t* expected, SecureBytes& payload, uint64_t* seq_out) {
  RecordHeader h = check_header(record, true);
  if (expected && h.seq != *expected)
    throw Error(Errc::kVerify, "channel: reply " + std::to_string(h.seq) + " answers another request than " +
                                   std::to_string(*expected));
  EpochPtr epoch;
  {
    std::lock_guard lock(mu_);
    auto it = unanswered_.find(h.seq);
    if (it == unanswered_.end())
      throw Error(Errc::kVerify, "channel: replayed or unexpected reply (seq " + std::to_string(h.seq) + ")");
    epoch = it->second;
  }
  open_with(epoch->recv_ctx->lease().get(), epoch->recv, record, payload);  // a forgery leaves the request waiting for its real reply
  std::lock_guard lock(mu_);
  if (unanswered_.erase(h.seq) == 0) {
    payload.clear();
    throw Error(Errc::kVerify, "channel: replayed reply (seq " + std::to_string(h.seq) + ")");
  }
  if (epoch == epoch_) epoch_bytes_ += payload.size();
}

}  // namespace shield_nitro::channel
