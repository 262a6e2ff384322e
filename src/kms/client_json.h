// The client's JSON plumbing, shared by its sources (client.cpp, asymmetric.cpp); not
// installed: the public header (kms/client.h) speaks typed structs and JSON text only.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
// The text array `name`'s strings; empty when absent (non-strings skipped).
std::vector<std::string> text_list(const nlohmann::json& j, const char* name);

// KmsClient::call_text with JSON on both sides: Error(kUsage) for a request holding a string
// that is not UTF-8; the request and answer texts are wiped once converted.
nlohmann::json call_json(KmsClient& client, const std::string& op, const nlohmann::json& request);
// call_json for an operation that releases a key: without a Recipient, the answer's Plaintext
// is moved into released (and wiped from the answer); with one, the request gets the
// Recipient (a fresh attestation document), an answer with Plaintext in clear is refused
// (kVerify) and released is CiphertextForRecipient opened with the recipient's key pair.
nlohmann::json call_with_recipient(KmsClient& client, const std::string& op, nlohmann::json request,
                                   const Recipient* recipient, SecureBytes& released);
// call_with_recipient for answers whose clear secret is not "Plaintext": without a Recipient
// the secret is taken from clear_field (and wiped from the answer); with one, an answer that
// also carries clear_field is refused.
nlohmann::json call_releasing(KmsClient& client, const std::string& op, const nlohmann::json& request,
                              const Recipient* recipient, const char* clear_field, SecureBytes& released);

}  // namespace shield_nitro::kms::detail
