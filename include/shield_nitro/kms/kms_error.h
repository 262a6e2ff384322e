// KmsError: an AWS-shaped error (HTTP status, __type, message, request id).
//
// The client throws it for every non-2xx KMS answer so the caller sees all four facts on one
// line (the most common complaint about existing tools is "non-200: 400" with the body
// dropped). kms-local throws it on the server side and serialises it as KMS does:
//   HTTP 400, {"__type":"AccessDeniedException","message":"..."}.
#pragma once

#include <string>

#include "shield_nitro/core/error.h"

namespace shield_nitro::kms {

// An Error (its Errc follows the AWS type) that keeps KMS's four facts for callers that
// branch on them.
class KmsError : public Error {
 public:
  KmsError(int http_status, std::string type, std::string message, std::string request_id = "",
           std::string operation = "");

  // The HTTP status, the __type ("AccessDeniedException"), KMS's message, x-amzn-RequestId.
  int http_status() const { return http_status_; }
  const std::string& type() const { return type_; }
  const std::string& aws_message() const { return message_; }
  const std::string& request_id() const { return request_id_; }
  // Throttling, 5xx and the two KMS "try again" types; never 4xx auth or policy errors.
  bool retryable() const;

 private:
  int http_status_;
  std::string type_;
  std::string message_;
  std::string request_id_;
};

// Errc for an AWS error type: kPolicy for AccessDeniedException, kExpired for
// ExpiredTokenException, kRemote for everything else.
Errc errc_for_aws_type(const std::string& type);

// "com.amazonaws.kms#NotFoundException:http://..." -> "NotFoundException".
std::string normalize_aws_type(std::string type);

// Server-side shorthands with the texts KMS uses.
[[noreturn]] void throw_validation(const std::string& message);
[[noreturn]] void throw_not_found(const std::string& message);
[[noreturn]] void throw_access_denied(const std::string& message);

}  // namespace shield_nitro::kms
