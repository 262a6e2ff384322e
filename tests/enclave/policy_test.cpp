#include <gtest/gtest.h>

#include "shield_nitro/core/error.h"
#include "support/expect_error.h"
#include "shield_nitro/enclave/release_policy.h"

using namespace shield_nitro;
using shield_nitro::test_support::code_of;
using namespace shield_nitro::enclave;

TEST(ReleasePolicy, DefaultAllowsEverything) {
  ReleasePolicy p;
  EXPECT_NO_THROW(p.check_load_key("", {}));
  EXPECT_NO_THROW(p.check_artifact(true, 1 << 20));
}

TEST(ReleasePolicy, EnforcesKeysContextAndCode) {
  auto p = ReleasePolicy::parse(R"({"kms_key_ids": ["1234abcd-12ab-34cd-56ef-1234567890ab", "alias/models"],
      "encryption_context": {"app": "inference"}, "allow_code": false, "max_artifact_bytes": 100})");
  std::map<std::string, std::string> ctx = {{"app", "inference"}, {"extra", "ok"}};
  EXPECT_NO_THROW(p.check_load_key("alias/models", ctx));
  EXPECT_NO_THROW(p.check_load_key("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", ctx));
  EXPECT_EQ(code_of([&] { p.check_load_key("alias/other", ctx); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { p.check_load_key("", ctx); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { p.check_load_key("alias/models", {{"app", "other"}}); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { p.check_artifact(true, 1); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { p.check_artifact(false, 101); }), Errc::kPolicy);
  EXPECT_NO_THROW(p.check_artifact(false, 100));
}

TEST(ReleasePolicy, RejectsMalformedFiles) {
  EXPECT_EQ(code_of([] { ReleasePolicy::parse("{"); }), Errc::kFormat);
  EXPECT_EQ(code_of([] { ReleasePolicy::parse("[]"); }), Errc::kFormat);
  EXPECT_EQ(code_of([] { ReleasePolicy::parse(R"({"kms_key_ids": "x"})"); }), Errc::kFormat);
  EXPECT_EQ(code_of([] { ReleasePolicy::parse(R"({"allow_code": 1})"); }), Errc::kFormat);
  EXPECT_EQ(code_of([] { ReleasePolicy::parse(R"({"typo": 1})"); }), Errc::kFormat);
  EXPECT_EQ(code_of([] { ReleasePolicy::parse(R"({"max_artifact_bytes": -1})"); }), Errc::kFormat);
}
