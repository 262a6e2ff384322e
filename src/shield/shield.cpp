#include "shield_nitro/shield/shield.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/shield/kdf.h"
#include "message_random.h"
#include "shield_state.h"

namespace shield_nitro::shield {
namespace {

constexpr size_t kInnerHeader = 9;  // timestamp_ms (u64 LE) || pad_len
constexpr uint32_t kMinPadding = 32;
constexpr uint32_t kMaxPadding = 128;
constexpr size_t kPasswordHeader = 2 + kSaltSize;  // version || suite || salt = the AAD
constexpr size_t kKeyHeader = 2;                   // version || suite = the AAD
constexpr size_t kMergedHead = 16;  // two-part messages: a head up to this size shares an update

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

[[noreturn]] void auth_failed() { throw Error(Errc::kAuth, "authentication failed"); }

void put_u64le(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t get_u64le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void check_freshness(const ShieldOptions& o, uint64_t timestamp_ms) {
  if (!o.max_age_ms) return;
  __int128 age = static_cast<__int128>(o.clock->now_ms()) - static_cast<__int128>(timestamp_ms);
  if (age < -static_cast<__int128>(o.future_skew_ms))
    throw Error(Errc::kExpired, "message timestamp is " + std::to_string(static_cast<long long>(-age)) +
                                    " ms in the future (more than the allowed " + std::to_string(o.future_skew_ms) +
                                    " ms clock skew)");
  if (age > static_cast<__int128>(*o.max_age_ms))
    throw Error(Errc::kExpired, "message expired: " + std::to_string(static_cast<long long>(age)) +
                                    " ms old, the freshness window is " + std::to_string(*o.max_age_ms) + " ms");
}

// Spec §7 steps 8-10, once the tag verified.
void check_inner(size_t head, bool pad_ok, size_t pad_len) {
  if (head < kInnerHeader) throw Error(Errc::kFormat, "malformed Shield message: inner plaintext shorter than 9 bytes");
  if (!pad_ok)
    throw Error(Errc::kFormat, "malformed Shield message: pad_len " + std::to_string(pad_len) +
                                   (pad_len >= kMinPadding && pad_len <= kMaxPadding ? " exceeds the message"
                                                                                      : " not in [32, 128]"));
}

// Checks §7 steps 1-4 and returns the header length (the AAD).
size_t check_header(ByteView m) {
  if (m.empty()) throw Error(Errc::kFormat, "empty input: not a Shield message");
  uint8_t version = m[0];
  if (version != kVersionPassword && version != kVersionKey)
    throw Error(Errc::kUnsupported, "unsupported Shield version " + hex_byte(version) +
                                        " (this build reads v4: 0x03 password mode, 0x13 key mode)");
  size_t header = version == kVersionPassword ? kPasswordHeader : kKeyHeader;
  size_t minimum = header + kNonceSize + kTagSize;
  if (m.size() < minimum)
    throw Error(Errc::kFormat, "Shield message truncated: " + std::to_string(m.size()) + " bytes, a " +
                                   (version == kVersionPassword ? "password" : "key") + "-mode message has at least " +
                                   std::to_string(minimum));
  if (!is_known_suite(m[1]))
    throw Error(Errc::kUnsupported,
                "unsupported Shield suite " + hex_byte(m[1]) + " (known: 0x01 aes-256-gcm, 0x02 chacha20-poly1305)");
  return header;
}

// The instance's own key. Key mode sets it at construction and never changes it, so it is
// read without the lock or a reference-count round trip (one Shield shared by every worker
// thread would otherwise serialise on both); password mode derives it once, under the lock.
const detail::KeyEntry& own_key_of(detail::ShieldState& st, std::shared_ptr<const detail::KeyEntry>& hold) {
  if (!st.password_mode) return *st.own;
  hold = st.own_key();
  return *hold;
}

}  // namespace

namespace detail {

std::shared_ptr<const KeyEntry> ShieldState::own_key() {
  std::lock_guard<std::mutex> lock(own_mu);
  if (!own)
    own = std::make_shared<const KeyEntry>(
        derive_password_master(password.view(), own_salt, service, options.pbkdf2_iterations));
  return own;
}

std::shared_ptr<const KeyEntry> ShieldState::key_for_salt(const Salt& salt, bool& fresh) {
  fresh = false;
  if (salt == own_salt) return own_key();
  if (auto hit = cache.find(salt)) return hit;
  fresh = true;
  return std::make_shared<const KeyEntry>(
      derive_password_master(password.view(), salt, service, options.pbkdf2_iterations));
}

}  // namespace detail

ShieldKey ShieldKey::generate(Random& rng) {
  SecureBytes b(kKeySize);
  rng.fill(b.span());
  return ShieldKey(std::move(b));
}

ShieldKey ShieldKey::from_bytes(ByteView key) {
  if (key.size() != kKeySize)
    throw Error(Errc::kUsage, "a Shield key is 32 bytes, got " + std::to_string(key.size()));
  return ShieldKey(SecureBytes(key));
}

// A null clock is the system clock. A null random stays null: encrypt then draws from the
// buffered per-thread CSPRNG (message_random.h), and keys and salts from os_random().
static ShieldOptions resolve(ShieldOptions o) {
  if (!o.clock) o.clock = &system_clock();
  return o;
}

Shield Shield::with_password(ByteView password, std::string_view service, ShieldOptions options) {
  if (options.pbkdf2_iterations < 1)
    throw Error(Errc::kUsage, "PBKDF2 needs at least 1 iteration, got " + std::to_string(options.pbkdf2_iterations));
  auto st = std::make_shared<detail::ShieldState>(resolve(options));
  st->password_mode = true;
  st->password = SecureBytes(password);
  st->service = std::string(service);
  (options.random ? *options.random : os_random()).fill(st->own_salt);
  return Shield(std::move(st));
}

Shield Shield::with_key(const ShieldKey& key, ShieldOptions options) {
  auto st = std::make_shared<detail::ShieldState>(resolve(options));
  st->own = std::make_shared<const detail::KeyEntry>(SecureBytes(key.expose_secret()));
  return Shield(std::move(st));
}

Suite Shield::suite() const { return state_->options.suite; }
bool Shield::password_mode() const { return state_->password_mode; }
size_t Shield::cached_salts() const { return state_->cache.size(); }

Bytes Shield::encrypt(ByteView plaintext) const {
  Bytes out;
  encrypt_into(plaintext, out);
  return out;
}

void Shield::encrypt_into(ByteView plaintext, Bytes& out) const { encrypt_into({}, plaintext, out); }

void Shield::encrypt_into(ByteView head, ByteView body_in, Bytes& out) const {
  detail::ShieldState& st = *state_;
  std::shared_ptr<const detail::KeyEntry> held;
  const detail::KeyEntry& key = own_key_of(st, held);
  Random& rng = st.options.random ? *st.options.random : detail::message_random();
  const bool pw = st.password_mode;
  const size_t header = pw ? kPasswordHeader : kKeyHeader;

  // The nonce is drawn first, then pad_len and padding (the order the vectors script).
  uint8_t nonce[kNonceSize];
  rng.fill(nonce);
  uint8_t inner[kInnerHeader + kMaxPadding + kMergedHead];
  const uint32_t pad_len = rng.uniform_small(kMinPadding, kMaxPadding);
  put_u64le(inner, static_cast<uint64_t>(st.options.clock->now_ms()));
  inner[8] = static_cast<uint8_t>(pad_len);
  rng.fill({inner + kInnerHeader, pad_len});
  const size_t inner_len = kInnerHeader + pad_len;

  const size_t plain_len = head.size() + body_in.size();
  out.resize(header + kNonceSize + inner_len + plain_len + kTagSize);  // every byte set below
  out[0] = pw ? kVersionPassword : kVersionKey;
  out[1] = static_cast<uint8_t>(st.options.suite);
  if (pw) std::memcpy(out.data() + 2, st.own_salt.data(), kSaltSize);
  std::memcpy(out.data() + header, nonce, kNonceSize);

  uint8_t* body = out.data() + header + kNonceSize;
  detail::AeadOp op(key.aead, st.options.suite, true, {nonce, kNonceSize}, {out.data(), header});
  // A small head rides in the same AEAD update as the inner header (each update call has a
  // fixed cost that is noticeable next to a 1 KiB payload).
  const bool merged = head.size() <= kMergedHead;
  if (merged && !head.empty()) std::memcpy(inner + inner_len, head.data(), head.size());
  op.update({inner, inner_len + (merged ? head.size() : 0)}, body);
  if (!merged) op.update(head, body + inner_len);
  op.update(body_in, body + inner_len + head.size());
  op.finish_seal(body + inner_len + plain_len);
  secure_wipe(inner, sizeof inner);
}

SecureBytes Shield::decrypt(ByteView message) const {
  SecureBytes plaintext;
  decrypt_into(message, plaintext);
  return plaintext;
}

void Shield::decrypt_into(ByteView message, SecureBytes& plaintext) const {
  decrypt_split_into(message, {}, plaintext);
}

void Shield::decrypt_split_into(ByteView message, std::span<uint8_t> head_out, SecureBytes& plaintext) const {
  detail::ShieldState& st = *state_;
  const size_t header = check_header(message);
  const bool pw_message = message[0] == kVersionPassword;
  if (pw_message && !st.password_mode)
    throw Error(Errc::kFormat, "password-mode message (0x03), but this Shield was built with a key");

  std::shared_ptr<const detail::KeyEntry> key;
  bool fresh = false;
  detail::Salt salt{};
  if (pw_message) {
    std::memcpy(salt.data(), message.data() + 2, kSaltSize);
    key = st.key_for_salt(salt, fresh);
  }
  const detail::KeyEntry& entry = pw_message ? *key : own_key_of(st, key);

  const Suite suite = static_cast<Suite>(message[1]);
  ByteView nonce = message.subspan(header, kNonceSize);
  ByteView body = message.subspan(header + kNonceSize);
  ByteView ct = body.first(body.size() - kTagSize);
  detail::AeadOp op(entry.aead, suite, false, nonce, message.first(header));

  // Decrypt the inner header first to learn where the message starts, so the plaintext
  // lands in its own buffer without a second copy. Nothing leaves before the tag verifies.
  uint8_t inner[kInnerHeader + kMaxPadding + kMergedHead];
  const size_t head = std::min(ct.size(), kInnerHeader);
  op.update(ct.first(head), inner);
  size_t pad_len = head == kInnerHeader ? inner[8] : 0;
  const bool pad_ok = head == kInnerHeader && pad_len >= kMinPadding && pad_len <= kMaxPadding &&
                      kInnerHeader + pad_len <= ct.size();
  const size_t skip = pad_ok ? kInnerHeader + pad_len : head;
  // A plaintext shorter than head_out fills what it can; that is refused once the tag verified.
  const size_t in_head = std::min(head_out.size(), ct.size() - skip);
  if (in_head <= kMergedHead) {  // padding and a small head in one update, as encrypt does
    op.update(ct.subspan(head, skip - head + in_head), inner + head);
    if (in_head) std::memcpy(head_out.data(), inner + skip, in_head);
  } else {
    op.update(ct.subspan(head, skip - head), inner + head);
    op.update(ct.subspan(skip, in_head), head_out.data());
  }
  plaintext.resize_for_overwrite(ct.size() - skip - in_head);  // every byte written below or wiped
  op.update(ct.subspan(skip + in_head), plaintext.data());
  auto fail = [&] {
    secure_wipe(inner, sizeof inner);
    secure_wipe(head_out.data(), head_out.size());
    plaintext.clear();
  };
  if (!op.finish_open(body.subspan(ct.size()))) {
    fail();
    auth_failed();
  }
  if (fresh) st.cache.insert(salt, key);

  const uint64_t timestamp = get_u64le(inner);
  secure_wipe(inner, sizeof inner);
  try {
    check_inner(head, pad_ok, pad_len);
    check_freshness(st.options, timestamp);
    if (in_head < head_out.size())
      throw Error(Errc::kFormat, "Shield message plaintext is " + std::to_string(in_head) + " bytes, shorter than its " +
                                     std::to_string(head_out.size()) + "-byte header");
  } catch (const Error&) {
    fail();
    throw;
  }
}

}  // namespace shield_nitro::shield
