#include "shield_nitro/kms_local/policy_eval.h"

#include <algorithm>
#include <cctype>

#include "shield_nitro/kms/kms_error.h"

namespace shield_nitro::kms {

namespace {

using json = nlohmann::json;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

[[noreturn]] void malformed(const std::string& what) {
  throw KmsError(400, "MalformedPolicyDocumentException", "The new key policy will not allow you to update the key policy in the future, or is malformed: " + what);
}

// A string or a non-empty array of strings, as a list.
std::vector<std::string> string_list(const json& j, const std::string& what) {
  std::vector<std::string> out;
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
  } else if (j.is_array() && !j.empty()) {
    for (const auto& e : j) {
      if (!e.is_string()) malformed(what + " must hold strings");
      out.push_back(e.get<std::string>());
    }
  } else {
    malformed(what + " must be a string or a non-empty list of strings");
  }
  return out;
}

bool principal_matches(const json& principal, const PolicyRequest& r) {
  if (principal.is_string()) return principal.get<std::string>() == "*";
  for (const auto& p : string_list(principal.at("AWS"), "Principal.AWS")) {
    if (p == "*" || p == r.principal_arn) return true;
    if (p == r.account) return true;
    if (p.size() > 5 && p.compare(p.size() - 5, 5, ":root") == 0 && p.find(":" + r.account + ":") != std::string::npos)
      return true;
  }
  return false;
}

bool any_glob(const json& patterns, const std::string& value, const std::string& what) {
  for (const auto& p : string_list(patterns, what))
    if (glob_match_ci(p, value)) return true;
  return false;
}

bool condition_operator_matches(const std::string& op, const json& entries, const PolicyRequest& r) {
  for (const auto& [key, want] : entries.items()) {
    auto it = r.context.find(lower(key));
    bool present = it != r.context.end();
    auto wants = string_list(want, "Condition value");
    bool ok = false;
    if (op == "Null") {
      for (const auto& w : wants) ok = ok || (lower(w) == "true" ? !present : present);
    } else {
      bool ci = op.find("IgnoreCase") != std::string::npos;
      bool equal = false;
      for (const auto& w : wants)
        equal = equal || (present && (ci ? lower(w) == lower(it->second) : w == it->second));
      ok = op.rfind("StringNot", 0) == 0 ? !equal : equal;
    }
    if (!ok) return false;
  }
  return true;
}

bool conditions_match(const json& condition, const PolicyRequest& r) {
  for (const auto& [op, entries] : condition.items())
    if (!condition_operator_matches(op, entries, r)) return false;
  return true;
}

bool statement_applies(const json& s, const PolicyRequest& r) {
  return principal_matches(s.at("Principal"), r) && any_glob(s.at("Action"), r.action, "Action") &&
         (!s.contains("Resource") || any_glob(s.at("Resource"), r.resource, "Resource")) &&
         (!s.contains("Condition") || conditions_match(s.at("Condition"), r));
}

void validate_statement(const json& s) {
  if (!s.is_object()) malformed("each Statement must be an object");
  for (const auto& [k, v] : s.items())
    if (k != "Sid" && k != "Effect" && k != "Principal" && k != "Action" && k != "Resource" && k != "Condition")
      malformed("unsupported statement element '" + k + "'");
  if (!s.contains("Effect") || !s["Effect"].is_string() || (s["Effect"] != "Allow" && s["Effect"] != "Deny"))
    malformed("Effect must be Allow or Deny");
  if (!s.contains("Principal")) malformed("Principal is required in a key policy");
  const json& p = s["Principal"];
  if (p.is_string() ? p != "*" : !(p.is_object() && p.size() == 1 && p.contains("AWS")))
    malformed("Principal must be \"*\" or {\"AWS\": ...}");
  if (p.is_object()) string_list(p["AWS"], "Principal.AWS");
  if (!s.contains("Action")) malformed("Action is required");
  string_list(s["Action"], "Action");
  if (s.contains("Resource")) string_list(s["Resource"], "Resource");
  if (s.contains("Condition")) {
    if (!s["Condition"].is_object()) malformed("Condition must be an object");
    for (const auto& [op, entries] : s["Condition"].items()) {
      static const char* const kOps[] = {"StringEquals", "StringEqualsIgnoreCase", "StringNotEquals",
                                         "StringNotEqualsIgnoreCase", "Null"};
      if (std::find(std::begin(kOps), std::end(kOps), op) == std::end(kOps))
        malformed("condition operator '" + op + "' is not supported by kms-local");
      if (!entries.is_object() || entries.empty()) malformed("condition '" + op + "' must map keys to values");
      for (const auto& [key, v] : entries.items()) string_list(v, "Condition value");
    }
  }
}

}  // namespace

bool glob_match_ci(const std::string& pattern, const std::string& text) {
  size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  auto eq = [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b)); };
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || eq(pattern[p], text[t]))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void validate_key_policy(const json& policy) {
  if (!policy.is_object()) malformed("the policy must be a JSON object");
  if (!policy.contains("Statement")) malformed("Statement is required");
  const json& st = policy["Statement"];
  if (st.is_object()) {
    validate_statement(st);
  } else if (st.is_array() && !st.empty()) {
    for (const auto& s : st) validate_statement(s);
  } else {
    malformed("Statement must be an object or a non-empty list");
  }
}

PolicyResult evaluate_key_policy(const json& policy, const PolicyRequest& r) {
  PolicyResult result;
  json statements = policy.at("Statement").is_array() ? policy.at("Statement") : json::array({policy.at("Statement")});
  for (size_t i = 0; i < statements.size(); ++i) {
    const json& s = statements[i];
    if (!statement_applies(s, r)) continue;
    std::string sid = s.contains("Sid") && s["Sid"].is_string() ? s["Sid"].get<std::string>() : "#" + std::to_string(i);
    if (s["Effect"] == "Deny") return {PolicyDecision::kExplicitDeny, sid};
    if (result.decision != PolicyDecision::kAllow) result = {PolicyDecision::kAllow, sid};
  }
  return result;
}

json default_key_policy(const std::string& account) {
  return {{"Version", "2012-10-17"},
          {"Id", "key-default-1"},
          {"Statement",
           {{{"Sid", "Enable IAM User Permissions"},
             {"Effect", "Allow"},
             {"Principal", {{"AWS", "arn:aws:iam::" + account + ":root"}}},
             {"Action", "kms:*"},
             {"Resource", "*"}}}}};
}

}  // namespace shield_nitro::kms
