// Relying-party policy (attestation.md §7), applied only after the document, its chain and
// its signature verified. "Signed by AWS" says nothing about WHICH enclave or WHEN; a relying
// party states that here. Every unset field is not checked, except debug documents, which are
// refused unless allow_debug is set.
//
//   attest::Policy p;
//   p.expect_pcr(0, pcr0);          // call again with the same index to allow alternatives
//   p.nonce = challenge;            // compared in constant time
//   p.max_age_s = 300;              // and never more than future_skew_s in the future
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::attest {

struct Policy {
  // index -> acceptable values; the PCR must be present and equal one of them (48 bytes).
  std::map<uint32_t, std::vector<Bytes>> pcrs;
  // When set, the field must be present (a byte string) and equal. Never falls back from
  // nonce to user_data or the other way round.
  std::optional<Bytes> nonce;
  std::optional<Bytes> user_data;
  std::optional<Bytes> public_key;
  // When set: T - max_age_s <= timestamp <= T + future_skew_s, else Error(kExpired).
  std::optional<int64_t> max_age_s;
  int64_t future_skew_s = 5;
  // Debug-mode enclaves (PCR0 all zero) are fully AWS-signed; refuse them unless asked.
  bool allow_debug = false;

  // Adds value as one acceptable value of PCR index (no check here: verification compares).
  void expect_pcr(uint32_t index, Bytes value) { pcrs[index].push_back(std::move(value)); }
};

}  // namespace shield_nitro::attest
