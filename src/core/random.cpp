#include "shield_nitro/core/random.h"

#include <openssl/rand.h>

#include <cstring>

#include "shield_nitro/core/error.h"

namespace shield_nitro {
namespace {
class OsRandom final : public Random {
 public:
  void fill(std::span<uint8_t> out) override {
    if (out.empty()) return;
    if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) throw_openssl("RAND_bytes failed");
  }
};
}  // namespace

Random& os_random() {
  static OsRandom rng;
  return rng;
}

Bytes Random::bytes(size_t n) {
  Bytes out(n);
  fill(out);
  return out;
}

uint32_t Random::uniform_small(uint32_t lo, uint32_t hi) {
  const uint32_t range = hi - lo + 1;  // <= 256
  const uint32_t limit = 256 - (256 % range);
  for (;;) {
    uint8_t b;
    fill({&b, 1});
    if (b < limit) return lo + b % range;
  }
}

void ScriptedRandom::fill(std::span<uint8_t> out) {
  if (out.size() > remaining()) throw Error(Errc::kInternal, "scripted random source exhausted");
  std::memcpy(out.data(), script_.data() + pos_, out.size());
  pos_ += out.size();
}

}  // namespace shield_nitro
