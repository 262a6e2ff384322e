#include "shield_nitro/core/pcr.h"

#include <string>

#include "shield_nitro/core/error.h"

namespace shield_nitro {

void check_pcr(uint64_t index, size_t size) {
  if (index > kMaxPcrIndex) throw Error(Errc::kUsage, "PCR index " + std::to_string(index) + " is out of range 0-31");
  if (size != kPcrSize)
    throw Error(Errc::kUsage, "PCR" + std::to_string(index) + " must be 48 bytes (96 hex digits, SHA-384), got " +
                                  std::to_string(size) + " bytes");
}

}  // namespace shield_nitro
