// The AEAD suites Shield v4 and the stream container can use, named by their wire byte.
#pragma once

#include <cstdint>
#include <string_view>

namespace shield_nitro::shield {

enum class Suite : uint8_t {
  kAes256Gcm = 0x01,         // default; AES-NI makes it the fastest on Nitro hosts
  kChaCha20Poly1305 = 0x02,  // constant time without AES hardware
};

// True for a byte that names a known suite; parsers check this before casting.
bool is_known_suite(uint8_t wire);
// "aes-256-gcm" or "chacha20-poly1305".
const char* suite_name(Suite s);
// Parses suite_name() output; throws Error(kUsage) naming the accepted values otherwise.
Suite parse_suite(std::string_view name);

}  // namespace shield_nitro::shield
