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

// Key substitution (docs/threat-model.md): the key KMS says it used is checked too, so a blob of
// another KMS key is refused even when load-key named an allowed one.
TEST(ReleasePolicy, TheReleasedKeyMustBeAnAllowedOne) {
  const std::string arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
  auto by_id = ReleasePolicy::parse(R"({"kms_key_ids": ["1234abcd-12ab-34cd-56ef-1234567890ab"]})");
  EXPECT_NO_THROW(by_id.check_released_key(arn));
  EXPECT_EQ(code_of([&] { by_id.check_released_key("arn:aws:kms:us-east-1:444455556666:key/0000aaaa-12ab-34cd-56ef-1234567890ab"); }),
            Errc::kPolicy);
  auto by_arn = ReleasePolicy::parse(R"({"kms_key_ids": [")" + arn + R"("]})");
  EXPECT_NO_THROW(by_arn.check_released_key(arn));
  EXPECT_EQ(code_of([&] { by_arn.check_released_key(arn + "0"); }), Errc::kPolicy);
  // An alias list cannot be compared with an ARN; KMS checked the blob against the alias named.
  EXPECT_NO_THROW(ReleasePolicy::parse(R"({"kms_key_ids": ["alias/models"]})").check_released_key(arn));
  EXPECT_NO_THROW(ReleasePolicy().check_released_key(arn));
}

TEST(ReleasePolicy, RequiredContextPairsAreExact) {
  auto p = ReleasePolicy::parse(R"({"encryption_context": {"app": "inference", "tier": "prod"}})");
  EXPECT_NO_THROW(p.check_load_key("", {{"app", "inference"}, {"tier", "prod"}, {"model", "digits"}}));
  EXPECT_EQ(code_of([&] { p.check_load_key("", {{"app", "inference"}}); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { p.check_load_key("", {{"app", "Inference"}, {"tier", "prod"}}); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { p.check_load_key("", {{"App", "inference"}, {"tier", "prod"}}); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { p.check_load_key("", {}); }), Errc::kPolicy);
  EXPECT_EQ(code_of([] { ReleasePolicy::parse(R"({"encryption_context": {"app": 1}})"); }), Errc::kFormat);
}
