// Helpers shared by the shield tests: file bytes, bit flips (and support's TempDir, code_of).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/random.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

namespace shield_nitro::shield::testing {

using shield_nitro::test_support::code_of;
using shield_nitro::test_support::TempDir;

inline Bytes flip_bit(ByteView in, size_t bit) {
  Bytes out(in.begin(), in.end());
  out[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  return out;
}

inline Bytes concat(ByteView a, ByteView b) {
  Bytes out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

inline Bytes random_bytes(size_t n) { return os_random().bytes(n); }

}  // namespace shield_nitro::shield::testing
