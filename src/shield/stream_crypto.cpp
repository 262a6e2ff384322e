#include "stream_crypto.h"

#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/shield/kdf.h"

namespace shield_nitro::shield::detail {
namespace {

constexpr uint64_t kMaxChunks = uint64_t{1} << 32;  // the nonce counter is 32 bits

[[noreturn]] void truncated() { throw Error(Errc::kAuth, "authentication failed (stream truncated)"); }

}  // namespace

StreamCrypto::StreamCrypto(StreamHeader header, const KeyEntry& master_key)
    : header_(std::move(header)),
      key_(std::make_unique<AeadKey>(derive_stream_key(master_key.master.view(), header_.stream_salt))) {}

std::unique_ptr<StreamCrypto> StreamCrypto::for_encrypt(const Shield& shield, uint32_t chunk_size, Random& rng) {
  auto st = ShieldAccess::state(shield);
  StreamHeader h;
  h.suite = shield.suite();
  h.mode = st->password_mode ? kVersionPassword : kVersionKey;
  h.chunk_size = chunk_size;
  rng.fill(h.stream_salt);
  rng.fill(h.nonce_prefix);
  h.kdf_salt = st->own_salt;
  h.serialize();
  return std::unique_ptr<StreamCrypto>(new StreamCrypto(std::move(h), *st->own_key()));
}

std::unique_ptr<StreamCrypto> StreamCrypto::for_decrypt(const Shield& shield, StreamHeader header) {
  auto st = ShieldAccess::state(shield);
  if (header.password_mode() != st->password_mode)
    throw Error(Errc::kFormat, std::string(header.password_mode() ? "password" : "key") +
                                   "-mode stream, but this Shield was built with a " +
                                   (st->password_mode ? "password" : "key"));
  if (!st->password_mode) return std::unique_ptr<StreamCrypto>(new StreamCrypto(std::move(header), *st->own_key()));
  bool fresh = false;
  auto entry = st->key_for_salt(header.kdf_salt, fresh);
  auto crypto = std::unique_ptr<StreamCrypto>(new StreamCrypto(std::move(header), *entry));
  if (fresh) {
    crypto->state_ = st;
    crypto->unconfirmed_ = std::move(entry);
    crypto->remembered_ = false;
  }
  return crypto;
}

void StreamCrypto::nonce_for(uint64_t index, bool last, uint8_t* nonce) const {
  if (index >= kMaxChunks) throw Error(Errc::kFormat, "stream has more than 2^32 chunks; use a bigger chunk size");
  std::memcpy(nonce, header_.nonce_prefix.data(), kNoncePrefixSize);
  for (int i = 0; i < 4; ++i) nonce[kNoncePrefixSize + i] = static_cast<uint8_t>(index >> (24 - 8 * i));
  nonce[kNonceSize - 1] = last ? 1 : 0;
}

void StreamCrypto::seal(uint64_t index, bool last, ByteView plaintext, uint8_t* out) const {
  uint8_t nonce[kNonceSize];
  nonce_for(index, last, nonce);
  key_->seal(header_.suite, {nonce, kNonceSize}, header_.bytes, plaintext, out);
}

void StreamCrypto::open(uint64_t index, bool last, ByteView record, uint8_t* out) const {
  if (record.size() < kTagSize) truncated();
  if (record.size() > record_size()) throw Error(Errc::kAuth, "authentication failed (oversized chunk)");
  uint8_t nonce[kNonceSize];
  nonce_for(index, last, nonce);
  if (!key_->open(header_.suite, {nonce, kNonceSize}, header_.bytes, record, out))
    throw Error(Errc::kAuth, "authentication failed");
  if (!remembered_.load(std::memory_order_relaxed)) remember_key();
}

void StreamCrypto::remember_key() const {
  if (remembered_.exchange(true)) return;
  state_->cache.insert(header_.kdf_salt, unconfirmed_);
}

StreamLayout StreamLayout::of_container(size_t header_size, uint32_t chunk_size, uint64_t total_size) {
  StreamLayout l;
  l.header_size = header_size;
  l.chunk_size = chunk_size;
  if (total_size < header_size + kTagSize) truncated();
  const uint64_t body = total_size - header_size;
  const uint64_t record = uint64_t{chunk_size} + kTagSize;
  l.count = (body + record - 1) / record;
  l.last_record = body - (l.count - 1) * record;
  if (l.last_record < kTagSize) truncated();
  if (l.count > kMaxChunks) throw Error(Errc::kFormat, "stream has more than 2^32 chunks");
  return l;
}

StreamLayout StreamLayout::of_plaintext(size_t header_size, uint32_t chunk_size, uint64_t plaintext_size) {
  StreamLayout l;
  l.header_size = header_size;
  l.chunk_size = chunk_size;
  l.count = plaintext_size == 0 ? 1 : (plaintext_size + chunk_size - 1) / chunk_size;
  l.last_record = plaintext_size - (l.count - 1) * chunk_size + kTagSize;
  if (l.count > kMaxChunks) throw Error(Errc::kUsage, "stream would have more than 2^32 chunks; use a bigger chunk size");
  return l;
}

}  // namespace shield_nitro::shield::detail
