// The example's test set, testset.bin (SNTS v1, written by train.py): "SNTS", version u32 = 1,
// count u32, dim u32, count x dim little-endian f32 features, count u8 labels. Shared by the C++
// clients (classify, the python-inference example's client-cpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

namespace example {

struct TestSet {
  uint32_t count = 0, dim = 0;
  shield_nitro::Bytes features;  // raw little-endian f32, as the models take them
  std::vector<uint8_t> labels;
};

inline uint32_t u32_at(const shield_nitro::Bytes& b, size_t at) {
  return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 | uint32_t(b[at + 2]) << 16 | uint32_t(b[at + 3]) << 24;
}

// Error(kFormat) naming path when the file is not an SNTS v1 test set of the size its header says.
inline TestSet read_testset(const std::string& path) {
  shield_nitro::Bytes b = shield_nitro::read_file(path);
  if (b.size() < 16 || std::memcmp(b.data(), "SNTS", 4) != 0 || u32_at(b, 4) != 1)
    throw shield_nitro::Error(shield_nitro::Errc::kFormat, path + ": not an SNTS v1 test set");
  TestSet t;
  t.count = u32_at(b, 8);
  t.dim = u32_at(b, 12);
  size_t feat = size_t(t.count) * t.dim * 4;
  if (t.dim == 0 || b.size() != 16 + feat + t.count)
    throw shield_nitro::Error(shield_nitro::Errc::kFormat, path + ": size does not match its header");
  t.features.assign(b.begin() + 16, b.begin() + 16 + feat);
  t.labels.assign(b.begin() + 16 + feat, b.end());
  return t;
}

}  // namespace example
