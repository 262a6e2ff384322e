// The stream container header (docs/stream-format.md §2): parsed from untrusted bytes as
// they arrive, and serialized verbatim as every chunk's associated data.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/shield/suite.h"

namespace shield_nitro::shield::detail {

inline constexpr std::array<uint8_t, 4> kStreamMagic = {'S', 'N', 'S', 'T'};
inline constexpr uint8_t kStreamVersion = 0x01;
inline constexpr size_t kStreamSaltSize = 32;
inline constexpr size_t kNoncePrefixSize = 7;
// magic 4, version 1, suite 1, mode 1, chunk size 4, stream salt 32, nonce prefix 7.
inline constexpr size_t kStreamFixedHeader = 50;
// Bytes that decide the header's full length (through the mode byte).
inline constexpr size_t kStreamModeOffset = 6;

struct StreamHeader {
  Suite suite = Suite::kAes256Gcm;
  uint8_t mode = 0;  // 0x03 password (a PBKDF2 salt follows) or 0x13 key, as in v4
  uint32_t chunk_size = 0;
  std::array<uint8_t, kStreamSaltSize> stream_salt{};
  std::array<uint8_t, kNoncePrefixSize> nonce_prefix{};
  std::array<uint8_t, 16> kdf_salt{};  // password mode only
  Bytes bytes;                         // the serialized header: the AAD of every chunk

  bool password_mode() const;
  // Fills bytes from the fields.
  void serialize();
};

// The header at the start of prefix, or nullopt when more bytes are needed. Throws
// kFormat / kUnsupported as soon as the bytes seen so far cannot start a valid header.
std::optional<StreamHeader> parse_stream_header(ByteView prefix, uint32_t max_chunk_size);

}  // namespace shield_nitro::shield::detail
