#include "shield_nitro/enclave/release_policy.h"

#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

namespace shield_nitro::enclave {

ReleasePolicy ReleasePolicy::parse(const std::string& text) {
  ReleasePolicy p;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw Error(Errc::kFormat, std::string("release policy is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error(Errc::kFormat, "release policy must be a JSON object");
  for (auto& [field, value] : j.items()) {
    if (field == "kms_key_ids") {
      if (!value.is_array()) throw Error(Errc::kFormat, "release policy: kms_key_ids must be an array of strings");
      for (auto& v : value) {
        if (!v.is_string()) throw Error(Errc::kFormat, "release policy: kms_key_ids must be an array of strings");
        p.key_ids_.push_back(v.get<std::string>());
      }
    } else if (field == "encryption_context") {
      if (!value.is_object()) throw Error(Errc::kFormat, "release policy: encryption_context must be an object of strings");
      for (auto& [k, v] : value.items()) {
        if (!v.is_string()) throw Error(Errc::kFormat, "release policy: encryption_context." + k + " must be a string");
        p.context_[k] = v.get<std::string>();
      }
    } else if (field == "allow_code") {
      if (!value.is_boolean()) throw Error(Errc::kFormat, "release policy: allow_code must be true or false");
      p.allow_code_ = value.get<bool>();
    } else if (field == "max_artifact_bytes") {
      if (!value.is_number_unsigned()) throw Error(Errc::kFormat, "release policy: max_artifact_bytes must be a positive integer");
      p.max_artifact_bytes_ = value.get<uint64_t>();
    } else {
      throw Error(Errc::kFormat, "release policy: unknown field '" + field + "'");
    }
  }
  return p;
}

ReleasePolicy ReleasePolicy::load(const std::string& path) { return parse(read_text_file(path)); }

bool ReleasePolicy::key_allowed(const std::string& id) const {
  if (key_ids_.empty()) return true;
  for (const auto& allowed : key_ids_) {
    if (id == allowed) return true;
    // A bare key id matches the ARN that ends in "key/<id>".
    if (id.size() > allowed.size() && id.ends_with("key/" + allowed)) return true;
  }
  return false;
}

void ReleasePolicy::check_load_key(const std::string& key_id, const std::map<std::string, std::string>& context) const {
  if (!key_ids_.empty() && key_id.empty())
    throw Error(Errc::kPolicy, "release policy: load-key must name the KMS key (key_id) when the policy lists keys");
  if (!key_allowed(key_id)) throw Error(Errc::kPolicy, "release policy: KMS key '" + key_id + "' is not allowed");
  for (const auto& [k, v] : context_) {
    auto it = context.find(k);
    if (it == context.end() || it->second != v)
      throw Error(Errc::kPolicy, "release policy: encryption context must contain " + k + "=" + v);
  }
}

void ReleasePolicy::check_released_key(const std::string& arn) const {
  if (!key_allowed(arn) && !key_ids_.empty()) {
    bool alias_only = true;
    for (const auto& k : key_ids_) alias_only = alias_only && k.starts_with("alias/");
    // An alias cannot be compared with the ARN KMS reports; the request check covered it.
    if (!alias_only) throw Error(Errc::kPolicy, "release policy: KMS released a key from '" + arn + "', which is not allowed");
  }
}

void ReleasePolicy::check_artifact(bool is_code, uint64_t size) const {
  if (is_code && !allow_code_) throw Error(Errc::kPolicy, "release policy: code artifacts are not allowed");
  if (size > max_artifact_bytes_)
    throw Error(Errc::kPolicy, "release policy: artifact of " + std::to_string(size) + " bytes exceeds max_artifact_bytes " +
                                   std::to_string(max_artifact_bytes_));
}

}  // namespace shield_nitro::enclave
