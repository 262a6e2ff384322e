// HKDF-SHA256 (RFC 5869), the one implementation behind the Shield key schedule and the
// channel's session keys. Results are SecureBytes: they are keys.
#pragma once

#include <cstddef>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro {

// Extract (with salt; an empty salt means HashLen zero bytes, as the RFC says) then Expand to
// length bytes (1 to 255 * 32; other lengths throw Error(kUsage)).
SecureBytes hkdf_sha256(ByteView ikm, ByteView salt, ByteView info, size_t length);

// Expand only: prk is already a pseudorandom key (Shield v4 derives its AEAD key this way).
SecureBytes hkdf_sha256_expand(ByteView prk, ByteView info, size_t length);

}  // namespace shield_nitro
