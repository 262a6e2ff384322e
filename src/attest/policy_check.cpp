#include "policy_check.h"

#include <algorithm>
#include <string>

#include "shield_nitro/core/error.h"

namespace shield_nitro::attest::detail {
namespace {

[[noreturn]] void refuse(const std::string& why) { throw Error(Errc::kPolicy, "policy: " + why); }

void check_freshness(const Policy& p, const Claims& c) {
  if (!p.max_age_s) return;
  int64_t ts = static_cast<int64_t>(c.timestamp_ms);
  if (ts > c.checked_at_ms + p.future_skew_s * 1000)
    throw Error(Errc::kExpired, "policy: document timestamp " + format_utc_millis(ts) + " is in the future");
  int64_t age_ms = c.checked_at_ms - ts;
  if (age_ms > *p.max_age_s * 1000)
    throw Error(Errc::kExpired, "policy: document is " + std::to_string(age_ms / 1000) + " s old, max age " +
                                    std::to_string(*p.max_age_s) + " s");
}

void check_pcrs(const Policy& p, const Claims& c) {
  for (const auto& [index, allowed] : p.pcrs) {
    auto it = c.pcrs.find(index);
    std::string name = "PCR" + std::to_string(index);
    if (it == c.pcrs.end()) refuse(name + " is required but absent from the document");
    bool match = std::any_of(allowed.begin(), allowed.end(), [&](const Bytes& v) { return ct_equal(v, it->second); });
    if (!match) refuse(name + " " + hex_encode(it->second) + " is not an expected value");
  }
}

void check_field(const std::optional<Bytes>& expected, const OptionalBytes& actual, const char* name) {
  if (!expected) return;
  if (!actual.has_value()) refuse(std::string(name) + " is required but " + presence_name(actual.presence));
  if (!ct_equal(*expected, actual.value)) refuse(std::string(name) + " does not match the expected value");
}

}  // namespace

bool is_debug(const std::map<uint32_t, Bytes>& pcrs) {
  auto it = pcrs.find(0);
  return it != pcrs.end() && std::all_of(it->second.begin(), it->second.end(), [](uint8_t b) { return b == 0; });
}

void apply_policy(const Policy& policy, const Claims& claims) {
  if (claims.debug && !policy.allow_debug)
    refuse("debug-mode enclave (PCR0 is all zero); pass allow_debug / --allow-debug to accept");
  check_freshness(policy, claims);
  check_pcrs(policy, claims);
  check_field(policy.nonce, claims.nonce, "nonce");
  check_field(policy.user_data, claims.user_data, "user_data");
  check_field(policy.public_key, claims.public_key, "public_key");
}

}  // namespace shield_nitro::attest::detail
