#include "stream_crypto.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "shield_nitro/core/error.h"
#include "shield_nitro/shield/kdf.h"

namespace shield_nitro::shield::detail {
namespace {

constexpr uint64_t kMaxChunks = uint64_t{1} << 32;  // the nonce counter is 32 bits
// How far either side of a failed chunk's index diagnose() looks for the chunk it really is.
constexpr uint64_t kDiagnoseWindow = 8;

std::string chunk_prefix(uint64_t index) { return "stream chunk " + std::to_string(index) + ": "; }

[[noreturn]] void truncated(uint64_t index, uint64_t have) {
  throw Error(Errc::kAuth, chunk_prefix(index) + "authentication failed: truncated, the stream ends " +
                               std::to_string(have) + " bytes into this chunk, before its 16-byte tag");
}

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
  if (record.size() < kTagSize) truncated(index, record.size());
  if (record.size() > record_size())
    throw Error(Errc::kAuth, chunk_prefix(index) + "authentication failed: " + std::to_string(record.size()) +
                                 " bytes, more than a " + std::to_string(record_size()) + "-byte record");
  uint8_t nonce[kNonceSize];
  nonce_for(index, last, nonce);
  if (!key_->open(header_.suite, {nonce, kNonceSize}, header_.bytes, record, out))
    throw Error(Errc::kAuth, chunk_prefix(index) + "authentication failed: " + diagnose(index, last, record, out));
  if (!remembered_.load(std::memory_order_relaxed)) remember_key();
}

// The record's tag failed at (index, last). The nonce binds both, so if the record opens at
// another position or with the other final flag, the chunk is genuine and only misplaced:
// that tells a reordering, a cut at a chunk boundary or data appended after the final chunk
// from an altered chunk. Only on failure, and bounded (2 * (2 * kDiagnoseWindow + 1) opens).
std::string StreamCrypto::diagnose(uint64_t index, bool last, ByteView record, uint8_t* scratch) const {
  const uint64_t from = index > kDiagnoseWindow ? index - kDiagnoseWindow : 0;
  const uint64_t to = std::min(index + kDiagnoseWindow + 1, kMaxChunks);
  std::optional<std::pair<uint64_t, bool>> found;
  uint8_t nonce[kNonceSize];
  for (uint64_t j = from; j < to && !found; ++j)
    for (bool flag : {false, true}) {
      if (j == index && flag == last) continue;
      nonce_for(j, flag, nonce);
      if (key_->open(header_.suite, {nonce, kNonceSize}, header_.bytes, record, scratch)) {
        found = {j, flag};
        break;
      }
    }
  OPENSSL_cleanse(scratch, record.size() - kTagSize);  // a misplaced chunk's plaintext is never output
  if (!found) {
    if (last && record.size() < record_size())
      return "the tag does not verify (the stream was cut inside this final chunk, or the chunk was altered)";
    return "the tag does not verify (the chunk was altered, or the key or header is wrong)";
  }
  auto [j, flag] = *found;
  if (j == index)
    return flag ? "data was appended: this is the stream's final chunk, yet more follows it"
                : "truncated: the stream ends after this chunk, which is not its final one";
  std::string what = "this position holds chunk " + std::to_string(j) + (flag ? ", the final one" : "");
  return (j > index ? "chunks missing or reordered: " : "chunks duplicated or reordered: ") + what;
}

void StreamCrypto::remember_key() const {
  if (remembered_.exchange(true)) return;
  state_->cache.insert(header_.kdf_salt, unconfirmed_);
}

StreamLayout StreamLayout::of_container(size_t header_size, uint32_t chunk_size, uint64_t total_size) {
  StreamLayout l;
  l.header_size = header_size;
  l.chunk_size = chunk_size;
  if (total_size < header_size + kTagSize) truncated(0, total_size < header_size ? 0 : total_size - header_size);
  const uint64_t body = total_size - header_size;
  const uint64_t record = uint64_t{chunk_size} + kTagSize;
  l.count = (body + record - 1) / record;
  l.last_record = body - (l.count - 1) * record;
  if (l.last_record < kTagSize) truncated(l.count - 1, l.last_record);
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
