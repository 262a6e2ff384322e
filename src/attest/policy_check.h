// Internal: applies a Policy to verified claims (attestation.md §7).
#pragma once

#include "shield_nitro/attest/policy.h"
#include "shield_nitro/attest/verifier.h"

namespace shield_nitro::attest::detail {

// True when PCR0 is present and 48 zero bytes (a debug-mode enclave).
bool is_debug(const std::map<uint32_t, Bytes>& pcrs);

// Throws Error(kPolicy) or Error(kExpired) naming the first check that failed.
void apply_policy(const Policy& policy, const Claims& claims);

}  // namespace shield_nitro::attest::detail
