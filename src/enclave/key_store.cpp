#include "shield_nitro/enclave/key_store.h"

#include "shield_nitro/core/error.h"

namespace shield_nitro::enclave {

std::string KeyStore::add(SecureBytes data_key, std::string key_id) {
  if (data_key.size() != shield::kKeySize)
    throw Error(Errc::kFormat, "data key is " + std::to_string(data_key.size()) + " bytes, expected 32");
  std::lock_guard<std::mutex> lock(mu_);
  std::string handle = "key-" + std::to_string(next_++);
  shield::ShieldOptions at_rest;
  at_rest.max_age_ms = std::nullopt;
  // The ShieldKey is a wiped temporary: the Shield's state keeps the only copy.
  shield::Shield s = shield::Shield::with_key(shield::ShieldKey::from_bytes(data_key.view()), at_rest);
  keys_.emplace(handle, Entry{std::move(key_id), std::move(s)});
  return handle;
}

shield::Shield KeyStore::shield_for(std::string_view handle) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = keys_.find(handle);
  if (it == keys_.end()) throw Error(Errc::kNotFound, "no key loaded under handle '" + std::string(handle) + "'");
  return it->second.at_rest;
}

bool KeyStore::remove(const std::string& handle) {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.erase(handle) > 0;
}

std::vector<KeyInfo> KeyStore::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<KeyInfo> out;
  for (const auto& [h, e] : keys_) out.push_back({h, e.key_id});
  return out;
}

size_t KeyStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.size();
}

}  // namespace shield_nitro::enclave
