// Internal: verified chains by key (chain_key), each valid until the earliest notAfter in it.
//
// A hit is returned only when the check time lies inside the chain's validity window
// [valid_from, valid_until], both ends inclusive like verify_chain (RFC 5280), so a cached
// chain never extends a certificate's life; outside it the caller re-verifies (and
// gets the precise error). Bounded: when full, expired entries go first, then the entry
// that expires soonest. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "chain.h"
#include "shield_nitro/attest/verifier.h"

namespace shield_nitro::attest {

class ChainCache {
 public:
  explicit ChainCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  std::shared_ptr<const detail::ChainResult> find(const Bytes& key, int64_t at_s);
  void insert(const Bytes& key, std::shared_ptr<const detail::ChainResult> chain, int64_t at_s);
  Verifier::CacheStats stats() const;

 private:
  void evict(int64_t at_s);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::map<Bytes, std::shared_ptr<const detail::ChainResult>> entries_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace shield_nitro::attest
