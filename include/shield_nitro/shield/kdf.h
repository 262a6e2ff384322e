// The key derivations of Shield v4 (spec §4) and of the stream container.
//
// Exposed so conformance tests can check each step against the vectors, and so formats that
// layer on Shield derive their keys the same way. Every result is a 32-byte SecureBytes.
#pragma once

#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::shield {

inline constexpr int kPbkdf2Iterations = 600000;
inline constexpr std::string_view kAeadInfo = "shield/aead/v4";
inline constexpr std::string_view kStreamInfo = "shield-nitro/stream/v1";

// Password-mode master key: PBKDF2-HMAC-SHA256(password, salt || service, iterations, 32).
// The salt comes first: the service is a domain separator. About 0.3 s at 600000 iterations.
SecureBytes derive_password_master(ByteView password, ByteView salt, std::string_view service,
                                   int iterations = kPbkdf2Iterations);

// AEAD key of a v4 message: HKDF-SHA256-Expand(PRK = master, info = "shield/aead/v4", 32).
// Expand only, no Extract step: that is what makes the vectors match.
SecureBytes derive_aead_key(ByteView master);

// Stream container key: full HKDF-SHA256 (Extract with the per-stream salt, then Expand with
// "shield-nitro/stream/v1"), so a stream never shares a key with a v4 message or another stream.
SecureBytes derive_stream_key(ByteView master, ByteView stream_salt);

}  // namespace shield_nitro::shield
