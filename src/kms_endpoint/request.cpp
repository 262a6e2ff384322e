#include "request.h"

#include <initializer_list>
#include <optional>
#include <set>

#include "shield_nitro/core/error.h"
#include "shield_nitro/kms/kms_error.h"

namespace shield_nitro::kms_endpoint::detail {

namespace {

using json = nlohmann::json;

[[noreturn]] void validation(const std::string& message) {
  throw kms::KmsError(400, "ValidationException", message);
}
[[noreturn]] void serialization(const std::string& message) {
  throw kms::KmsError(400, "SerializationException", message);
}

const json& field(const json& body, const char* name) {
  static const json kNull;
  auto it = body.find(name);
  return it == body.end() ? kNull : *it;
}

std::string string_field(const json& body, const char* name, bool required) {
  const json& v = field(body, name);
  if (v.is_null()) {
    if (required) validation(std::string("1 validation error detected: Value null at '") + name +
                             "' failed to satisfy constraint: Member must not be null");
    return "";
  }
  if (!v.is_string()) serialization(std::string("Start of structure or map found where not expected: ") + name);
  return v.get<std::string>();
}

Bytes blob_field(const json& body, const char* name, bool required) {
  std::string text = string_field(body, name, required);
  if (text.empty()) return {};
  try {
    return base64_decode(text);
  } catch (const Error&) {
    serialization(std::string("'") + name + "' is not valid base64");
  }
}

std::optional<int> int_field(const json& body, const char* name) {
  const json& v = field(body, name);
  if (v.is_null()) return std::nullopt;
  if (!v.is_number_integer()) serialization(std::string("NUMBER_VALUE cannot be converted to Integer: ") + name);
  auto n = v.get<int64_t>();
  if (n < 1 || n > 1024)
    validation(std::string("1 validation error detected: Value '") + std::to_string(n) + "' at '" + name +
               "' failed to satisfy constraint: Member must have value between 1 and 1024");
  return static_cast<int>(n);
}

kms::EncryptionContext context_field(const json& body) {
  const json& v = field(body, "EncryptionContext");
  kms::EncryptionContext out;
  if (v.is_null()) return out;
  if (!v.is_object()) serialization("EncryptionContext must be a map of strings");
  for (const auto& [k, val] : v.items()) {
    if (!val.is_string()) serialization("EncryptionContext must be a map of strings");
    out[k] = val.get<std::string>();
  }
  return out;
}

// The typed client carries these fields of op; anything else is refused, never dropped (a
// GrantTokens or DryRun silently ignored would change what the app asked for).
void check_fields(const json& body, const std::string& op, std::initializer_list<const char*> known) {
  for (const auto& [k, v] : body.items()) {
    bool ok = false;
    for (const char* name : known) ok = ok || k == name;
    if (!ok)
      validation("the enclave's KMS endpoint does not support '" + k.substr(0, 64) + "' on " + op +
                 " (it adds the attestation Recipient itself)");
  }
}

}  // namespace

bool is_attested(const std::string& op) {
  static const std::set<std::string> kAttested = {"Decrypt", "GenerateDataKey", "GenerateDataKeyPair",
                                                  "DeriveSharedSecret", "GenerateRandom"};
  return kAttested.count(op) > 0;
}

AttestedRequest parse_attested_request(const std::string& op, const json& body) {
  if (!body.is_object()) serialization("The request body is not a JSON object");
  AttestedRequest r;
  r.op = op;
  if (op == "Decrypt") {
    check_fields(body, op, {"CiphertextBlob", "EncryptionContext", "KeyId", "EncryptionAlgorithm"});
    std::string algorithm = string_field(body, "EncryptionAlgorithm", false);
    if (!algorithm.empty() && algorithm != "SYMMETRIC_DEFAULT")
      validation("the enclave's KMS endpoint supports EncryptionAlgorithm SYMMETRIC_DEFAULT only");
    r.blob = blob_field(body, "CiphertextBlob", true);
    r.context = context_field(body);
    r.key_id = string_field(body, "KeyId", false);
  } else if (op == "GenerateDataKey") {
    check_fields(body, op, {"KeyId", "KeySpec", "NumberOfBytes", "EncryptionContext"});
    std::string spec = string_field(body, "KeySpec", false);
    auto n = int_field(body, "NumberOfBytes");
    if (spec.empty() == !n) validation("Please specify either number of bytes or key spec.");
    if (!spec.empty() && spec != "AES_256" && spec != "AES_128")
      validation("1 validation error detected: Value '" + spec.substr(0, 32) +
                 "' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]");
    r.number_of_bytes = n ? *n : spec == "AES_128" ? 16 : 32;
    r.key_id = string_field(body, "KeyId", true);
    r.context = context_field(body);
  } else if (op == "GenerateDataKeyPair") {
    check_fields(body, op, {"KeyId", "KeyPairSpec", "EncryptionContext"});
    r.key_id = string_field(body, "KeyId", true);
    r.spec = string_field(body, "KeyPairSpec", true);
    r.context = context_field(body);
  } else if (op == "DeriveSharedSecret") {
    check_fields(body, op, {"KeyId", "KeyAgreementAlgorithm", "PublicKey"});
    r.key_id = string_field(body, "KeyId", true);
    r.blob = blob_field(body, "PublicKey", true);
    r.spec = string_field(body, "KeyAgreementAlgorithm", true);
  } else if (op == "GenerateRandom") {
    check_fields(body, op, {"NumberOfBytes"});
    auto n = int_field(body, "NumberOfBytes");
    if (!n) validation("1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: Member must not be null");
    r.number_of_bytes = *n;
  } else {
    throw Error(Errc::kInternal, "kms endpoint: " + op.substr(0, 64) + " is not an attested operation");
  }
  return r;
}

}  // namespace shield_nitro::kms_endpoint::detail
