#include "shield_nitro/kms/kms_error.h"

namespace shield_nitro::kms {

static std::string describe(int status, const std::string& type, const std::string& message,
                            const std::string& request_id, const std::string& operation) {
  std::string s = operation.empty() ? "KMS" : "KMS " + operation;
  s += ": HTTP " + std::to_string(status) + " " + (type.empty() ? "UnknownError" : type);
  if (!message.empty()) s += ": " + message;
  if (!request_id.empty()) s += " (request id " + request_id + ")";
  return s;
}

KmsError::KmsError(int http_status, std::string type, std::string message, std::string request_id,
                   std::string operation)
    : Error(errc_for_aws_type(type), describe(http_status, type, message, request_id, operation)),
      http_status_(http_status),
      type_(std::move(type)),
      message_(std::move(message)),
      request_id_(std::move(request_id)) {}

bool KmsError::retryable() const {
  if (http_status_ >= 500) return true;
  return type_ == "ThrottlingException" || type_ == "DependencyTimeoutException" ||
         type_ == "KMSInternalException" || type_ == "LimitExceededException" ||
         type_ == "RequestLimitExceeded";
}

Errc errc_for_aws_type(const std::string& type) {
  if (type == "AccessDeniedException") return Errc::kPolicy;
  if (type == "ExpiredTokenException") return Errc::kExpired;
  return Errc::kRemote;
}

std::string normalize_aws_type(std::string type) {
  if (auto hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
  if (auto colon = type.find(':'); colon != std::string::npos) type = type.substr(0, colon);
  return type;
}

void throw_validation(const std::string& message) { throw KmsError(400, "ValidationException", message); }
void throw_not_found(const std::string& message) { throw KmsError(400, "NotFoundException", message); }
void throw_access_denied(const std::string& message) { throw KmsError(400, "AccessDeniedException", message); }

}  // namespace shield_nitro::kms
