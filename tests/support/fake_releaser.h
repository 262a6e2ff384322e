// Test helper: stands in for KMS in the enclave service's tests. The "wrapped key" is a
// Shield message under a key-encryption key only this releaser holds; when required_akid is
// set, credentials with another access key id are refused like KMS's AccessDenied.
#pragma once

#include <string>
#include <utility>

#include "shield_nitro/core/error.h"
#include "shield_nitro/enclave/key_releaser.h"
#include "shield_nitro/shield/shield.h"

namespace shield_nitro::test_support {

class FakeReleaser : public enclave::KeyReleaser {
 public:
  explicit FakeReleaser(const shield::ShieldKey& kek, std::string required_akid = "")
      : kek_(shield::Shield::with_key(kek, {.max_age_ms = std::nullopt})), required_akid_(std::move(required_akid)) {}

  enclave::ReleasedKey release(const enclave::ReleaseRequest& r, const enclave::PushedCredentials& c) override {
    if (!required_akid_.empty() && c.access_key_id != required_akid_)
      throw Error(Errc::kPolicy, "AccessDeniedException: wrong principal");
    return {kek_.decrypt(r.ciphertext_blob), "arn:aws:kms:us-east-1:111122223333:key/test"};
  }

 private:
  shield::Shield kek_;
  std::string required_akid_;
};

}  // namespace shield_nitro::test_support
