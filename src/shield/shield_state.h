// What a Shield holds, and the narrow access the stream container needs to it (its own
// master key for encryption, the master key of a header salt for decryption).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "salt_cache.h"
#include "shield_nitro/shield/shield.h"

namespace shield_nitro::shield::detail {

struct ShieldState {
  ShieldState(ShieldOptions o) : options(o), cache(o.salt_cache_entries) {}

  ShieldOptions options;  // clock resolved to the system clock when null
  bool password_mode = false;
  SecureBytes password;
  std::string service;
  Salt own_salt{};
  SaltCache cache;

  // Key mode: set at construction. Password mode: derived on first use.
  std::shared_ptr<const KeyEntry> own_key();
  // Password mode: the key for a sender's salt, from own salt, cache or PBKDF2. fresh is
  // set when PBKDF2 ran; the caller remembers the entry once a tag verified under it.
  std::shared_ptr<const KeyEntry> key_for_salt(const Salt& salt, bool& fresh);

  std::mutex own_mu;
  std::shared_ptr<const KeyEntry> own;
};

struct ShieldAccess {
  static std::shared_ptr<ShieldState> state(const Shield& s) { return s.state_; }
};

}  // namespace shield_nitro::shield::detail
