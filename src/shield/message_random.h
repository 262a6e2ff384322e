// Randomness for per-message public values (nonces, padding) on the production path.
//
// OpenSSL 3's RAND_bytes costs about a microsecond per call whatever the length (the DRBG
// re-keys on every call), and a v4 message needs three draws: that alone would triple the
// cost of a small message. This source draws 4 KiB at a time from RAND_bytes into a
// per-thread buffer and hands out slices. A forked child discards what it inherited (so
// parent and child never reuse nonces), and used bytes are wiped. Never use it for keys.
#pragma once

#include "shield_nitro/core/random.h"

namespace shield_nitro::shield::detail {

// The calling thread's buffered CSPRNG.
Random& message_random();

}  // namespace shield_nitro::shield::detail
