// Fuzzes kms-local's request path without sockets: the HTTP/1.1 parser, then SigV4 header
// parsing/verification and the JSON dispatcher on whatever parsed. Every outcome must be a
// response (KMS-shaped error or success), never a crash or an exception escaping.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

#include "shield_nitro/core/error.h"

#include "shield_nitro/kms_local/http_server.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms_local/local_kms.h"
#include "shield_nitro/kms/sigv4.h"

namespace {

shield_nitro::kms::LocalKms& server() {
  static shield_nitro::kms::LocalKms* kms = [] {
    shield_nitro::kms::LocalKmsOptions o;
    o.state_dir = (std::filesystem::temp_directory_path() / "sn-fuzz-kms-request").string();
    return new shield_nitro::kms::LocalKms(o);
  }();
  return *kms;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro::kms;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    parse_authorization(std::string(text.substr(0, 512)));
  } catch (const KmsError&) {
  }
  HttpServerRequest req;
  size_t used = 0;
  HttpLimits limits{4096, 8192};
  try {
    if (parse_http_request(text, limits, req, used) != HttpParse::kComplete) return 0;
    if (used > size) __builtin_trap();
  } catch (const HttpParseError& e) {
    if (e.status < 400 || e.status > 599) __builtin_trap();
    return 0;
  }
  HttpServerResponse resp = server().handle(req);
  if (resp.status < 200 || resp.status > 599 || resp.body.empty()) __builtin_trap();
  // The signature never verifies here, so also drive the JSON dispatcher directly with the
  // parsed body (mutating operations excluded: they would write a file per input).
  auto target = find_header(req.headers, "x-amz-target").value_or("");
  std::string op = target.rfind("TrentService.", 0) == 0 ? target.substr(13) : "";
  if (op.empty() || op == "CreateKey" || op == "CreateAlias" || op == "PutKeyPolicy") return 0;
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object()) return 0;
  try {
    server().dispatch(op, body, "arn:aws:iam::111122223333:role/shield-admin");
  } catch (const shield_nitro::Error&) {
  }
  return 0;
}
