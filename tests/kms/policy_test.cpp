#include <gtest/gtest.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/kms/key_policy.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms_local/policy_eval.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;

namespace {

const std::string kRole = "arn:aws:iam::111122223333:role/shield-enclave";
const std::string kAdmin = "arn:aws:iam::111122223333:role/shield-admin";
const std::string kKey = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

Bytes pcr(uint8_t fill) { return Bytes(48, fill); }

KeyPolicyRequest gen(std::map<int, Bytes> pcrs, const std::string& role, const std::string& admin = "",
                     bool signed_by_pcr8 = false) {
  KeyPolicyRequest r;
  r.pcrs = std::move(pcrs);
  r.role_arn = role;
  r.admin_arn = admin;
  r.signed_by_pcr8 = signed_by_pcr8;
  return r;
}

PolicyRequest request(const std::string& principal, const std::string& action,
                      std::map<std::string, std::string> ctx = {}) {
  return {principal, "111122223333", action, kKey, std::move(ctx)};
}

std::map<std::string, std::string> attested(uint8_t p0, uint8_t p8 = 8) {
  return {{"kms:recipientattestation:imagesha384", hex_encode(pcr(p0))},
          {"kms:recipientattestation:pcr0", hex_encode(pcr(p0))},
          {"kms:recipientattestation:pcr8", hex_encode(pcr(p8))}};
}

}  // namespace

TEST(KeyPolicyGen, ShapeMatchesTheIssue) {
  auto p = nlohmann::ordered_json::parse(generate_key_policy(gen({{{0, pcr(0xab)}, {2, pcr(0x02)}}}, kRole, kAdmin)));
  ASSERT_EQ(p["Statement"].size(), 3u);
  auto& admin = p["Statement"][0];
  EXPECT_EQ(admin["Principal"]["AWS"], kAdmin);
  auto& allow = p["Statement"][1];
  EXPECT_EQ(allow["Effect"], "Allow");
  EXPECT_EQ(allow["Principal"]["AWS"], kRole);
  EXPECT_EQ(allow["Action"], nlohmann::ordered_json({"kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair",
                                                      "kms:DeriveSharedSecret", "kms:GenerateRandom"}));
  auto& cond = allow["Condition"]["StringEqualsIgnoreCase"];
  EXPECT_EQ(cond["kms:RecipientAttestation:ImageSha384"], hex_encode(pcr(0xab)));
  EXPECT_EQ(cond["kms:RecipientAttestation:PCR2"], hex_encode(pcr(0x02)));
  EXPECT_FALSE(cond.contains("kms:RecipientAttestation:PCR0"));
  auto& deny = p["Statement"][2];
  EXPECT_EQ(deny["Effect"], "Deny");
  EXPECT_EQ(deny["Principal"]["AWS"], kRole);
  EXPECT_EQ(deny["Condition"]["Null"]["kms:RecipientAttestation:ImageSha384"], "true");
  EXPECT_NO_THROW(validate_key_policy(nlohmann::json::parse(p.dump())));
}

TEST(KeyPolicyGen, SignedByPcr8PinsSignerNotImage) {
  auto p = nlohmann::ordered_json::parse(generate_key_policy(gen({{{0, pcr(1)}, {3, pcr(3)}, {8, pcr(8)}}}, kRole, "", true)));
  auto& cond = p["Statement"][1]["Condition"]["StringEqualsIgnoreCase"];
  EXPECT_FALSE(cond.contains("kms:RecipientAttestation:ImageSha384"));
  EXPECT_EQ(cond["kms:RecipientAttestation:PCR8"], hex_encode(pcr(8)));
  EXPECT_EQ(p["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
  EXPECT_THROW(generate_key_policy(gen({{{0, pcr(1)}}}, kRole, "", true)), Error);
}

TEST(KeyPolicyGen, RefusesDebugZerosBadPcrsAndArns) {
  try {
    generate_key_policy(gen({{{0, pcr(0)}}}, kRole));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kPolicy);
    EXPECT_NE(std::string(e.what()).find("debug"), std::string::npos);
  }
  EXPECT_THROW(generate_key_policy(gen({{{0, Bytes(32, 1)}}}, kRole)), Error);
  EXPECT_THROW(generate_key_policy(gen({{{2, pcr(1)}}}, kRole)), Error);  // no PCR0
  EXPECT_THROW(generate_key_policy(gen({{{0, pcr(1)}}}, "role/x")), Error);
  EXPECT_THROW(generate_key_policy(gen({{{0, pcr(1)}}}, "arn:aws:iam::12345:role/x")), Error);
  EXPECT_THROW(parse_pcr_argument("0=abc"), Error);
  EXPECT_THROW(parse_pcr_argument("x=" + std::string(96, 'a')), Error);
  EXPECT_THROW(parse_pcr_argument("0=" + std::string(96, '0')), Error);
  EXPECT_EQ(parse_pcr_argument("4=" + std::string(96, 'A')).second, pcr(0xaa));
}

TEST(PolicyEval, GeneratedPolicyReleasesOnlyToMatchingAttestation) {
  auto p = nlohmann::json::parse(generate_key_policy(gen({{{0, pcr(0xab)}, {8, pcr(8)}}}, kRole, kAdmin)));
  EXPECT_EQ(evaluate_key_policy(p, request(kRole, "kms:Decrypt", attested(0xab))).decision, PolicyDecision::kAllow);
  EXPECT_EQ(evaluate_key_policy(p, request(kRole, "kms:Decrypt", attested(0xab, 9))).decision,
            PolicyDecision::kImplicitDeny);
  auto upper = attested(0xab);
  for (auto& [k, v] : upper)
    for (auto& c : v) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(evaluate_key_policy(p, request(kRole, "kms:GenerateDataKey", upper)).decision, PolicyDecision::kAllow);
  auto none = evaluate_key_policy(p, request(kRole, "kms:Decrypt"));
  EXPECT_EQ(none.decision, PolicyDecision::kExplicitDeny);
  EXPECT_EQ(none.statement, "DenyReleaseWithoutAttestation");
  EXPECT_EQ(evaluate_key_policy(p, request(kRole, "kms:Encrypt")).decision, PolicyDecision::kImplicitDeny);
  EXPECT_EQ(evaluate_key_policy(p, request(kAdmin, "kms:PutKeyPolicy")).decision, PolicyDecision::kAllow);
  EXPECT_EQ(evaluate_key_policy(p, request(kAdmin, "kms:Decrypt")).decision, PolicyDecision::kImplicitDeny);
}

// A producer may seal (GenerateDataKey, Encrypt) but never unwrap (Decrypt) nor get a key pair.
TEST(PolicyEval, ProducerMaySealButNotDecrypt) {
  const std::string producer = "arn:aws:iam::111122223333:role/model-owner";
  auto r = gen({{{0, pcr(0xab)}}}, kRole, kAdmin);
  r.producer_arn = producer;
  auto p = nlohmann::json::parse(generate_key_policy(r));
  for (const char* allowed : {"kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:Encrypt"})
    EXPECT_EQ(evaluate_key_policy(p, request(producer, allowed)).decision, PolicyDecision::kAllow) << allowed;
  for (const char* refused : {"kms:Decrypt", "kms:GenerateDataKeyPair", "kms:PutKeyPolicy"})
    EXPECT_EQ(evaluate_key_policy(p, request(producer, refused)).decision, PolicyDecision::kImplicitDeny) << refused;
  // The enclave's role still gets nothing without an attestation.
  EXPECT_EQ(evaluate_key_policy(p, request(kRole, "kms:GenerateDataKey")).decision, PolicyDecision::kExplicitDeny);
}

TEST(PolicyEval, DenyWinsWildcardsAndEncryptionContext) {
  auto p = nlohmann::json::parse(R"({"Statement":[
    {"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"},
    {"Effect":"Deny","Principal":"*","Action":["kms:Gen?rate*"],"Resource":"*",
     "Condition":{"StringNotEquals":{"kms:EncryptionContext:app":"demo"}}}]})");
  validate_key_policy(p);
  EXPECT_EQ(evaluate_key_policy(p, request(kRole, "kms:Encrypt")).decision, PolicyDecision::kAllow);
  EXPECT_EQ(evaluate_key_policy(p, request(kRole, "kms:GenerateDataKey")).decision, PolicyDecision::kExplicitDeny);
  EXPECT_EQ(evaluate_key_policy(p, request(kRole, "kms:GenerateDataKey", {{"kms:encryptioncontext:app", "demo"}})).decision,
            PolicyDecision::kAllow);
  PolicyRequest other = request("arn:aws:iam::444455556666:role/x", "kms:Encrypt");
  other.account = "444455556666";
  EXPECT_EQ(evaluate_key_policy(p, other).decision, PolicyDecision::kImplicitDeny);
  EXPECT_EQ(evaluate_key_policy(default_key_policy("111122223333"), request(kRole, "kms:Decrypt")).decision,
            PolicyDecision::kAllow);
}

TEST(PolicyEval, MalformedPoliciesAreRefused) {
  for (const char* bad : {R"([])", R"({})", R"({"Statement":[]})", R"({"Statement":[{"Effect":"Maybe","Principal":"*","Action":"kms:*"}]})",
                          R"({"Statement":[{"Effect":"Allow","Action":"kms:*"}]})",
                          R"({"Statement":[{"Effect":"Allow","Principal":{"Service":"x"},"Action":"kms:*"}]})",
                          R"({"Statement":[{"Effect":"Allow","Principal":"*","Action":7}]})",
                          R"({"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"DateLessThan":{"a":"b"}}}]})",
                          R"({"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"x"}]})"}) {
    SCOPED_TRACE(bad);
    try {
      validate_key_policy(nlohmann::json::parse(bad));
      ADD_FAILURE();
    } catch (const KmsError& e) {
      EXPECT_EQ(e.type(), "MalformedPolicyDocumentException");
    }
  }
}

TEST(PolicyEval, GlobMatching) {
  EXPECT_TRUE(glob_match_ci("kms:*", "kms:Decrypt"));
  EXPECT_TRUE(glob_match_ci("KMS:decrypt", "kms:Decrypt"));
  EXPECT_TRUE(glob_match_ci("kms:Gen*Key", "kms:GenerateDataKey"));
  EXPECT_FALSE(glob_match_ci("kms:Gen*Key", "kms:GenerateRandom"));
  EXPECT_TRUE(glob_match_ci("*", ""));
  EXPECT_FALSE(glob_match_ci("kms:?", "kms:"));
}
