// Key policy evaluation for kms-local: the subset of IAM semantics KMS key policies use.
//
// A statement applies when its Principal, Action (wildcards * and ?, case-insensitive),
// Resource and every Condition match. Explicit Deny wins over Allow; no match is an implicit
// deny. Conditions: StringEquals, StringEqualsIgnoreCase, Null (and the Not forms), with
// case-insensitive key names, over kms:RecipientAttestation:*, kms:EncryptionContext:*,
// kms:CallerAccount and aws:PrincipalArn. A Principal naming the account
// ("111122223333" or arn:aws:iam::111122223333:root) matches every principal of that account,
// standing in for the IAM policies kms-local does not have.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace shield_nitro::kms {

struct PolicyRequest {
  std::string principal_arn;
  std::string account;   // the principal's account
  std::string action;    // "kms:Decrypt"
  std::string resource;  // the key ARN
  std::map<std::string, std::string> context;  // condition keys, names lower-cased
};

enum class PolicyDecision { kAllow, kExplicitDeny, kImplicitDeny };

struct PolicyResult {
  PolicyDecision decision = PolicyDecision::kImplicitDeny;
  std::string statement;  // Sid (or index) of the deciding statement
};

// The decision for one request (rules above); the policy must have passed validate_key_policy.
PolicyResult evaluate_key_policy(const nlohmann::json& policy, const PolicyRequest& request);

// Throws KmsError MalformedPolicyDocumentException for anything evaluate cannot interpret.
void validate_key_policy(const nlohmann::json& policy);

// The policy KMS gives a key created without one: the account root may do everything.
nlohmann::json default_key_policy(const std::string& account);

// Case-insensitive glob with * and ?.
bool glob_match_ci(const std::string& pattern, const std::string& text);

}  // namespace shield_nitro::kms
