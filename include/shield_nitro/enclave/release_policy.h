// The enclave's own key-release policy (`shield-nitro-enclave serve --policy FILE`), checked before any
// KMS call, so a compromised parent cannot make the enclave load keys or code it was not
// built for. JSON, every field optional:
//
//   {
//     "kms_key_ids": ["arn:aws:kms:us-east-1:111122223333:key/…", "alias/models"],
//     "encryption_context": {"app": "model-inference"},   // pairs every load-key must carry
//     "allow_code": true,                                  // may code artifacts be loaded
//     "max_artifact_bytes": 4294967296
//   }
//
// An empty key list allows any key id; a non-empty one requires load-key to name one of
// them, and the key id KMS reports for the released key to match too.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shield_nitro::enclave {

// Immutable after parse(): safe to share between request threads.
class ReleasePolicy {
 public:
  // Allows everything (the default without --policy).
  ReleasePolicy() = default;
  // Throws Error(kFormat) naming the field on malformed JSON or wrong types.
  static ReleasePolicy parse(const std::string& json_text);
  static ReleasePolicy load(const std::string& path);

  // Throws Error(kPolicy) with the reason when the request may not go to KMS.
  void check_load_key(const std::string& key_id, const std::map<std::string, std::string>& context) const;
  // After KMS answered: the key it used must be allowed (KMS reports the key ARN).
  void check_released_key(const std::string& kms_key_arn) const;
  // Error(kPolicy) for code when code is not allowed, or a size above max_artifact_bytes.
  void check_artifact(bool is_code, uint64_t size) const;

  // The size limit for one artifact's plaintext (default 16 GiB).
  uint64_t max_artifact_bytes() const { return max_artifact_bytes_; }

 private:
  bool key_allowed(const std::string& id) const;
  std::vector<std::string> key_ids_;
  std::map<std::string, std::string> context_;
  bool allow_code_ = true;
  uint64_t max_artifact_bytes_ = uint64_t{16} << 30;
};

}  // namespace shield_nitro::enclave
