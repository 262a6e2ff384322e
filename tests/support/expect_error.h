// Test helper: the Errc a callable throws. Records a test failure when it throws nothing,
// so `EXPECT_EQ(code_of(...), Errc::kX)` cannot pass by accident.
#pragma once

#include <gtest/gtest.h>

#include <functional>

#include "shield_nitro/core/error.h"

namespace shield_nitro::test_support {

inline Errc code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error thrown";
  return Errc::kInternal;
}

}  // namespace shield_nitro::test_support
