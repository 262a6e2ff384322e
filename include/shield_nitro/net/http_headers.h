// HTTP header fields as they appear on the wire: an ordered list of (name, value) pairs, names
// in their original case, duplicates kept. Shared by the HTTP server and parser (net) and by
// SigV4 signing/verification (kms), which signs the headers exactly as they are sent.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shield_nitro::net {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookup of the first header called name; nullopt when absent.
std::optional<std::string> find_header(const HeaderList& headers, const std::string& name);

}  // namespace shield_nitro::net
