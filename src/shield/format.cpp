#include "shield_nitro/shield/format.h"

#include <algorithm>
#include <cstring>

#include "shield_nitro/shield/shield.h"
#include "stream_header.h"

namespace shield_nitro::shield {

Format detect_format(ByteView prefix) {
  if (prefix.empty()) return Format::kUnknown;
  if (prefix[0] == kVersionPassword) return Format::kV4Password;
  if (prefix[0] == kVersionKey) return Format::kV4Key;
  if (prefix.size() < detail::kStreamMagic.size()) return Format::kUnknown;
  if (std::equal(detail::kStreamMagic.begin(), detail::kStreamMagic.end(), prefix.begin())) return Format::kStream;
  return Format::kUnknown;
}

}  // namespace shield_nitro::shield
