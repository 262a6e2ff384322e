// Data keys released by KMS, held only in enclave memory under short handles ("key-1").
//
// A key never leaves this store: callers get a Shield bound to it (to encrypt/decrypt) or
// metadata. unload() drops the key; SecureBytes and Shield wipe it.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/shield.h"

namespace shield_nitro::enclave {

struct KeyInfo {
  std::string handle;
  std::string key_id;  // the KMS key that released it
};

// Owns every released data key; thread-safe.
class KeyStore {
 public:
  // Stores a 32-byte data key; throws Error(kFormat) for another size.
  std::string add(SecureBytes data_key, std::string key_id);
  // Shield (key mode) for messages at rest: freshness disabled. Built once per key when it is
  // added (the key schedule and AEAD contexts are then reused by every request); the copy
  // returned shares it and stays usable, from any thread, even after remove().
  shield::Shield shield_for(std::string_view handle) const;
  bool remove(const std::string& handle);
  std::vector<KeyInfo> list() const;
  size_t size() const;

 private:
  struct Entry {
    std::string key_id;
    shield::Shield at_rest;  // the one copy of the key
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> keys_;
  uint64_t next_ = 1;
};

}  // namespace shield_nitro::enclave
