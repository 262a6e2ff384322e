// Reading KMS's JSON answers, shared by the client's sources (client.cpp, asymmetric.cpp);
// not installed.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/kms/client.h"

namespace shield_nitro::kms::detail {

// The base64 field `name`, decoded; Error(kFormat) naming op when it is missing or not base64.
Bytes b64_field(const nlohmann::json& j, const char* name, const std::string& op);
// The text field `name`, or "" when absent.
std::string str_field(const nlohmann::json& j, const char* name);
nlohmann::json context_json(const EncryptionContext& ctx);
// A secret field (Plaintext, PrivateKeyPlaintext, SharedSecret) into SecureBytes; the JSON
// string it came in is wiped, so the answer can be kept or dropped without the secret.
SecureBytes take_secret(nlohmann::json& j, const char* name, const std::string& op);
// Every string inside j (values and nested values, recursively) zeroed in place, for the JSON a
// secret had to pass through.
void wipe_json_strings(nlohmann::json& j);
// For answers that must not carry the secret in clear (a Recipient request's, a ...WithoutPlaintext
// one's): Error(kVerify) when field `name` is there, after wiping it.
void refuse_clear_secret(nlohmann::json& j, const char* name, const std::string& op);

}  // namespace shield_nitro::kms::detail
