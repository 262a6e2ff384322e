#include "shield_nitro/attest/verifier.h"

#include "chain.h"
#include "chain_cache.h"
#include "policy_check.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::attest {
namespace {

int64_t floor_seconds(int64_t ms) { return ms >= 0 ? ms / 1000 : (ms - 999) / 1000; }

// §5 step 8: the document must have been produced while its leaf was valid.
void check_timestamp_in_leaf(const Document& d, const detail::ChainResult& chain) {
  int64_t ts_s = static_cast<int64_t>(d.timestamp_ms / 1000);
  if (ts_s < chain.leaf_not_before_s || ts_s > chain.leaf_not_after_s)
    throw Error(Errc::kVerify, "attestation document: timestamp " + format_utc_millis(static_cast<int64_t>(d.timestamp_ms)) +
                                   " is outside the leaf certificate's validity");
}

Claims make_claims(Document&& d, const detail::ChainResult& chain, int64_t at_ms) {
  Claims c;
  c.module_id = std::move(d.module_id);
  c.timestamp_ms = d.timestamp_ms;
  c.digest = std::move(d.digest);
  c.pcrs = std::move(d.pcrs);
  c.public_key = std::move(d.public_key);
  c.user_data = std::move(d.user_data);
  c.nonce = std::move(d.nonce);
  c.debug = detail::is_debug(c.pcrs);
  c.leaf = chain.leaf;
  c.cabundle = chain.cabundle;
  c.checked_at_ms = at_ms;
  return c;
}

}  // namespace

struct Verifier::Cache : ChainCache {
  using ChainCache::ChainCache;
};

Verifier::Verifier(TrustAnchor anchor, VerifierOptions options)
    : anchor_(std::move(anchor)), options_(options) {
  if (options_.chain_cache) cache_ = std::make_unique<Cache>(options_.cache_capacity);
}

Verifier::~Verifier() = default;

Claims Verifier::verify(ByteView doc, const Policy& policy) const {
  const Clock& clock = options_.clock ? *options_.clock : system_clock();
  return verify_at(doc, clock.now_ms(), policy);
}

Claims Verifier::verify_at(ByteView doc, int64_t at_unix_ms, const Policy& policy) const {
  Document d = decode_document(doc);
  int64_t at_s = floor_seconds(at_unix_ms);
  std::shared_ptr<const detail::ChainResult> chain;
  Bytes key;
  if (cache_) {
    key = detail::chain_key(d.certificate, d.cabundle);
    chain = cache_->find(key, at_s);
  }
  if (!chain) {
    chain = detail::verify_chain(anchor_, d.certificate, d.cabundle, at_s);
    if (cache_) cache_->insert(key, chain, at_s);
  }
  cose::verify_es384(d.envelope, chain->leaf_key.get());
  check_timestamp_in_leaf(d, *chain);
  Claims claims = make_claims(std::move(d), *chain, at_unix_ms);
  detail::apply_policy(policy, claims);
  if (claims.debug) log_warn("attest: accepted a DEBUG-MODE enclave document (PCR0 all zero) from " + claims.module_id);
  return claims;
}

VerifyResult Verifier::check(ByteView doc, const Policy& policy, std::optional<int64_t> at_unix_ms) const {
  VerifyResult r;
  try {
    r.claims = at_unix_ms ? verify_at(doc, *at_unix_ms, policy) : verify(doc, policy);
  } catch (const Error& e) {
    r.error = e;
  } catch (const std::exception& e) {
    r.error = Error(Errc::kInternal, e.what());
  }
  return r;
}

Verifier::CacheStats Verifier::cache_stats() const { return cache_ ? cache_->stats() : CacheStats{}; }

}  // namespace shield_nitro::attest
