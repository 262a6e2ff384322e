// Fuzzes Shield v4 decryption (spec §7) under a fixed key, with the freshness window off so
// inputs that pass the tag reach every later check. Key mode only: PBKDF2 would make each
// input cost 0.3 s. Also checks that whatever the input, encrypt-then-decrypt returns it.
// Seeds: the upstream key-mode vectors (fixtures/shield), which use this key.
#include <cstddef>
#include <cstdint>

#include "shield_nitro/core/error.h"
#include "shield_nitro/shield/shield.h"

using namespace shield_nitro;
using namespace shield_nitro::shield;

static const Shield& fuzz_shield() {
  static const Shield s = [] {
    Bytes key(32);
    for (int i = 0; i < 32; ++i) key[i] = static_cast<uint8_t>(((i + 1) / 10) << 4 | ((i + 1) % 10));  // 01 02 .. 32
    return Shield::with_key(ShieldKey::from_bytes(key), {.max_age_ms = std::nullopt});
  }();
  return s;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Shield& s = fuzz_shield();
  ByteView input(data, size);
  try {
    SecureBytes pt = s.decrypt(input);
    if (pt.size() + 71 > size) __builtin_trap();  // a plaintext never exceeds the input minus overhead
  } catch (const Error& e) {
    if (e.code() == Errc::kInternal) __builtin_trap();
  }
  Bytes sealed = s.encrypt(input);
  if (to_bytes(s.decrypt(sealed).view()) != to_bytes(input)) __builtin_trap();
  return 0;
}
