// Helpers of the sealed tests: a data key as KMS would return it, and the release callback
// that hands it back.
#pragma once

#include <string>

#include "shield_nitro/core/random.h"
#include "shield_nitro/sealed/sealed.h"
#include "support/expect_error.h"

namespace sealed_test {

using namespace shield_nitro;
using namespace shield_nitro::sealed;
using test_support::code_of;
using test_support::message_of;

inline DataKey data_key(uint8_t fill = 0x42, std::string key_id = "arn:aws:kms:us-east-1:111122223333:key/k1") {
  return {std::move(key_id), Bytes(40, static_cast<uint8_t>(fill ^ 0xff)), SecureBytes(Bytes(kDataKeySize, fill))};
}

// Returns key's plaintext whatever the header says (KMS would refuse a changed blob; these
// tests check what the file itself catches).
inline KeyRelease release_of(const DataKey& key) {
  return [&key](const Header&) { return key.plaintext.clone(); };
}

inline Bytes pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + i / 251);
  return b;
}

}  // namespace sealed_test
