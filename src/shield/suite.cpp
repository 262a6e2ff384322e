#include "shield_nitro/shield/suite.h"

#include <string>

#include "shield_nitro/core/error.h"

namespace shield_nitro::shield {

bool is_known_suite(uint8_t wire) {
  return wire == static_cast<uint8_t>(Suite::kAes256Gcm) || wire == static_cast<uint8_t>(Suite::kChaCha20Poly1305);
}

const char* suite_name(Suite s) {
  return s == Suite::kChaCha20Poly1305 ? "chacha20-poly1305" : "aes-256-gcm";
}

Suite parse_suite(std::string_view name) {
  if (name == "aes-256-gcm") return Suite::kAes256Gcm;
  if (name == "chacha20-poly1305") return Suite::kChaCha20Poly1305;
  throw Error(Errc::kUsage, "unknown suite '" + std::string(name) + "' (use aes-256-gcm or chacha20-poly1305)");
}

}  // namespace shield_nitro::shield
