// Byte containers and encodings used across the library.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shield_nitro {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// Views and copies between text and bytes; as_bytes views s (valid while s lives).
inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
// Copies of b as text and as Bytes.
inline std::string to_string(ByteView b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
inline Bytes to_bytes(ByteView b) { return {b.begin(), b.end()}; }

// Lower-case hex.
std::string hex_encode(ByteView data);
// Accepts upper or lower case; throws Error(kFormat) on odd length or a non-hex character.
Bytes hex_decode(std::string_view hex);

// Standard base64 with padding (RFC 4648 §4), via OpenSSL.
std::string base64_encode(ByteView data);
// Strict: padding required, no whitespace inside; throws Error(kFormat) otherwise.
// Whitespace (CR/LF/space/tab) at either end is ignored.
Bytes base64_decode(std::string_view text);

// Constant-time equality (CRYPTO_memcmp); false when lengths differ.
bool ct_equal(ByteView a, ByteView b);

// Big-endian helpers.
void put_u16be(Bytes& out, uint16_t v);
void put_u32be(Bytes& out, uint32_t v);
void put_u64be(Bytes& out, uint64_t v);
uint16_t get_u16be(const uint8_t* p);
uint32_t get_u32be(const uint8_t* p);
uint64_t get_u64be(const uint8_t* p);

}  // namespace shield_nitro
