// PCR values: SHA-384 digests, 48 bytes, printed as 96 lowercase hex digits everywhere.
// One check and one wording for every place that accepts a PCR (CLI, SDK, policy, simulator).
#pragma once

#include <cstddef>
#include <cstdint>

namespace shield_nitro {

inline constexpr size_t kPcrSize = 48;      // SHA-384
inline constexpr uint32_t kMaxPcrIndex = 31;  // the NSM has 32 PCRs

// Throws Error(kUsage): "PCR<index> must be 48 bytes (96 hex digits, SHA-384), got <size> bytes",
// or "PCR index <index> is out of range 0-31".
void check_pcr(uint64_t index, size_t size);

}  // namespace shield_nitro
