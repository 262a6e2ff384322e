#include "chain_cache.h"

#include <algorithm>

namespace shield_nitro::attest {

std::shared_ptr<const detail::ChainResult> ChainCache::find(const Bytes& key, int64_t at_s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || at_s < it->second->valid_from_s || at_s > it->second->valid_until_s) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  return it->second;
}

void ChainCache::insert(const Bytes& key, std::shared_ptr<const detail::ChainResult> chain, int64_t at_s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= capacity_ && !entries_.count(key)) evict(at_s);
  entries_[key] = std::move(chain);
}

void ChainCache::evict(int64_t at_s) {
  std::erase_if(entries_, [&](const auto& e) { return e.second->valid_until_s < at_s; });
  if (entries_.size() < capacity_) return;
  auto soonest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
    return a.second->valid_until_s < b.second->valid_until_s;
  });
  entries_.erase(soonest);
}

Verifier::CacheStats ChainCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {hits_, misses_, entries_.size()};
}

}  // namespace shield_nitro::attest
