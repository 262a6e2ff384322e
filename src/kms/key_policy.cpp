#include "shield_nitro/kms/key_policy.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/pcr.h"

namespace shield_nitro::kms {

namespace {

// The role's attested operations, split by whether KMS gives them an encryption context: a
// context pin on the others (they have none) would deny them always.
const char* const kContextActions[] = {"kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"};
const char* const kContextFreeActions[] = {"kms:DeriveSharedSecret", "kms:GenerateRandom"};
const char* const kRecipientActions[] = {"kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair",
                                         "kms:DeriveSharedSecret", "kms:GenerateRandom"};
const char* const kAdminActions[] = {"kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                                     "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                                     "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                                     "kms:CancelKeyDeletion"};

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void check_pcr(int index, const Bytes& value) {
  if (index < 0) throw Error(Errc::kUsage, "PCR index " + std::to_string(index) + " is out of range 0-31");
  shield_nitro::check_pcr(static_cast<uint64_t>(index), value.size());
  if (std::all_of(value.begin(), value.end(), [](uint8_t b) { return b == 0; }))
    throw Error(Errc::kPolicy, "PCR" + std::to_string(index) +
                                   " is all zeros: that is what a debug-mode enclave reports, and a policy pinning "
                                   "zeros would release the key to ANY debug enclave (whose memory the parent can "
                                   "read). Use the measurements of a production (non-debug) build.");
}

std::string condition_key(int index, bool image) {
  return image ? "kms:RecipientAttestation:ImageSha384" : "kms:RecipientAttestation:PCR" + std::to_string(index);
}

nlohmann::ordered_json actions(std::initializer_list<const char*> list) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (auto* s : list) a.push_back(s);
  return a;
}

template <size_t N>
nlohmann::ordered_json actions(const char* const (&list)[N]) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (auto* s : list) a.push_back(s);
  return a;
}

nlohmann::ordered_json statement(const char* sid, const char* effect, const std::string& principal,
                                 nlohmann::ordered_json action) {
  return {{"Sid", sid}, {"Effect", effect}, {"Principal", {{"AWS", principal}}}, {"Action", std::move(action)},
          {"Resource", "*"}};
}

}  // namespace

std::string account_of_arn(const std::string& arn) {
  // arn:PARTITION:iam::ACCOUNT:role/NAME (or user/..., root)
  std::vector<std::string> parts;
  size_t start = 0;
  for (int i = 0; i < 5; ++i) {
    size_t pos = arn.find(':', start);
    if (pos == std::string::npos) break;
    parts.push_back(arn.substr(start, pos - start));
    start = pos + 1;
  }
  if (parts.size() != 5 || parts[0] != "arn" || parts[1].rfind("aws", 0) != 0 || parts[2] != "iam" ||
      !parts[3].empty() || parts[4].size() != 12 || !all_digits(parts[4]) || start >= arn.size())
    throw Error(Errc::kUsage, "'" + arn + "' is not an IAM ARN like arn:aws:iam::111122223333:role/NAME");
  return parts[4];
}

std::pair<int, Bytes> parse_pcr_argument(const std::string& arg) {
  auto eq = arg.find('=');
  std::string idx = arg.substr(0, eq);
  if (eq == std::string::npos || !all_digits(idx) || idx.size() > 2)
    throw Error(Errc::kUsage, "--pcr expects N=HEX (e.g. 0=<96 hex>), got '" + arg.substr(0, 40) + "'");
  Bytes value;
  try {
    value = hex_decode(arg.substr(eq + 1));
  } catch (const Error& e) {
    throw Error(Errc::kUsage, "--pcr " + idx + ": " + e.what());
  }
  int index = std::stoi(idx);
  check_pcr(index, value);
  return {index, value};
}

std::string generate_key_policy(const KeyPolicyRequest& r) {
  std::string account = r.account.empty() ? account_of_arn(r.role_arn) : r.account;
  account_of_arn(r.role_arn);
  if (account.size() != 12 || !all_digits(account)) throw Error(Errc::kUsage, "--account must be 12 digits");
  std::string admin = r.admin_arn.empty() ? "arn:aws:iam::" + account + ":root" : r.admin_arn;
  if (!r.admin_arn.empty()) account_of_arn(r.admin_arn);
  for (const auto& [i, v] : r.pcrs) check_pcr(i, v);
  int anchor = r.signed_by_pcr8 ? 8 : 0;
  if (!r.pcrs.count(anchor))
    throw Error(Errc::kUsage, r.signed_by_pcr8 ? "--signed-by-pcr8 needs --pcr 8=HEX (the signing certificate's PCR8)"
                                               : "PCR0 (the image) is required: pass --pcr 0=HEX or --eif");

  nlohmann::ordered_json match = nlohmann::ordered_json::object();
  for (const auto& [i, v] : r.pcrs) {
    if (r.signed_by_pcr8 && i == 0) continue;  // PCR0 changes with every rebuild; PCR8 pins the signer
    match[condition_key(i, i == 0)] = hex_encode(v);
  }
  nlohmann::ordered_json statements = nlohmann::ordered_json::array();
  statements.push_back(statement("KeyAdministration", "Allow", admin, actions(kAdminActions)));
  if (!r.producer_arn.empty()) {
    account_of_arn(r.producer_arn);
    // GenerateDataKey too: `shield-nitro seal` needs the plaintext data key once, on the producer's
    // machine, where the plaintext artifact already is (the Deny below binds only the enclave's role).
    statements.push_back(statement("ProducersMayEncrypt", "Allow", r.producer_arn,
                                   actions({"kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
                                            "kms:DescribeKey"})));
  }
  nlohmann::ordered_json attested = {{"StringEqualsIgnoreCase", match}};
  if (r.encryption_context.empty()) {
    auto allow = statement("EnclaveOnlyWithAttestation", "Allow", r.role_arn, actions(kRecipientActions));
    allow["Condition"] = attested;
    statements.push_back(allow);
  } else {
    nlohmann::ordered_json pinned = nlohmann::ordered_json::object();
    for (const auto& [k, v] : r.encryption_context) {
      if (k.empty()) throw Error(Errc::kUsage, "--encryption-context: a key must not be empty");
      pinned["kms:EncryptionContext:" + k] = v;
    }
    auto allow = statement("EnclaveOnlyWithAttestation", "Allow", r.role_arn, actions(kContextActions));
    allow["Condition"] = attested;
    allow["Condition"]["StringEquals"] = pinned;  // exact values: a context is case-sensitive
    statements.push_back(allow);
    auto rest = statement("EnclaveContextFreeWithAttestation", "Allow", r.role_arn, actions(kContextFreeActions));
    rest["Condition"] = attested;
    statements.push_back(rest);
  }
  auto deny = statement("DenyReleaseWithoutAttestation", "Deny", r.role_arn, actions(kRecipientActions));
  deny["Condition"] = {{"Null", {{"kms:RecipientAttestation:ImageSha384", "true"}}}};
  statements.push_back(deny);
  nlohmann::ordered_json policy = {{"Version", "2012-10-17"}, {"Id", "shield-nitro-attested-key"}, {"Statement", statements}};
  return policy.dump();
}

}  // namespace shield_nitro::kms
