// Decrypt-side cache of password-mode master keys, keyed by the sender's 16-byte salt
// (spec §9). Bounded LRU, thread-safe; entries are filled only by callers that have just
// verified a tag under the key, so forged salts cannot grow it. Keys are zeroized when the
// last user of an evicted entry lets go.
#pragma once

#include <array>
#include <list>
#include <map>
#include <memory>
#include <mutex>

#include "aead.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::shield::detail {

// A master key and the v4 AEAD key derived from it.
struct KeyEntry {
  explicit KeyEntry(SecureBytes m);
  SecureBytes master;
  AeadKey aead;
};

using Salt = std::array<uint8_t, 16>;

class SaltCache {
 public:
  explicit SaltCache(size_t capacity) : capacity_(capacity) {}
  // The entry for salt, now most recently used; null when absent.
  std::shared_ptr<const KeyEntry> find(const Salt& salt);
  void insert(const Salt& salt, std::shared_ptr<const KeyEntry> entry);
  size_t size() const;

 private:
  using Item = std::pair<Salt, std::shared_ptr<const KeyEntry>>;
  size_t capacity_;
  mutable std::mutex mu_;
  std::list<Item> lru_;  // front = most recent
  std::map<Salt, std::list<Item>::iterator> index_;
};

}  // namespace shield_nitro::shield::detail
