// Telling a Shield v4 message from a stream container by its first bytes, before any
// cryptography, so a single `decrypt` entry point handles both.
#pragma once

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::shield {

enum class Format {
  kUnknown,     // neither (or empty)
  kV4Password,  // first byte 0x03
  kV4Key,       // first byte 0x13
  kStream,      // starts with the stream magic "SNST"
};

// Bytes needed to tell every format apart.
inline constexpr size_t kDetectBytes = 4;

// Looks at most at the first kDetectBytes of prefix; a shorter prefix that could still
// become a stream magic yields kUnknown.
Format detect_format(ByteView prefix);

}  // namespace shield_nitro::shield
