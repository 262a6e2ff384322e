#include "stream_header.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/shield/shield.h"
#include "shield_nitro/shield/stream.h"

namespace shield_nitro::shield::detail {
namespace {

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

// Rejects the bytes seen so far, field by field, before the whole header has arrived.
void check_prefix(ByteView p, uint32_t max_chunk_size) {
  size_t m = std::min(p.size(), kStreamMagic.size());
  if (!std::equal(p.begin(), p.begin() + static_cast<long>(m), kStreamMagic.begin()))
    throw Error(Errc::kFormat, "not a shield-nitro stream (bad magic)");
  if (p.size() > 4 && p[4] != kStreamVersion)
    throw Error(Errc::kUnsupported, "unsupported stream version " + hex_byte(p[4]) + " (this build reads 0x01)");
  if (p.size() > 5 && !is_known_suite(p[5]))
    throw Error(Errc::kUnsupported,
                "unsupported stream suite " + hex_byte(p[5]) + " (known: 0x01 aes-256-gcm, 0x02 chacha20-poly1305)");
  if (p.size() > 6 && p[6] != kVersionPassword && p[6] != kVersionKey)
    throw Error(Errc::kFormat, "unknown stream key mode " + hex_byte(p[6]) + " (0x03 password, 0x13 key)");
  if (p.size() >= 11) {
    uint32_t chunk = get_u32be(p.data() + 7);
    if (chunk < kStreamMinChunkSize || chunk > kStreamMaxChunkSize)
      throw Error(Errc::kFormat, "stream chunk size " + std::to_string(chunk) + " not in [" +
                                     std::to_string(kStreamMinChunkSize) + ", " + std::to_string(kStreamMaxChunkSize) + "]");
    if (chunk > max_chunk_size)
      throw Error(Errc::kPolicy, "stream chunk size " + std::to_string(chunk) + " exceeds the allowed " +
                                     std::to_string(max_chunk_size));
  }
}

}  // namespace

bool StreamHeader::password_mode() const { return mode == kVersionPassword; }

void StreamHeader::serialize() {
  bytes.assign(kStreamMagic.begin(), kStreamMagic.end());
  bytes.push_back(kStreamVersion);
  bytes.push_back(static_cast<uint8_t>(suite));
  bytes.push_back(mode);
  put_u32be(bytes, chunk_size);
  bytes.insert(bytes.end(), stream_salt.begin(), stream_salt.end());
  bytes.insert(bytes.end(), nonce_prefix.begin(), nonce_prefix.end());
  if (password_mode()) bytes.insert(bytes.end(), kdf_salt.begin(), kdf_salt.end());
}

std::optional<StreamHeader> parse_stream_header(ByteView prefix, uint32_t max_chunk_size) {
  check_prefix(prefix.first(std::min(prefix.size(), kStreamFixedHeader)), max_chunk_size);
  if (prefix.size() <= kStreamModeOffset) return std::nullopt;
  const bool pw = prefix[kStreamModeOffset] == kVersionPassword;
  const size_t total = kStreamFixedHeader + (pw ? 16 : 0);
  if (prefix.size() < total) return std::nullopt;

  StreamHeader h;
  ByteReader r(prefix.first(total));
  ByteView magic, salt, nonce_prefix, kdf_salt;
  uint8_t version = 0, suite = 0;
  r.take(4, magic);
  r.u8(version);
  r.u8(suite);
  r.u8(h.mode);
  r.u32be(h.chunk_size);
  r.take(kStreamSaltSize, salt);
  r.take(kNoncePrefixSize, nonce_prefix);
  if (pw && r.take(16, kdf_salt)) std::copy(kdf_salt.begin(), kdf_salt.end(), h.kdf_salt.begin());
  h.suite = static_cast<Suite>(suite);
  std::copy(salt.begin(), salt.end(), h.stream_salt.begin());
  std::copy(nonce_prefix.begin(), nonce_prefix.end(), h.nonce_prefix.begin());
  h.serialize();
  return h;
}

}  // namespace shield_nitro::shield::detail
