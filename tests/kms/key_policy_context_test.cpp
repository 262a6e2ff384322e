// `shield-nitro policy`'s role statements for every operation KMS attests, and the encryption
// context pins (--encryption-context), evaluated with kms-local's policy evaluator.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/kms/key_policy.h"
#include "shield_nitro/kms_local/policy_eval.h"
#include "support/expect_error.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
using test_support::code_of;

namespace {

const std::string kRole = "arn:aws:iam::111122223333:role/shield-enclave";
const std::string kKey = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

nlohmann::json policy(const std::map<std::string, std::string>& pinned) {
  KeyPolicyRequest r;
  r.pcrs = {{0, Bytes(48, 0xab)}, {8, Bytes(48, 0x08)}};
  r.role_arn = kRole;
  r.encryption_context = pinned;
  auto p = nlohmann::json::parse(generate_key_policy(r));
  validate_key_policy(p);
  return p;
}

// The role asking for action, attested as the policy's enclave or not, with a context.
PolicyDecision decide(const nlohmann::json& p, const std::string& action, bool attested,
                      const std::map<std::string, std::string>& context = {}) {
  std::map<std::string, std::string> c;
  if (attested) {
    c["kms:recipientattestation:imagesha384"] = hex_encode(Bytes(48, 0xab));
    c["kms:recipientattestation:pcr8"] = hex_encode(Bytes(48, 0x08));
  }
  for (const auto& [k, v] : context) c["kms:encryptioncontext:" + k] = v;
  return evaluate_key_policy(p, {kRole, "111122223333", action, kKey, c}).decision;
}

const char* const kAttested[] = {"kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair",
                                 "kms:DeriveSharedSecret", "kms:GenerateRandom"};

}  // namespace

TEST(KeyPolicyAttested, EveryRecipientOperationOnlyWithAttestation) {
  auto p = policy({});
  for (const char* action : kAttested) {
    SCOPED_TRACE(action);
    EXPECT_EQ(decide(p, action, true), PolicyDecision::kAllow);
    EXPECT_EQ(decide(p, action, false), PolicyDecision::kExplicitDeny);
  }
  EXPECT_EQ(decide(p, "kms:GenerateDataKeyPairWithoutPlaintext", true), PolicyDecision::kImplicitDeny);
  EXPECT_EQ(decide(p, "kms:Encrypt", true), PolicyDecision::kImplicitDeny);
}

TEST(KeyPolicyAttested, EncryptionContextPinsTheOperationsThatCarryOne) {
  auto p = policy({{"app", "inference"}, {"tier", "prod"}});
  const std::map<std::string, std::string> pinned{{"app", "inference"}, {"tier", "prod"}};
  for (const char* action : {"kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"}) {
    SCOPED_TRACE(action);
    EXPECT_EQ(decide(p, action, true, pinned), PolicyDecision::kAllow);
    EXPECT_EQ(decide(p, action, true, {{"app", "inference"}, {"tier", "staging"}}), PolicyDecision::kImplicitDeny);
    EXPECT_EQ(decide(p, action, true, {{"app", "inference"}}), PolicyDecision::kImplicitDeny);
    EXPECT_EQ(decide(p, action, true), PolicyDecision::kImplicitDeny);
    EXPECT_EQ(decide(p, action, false, pinned), PolicyDecision::kExplicitDeny);
  }
  // No context exists for these: a pin on them would deny them always.
  for (const char* action : {"kms:DeriveSharedSecret", "kms:GenerateRandom"}) {
    SCOPED_TRACE(action);
    EXPECT_EQ(decide(p, action, true), PolicyDecision::kAllow);
    EXPECT_EQ(decide(p, action, false), PolicyDecision::kExplicitDeny);
  }
  // Exact values: StringEquals, not the PCRs' IgnoreCase.
  EXPECT_EQ(decide(p, "kms:Decrypt", true, {{"app", "Inference"}, {"tier", "prod"}}), PolicyDecision::kImplicitDeny);
}

TEST(KeyPolicyAttested, RefusesAnEmptyContextKey) {
  KeyPolicyRequest r;
  r.pcrs = {{0, Bytes(48, 0xab)}};
  r.role_arn = kRole;
  r.encryption_context = {{"", "x"}};
  EXPECT_EQ(code_of([&] { generate_key_policy(r); }), Errc::kUsage);
}
