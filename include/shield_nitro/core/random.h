// Injectable randomness. Production code uses os_random() (OpenSSL RAND_bytes);
// tests may inject a ScriptedRandom to reproduce vectors. Never on a production path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro {

// A source of random bytes.
class Random {
 public:
  virtual ~Random() = default;
  // Fills out whole; throws Error(kInternal) when the source fails (never returns short).
  virtual void fill(std::span<uint8_t> out) = 0;
  // n fresh bytes.
  Bytes bytes(size_t n);
  // Uniform in [lo, hi] by rejection sampling over single bytes (hi - lo < 256).
  uint32_t uniform_small(uint32_t lo, uint32_t hi);
};

// CSPRNG backed by OpenSSL RAND_bytes; thread-safe.
Random& os_random();

// Hands out the scripted bytes in order, then throws Error(kInternal) when exhausted.
class ScriptedRandom final : public Random {
 public:
  explicit ScriptedRandom(Bytes script) : script_(std::move(script)) {}
  void fill(std::span<uint8_t> out) override;
  // Scripted bytes not handed out yet.
  size_t remaining() const { return script_.size() - pos_; }

 private:
  Bytes script_;
  size_t pos_ = 0;
};

}  // namespace shield_nitro
