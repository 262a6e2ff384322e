// Internal: small text helpers shared by the endpoint and allowlist parsers.
#pragma once

#include <cctype>
#include <string_view>

namespace shield_nitro::net::detail {

// ASCII case-insensitive equality (DNS names, "ANY").
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace shield_nitro::net::detail
