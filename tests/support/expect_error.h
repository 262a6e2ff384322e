// Test helpers for refusals: which exception a callable throws. Each records a test failure when
// nothing is thrown, so `EXPECT_EQ(code_of(...), Errc::kX)` cannot pass by accident.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>

#include "shield_nitro/core/error.h"

namespace shield_nitro::test_support {

// The E that fn throws (other exceptions propagate); nullopt and a test failure when none.
template <class E = Error>
std::optional<E> thrown(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return std::nullopt;
}

inline Errc code_of(const std::function<void()>& fn) {
  auto e = thrown<Error>(fn);
  return e ? e->code() : Errc::kInternal;
}

inline std::string message_of(const std::function<void()>& fn) {
  auto e = thrown<Error>(fn);
  return e ? e->what() : "";
}

}  // namespace shield_nitro::test_support
