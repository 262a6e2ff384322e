#include "shield_nitro/kms/http_errors.h"

#include <nlohmann/json.hpp>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/random.h"

namespace shield_nitro::kms {

net::HttpServerResponse kms_error_response(int status, const std::string& type, const std::string& message) {
  return {status,
          {{"Content-Type", "application/x-amz-json-1.1"}},
          nlohmann::json{{"__type", type}, {"message", message}}.dump(-1, ' ', false,
                                                                    nlohmann::json::error_handler_t::replace)};
}

net::HttpServerResponse kms_error_response(const KmsError& error) {
  return kms_error_response(error.http_status(), error.type(), error.aws_message());
}

net::HttpServerResponse kms_fault_response(net::HttpFault fault, int status, const std::string& message) {
  switch (fault) {
    case net::HttpFault::kOverloaded: return kms_error_response(400, "ThrottlingException", message);
    case net::HttpFault::kTimeout: return kms_error_response(408, "RequestTimeoutException", message);
    case net::HttpFault::kHandlerFailed: return kms_error_response(500, "KMSInternalException", message);
    case net::HttpFault::kMalformed: break;
  }
  const char* type = status == 501                    ? "UnsupportedOperationException"
                     : status == 400 || status == 505 ? "SerializationException"
                                                      : "ValidationException";
  return kms_error_response(status, type, message);
}

net::HttpServerOptions kms_http_options(net::HttpServerOptions options) {
  options.fault_response = kms_fault_response;
  options.request_id_header = "x-amzn-RequestId";
  options.request_id = random_uuid;
  return options;
}

std::string random_uuid() {
  Bytes b = os_random().bytes(16);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  std::string h = hex_encode(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

}  // namespace shield_nitro::kms
