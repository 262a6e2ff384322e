#include "shield_nitro/cbor/secret.h"

namespace shield_nitro::cbor {

SecretValue& SecretValue::operator=(SecretValue&& other) noexcept {
  if (this != &other) {
    v_.wipe_strings();  // what was here is dropped by the assignment below
    v_ = std::move(other.v_);
  }
  return *this;
}

SecretValue SecretValue::take(std::string_view key) {
  if (!v_.is(Type::kMap)) return {};
  for (auto& [k, v] : v_.as_map())
    if (k.is(Type::kText) && k.as_text() == key) return SecretValue(std::move(v));
  return {};
}

SecretValue decode_secret(ByteView data, const Limits& limits) { return SecretValue(decode(data, limits)); }

}  // namespace shield_nitro::cbor
