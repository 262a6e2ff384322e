// Fuzzes the text decoders that see untrusted input (hex and base64 from files and argv).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace shield_nitro;
  try {
    Bytes b = base64_decode(text);
    if (base64_decode(base64_encode(b)) != b) __builtin_trap();
  } catch (const Error&) {
  }
  try {
    Bytes h = hex_decode(text);
    if (hex_decode(hex_encode(h)) != h) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
