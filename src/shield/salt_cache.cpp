#include "salt_cache.h"

#include "shield_nitro/shield/kdf.h"

namespace shield_nitro::shield::detail {

KeyEntry::KeyEntry(SecureBytes m) : master(std::move(m)), aead(derive_aead_key(master.view())) {}

std::shared_ptr<const KeyEntry> SaltCache::find(const Salt& salt) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(salt);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void SaltCache::insert(const Salt& salt, std::shared_ptr<const KeyEntry> entry) {
  if (capacity_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(salt);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(salt, std::move(entry));
  index_[salt] = lru_.begin();
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

size_t SaltCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

}  // namespace shield_nitro::shield::detail
