// Fuzzes the enclave KMS endpoint's decoding of an app's request body for the attested
// operations: the input is "<operation>\n<JSON body>". Every outcome must be an
// AttestedRequest or a KmsError (KMS's error types for the app), never a crash or another
// exception escaping.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "../src/kms_endpoint/request.h"
#include "shield_nitro/kms/kms_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto nl = text.find('\n');
  if (nl == std::string_view::npos) return 0;
  std::string op(text.substr(0, nl));
  if (!kms_endpoint::detail::is_attested(op)) return 0;
  auto body = nlohmann::json::parse(text.substr(nl + 1), nullptr, false);
  if (body.is_discarded()) return 0;
  try {
    auto r = kms_endpoint::detail::parse_attested_request(op, body);
    if (r.op != op) __builtin_trap();
    if ((op == "GenerateRandom" || op == "GenerateDataKey") && (r.number_of_bytes < 1 || r.number_of_bytes > 1024))
      __builtin_trap();
  } catch (const kms::KmsError& e) {
    if (e.http_status() != 400) __builtin_trap();
  }
  return 0;
}
