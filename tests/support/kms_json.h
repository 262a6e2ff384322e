// Test helper: KmsClient::call_text with nlohmann::json on both sides, for the KMS operations
// the client has no typed method for (CreateKey, PutKeyPolicy, ListKeys, ...) and for
// requests a test shapes by hand. The SDK's public header speaks typed structs and JSON text
// only; JSON values are the tests' convenience.
//
//   std::string arn = kms_call(admin, "CreateKey", {{"Description", "t"}})["KeyMetadata"]["Arn"];
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "shield_nitro/kms/client.h"

// In kms, so that argument-dependent lookup finds it at every call site.
namespace shield_nitro::kms {

// request dumped, sent with call_text, the answer parsed; errors as call_text's.
inline nlohmann::json kms_call(KmsClient& client, const std::string& operation,
                               const nlohmann::json& request = nlohmann::json::object()) {
  return nlohmann::json::parse(client.call_text(operation, request.dump()));
}

}  // namespace shield_nitro::kms
