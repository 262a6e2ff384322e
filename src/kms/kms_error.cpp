#include "shield_nitro/kms/kms_error.h"

#include <utility>

namespace shield_nitro::kms {

// What an error type (or, failing that, the HTTP status) tells, for answers that carry no
// message: KMS sends some errors, AccessDenied among them, with an empty body or no text.
static std::string implied_by(int status, const std::string& type) {
  static const std::pair<const char*, const char*> kMeaning[] = {
      {"AccessDeniedException", "the key policy or IAM denied this call"},
      {"ExpiredTokenException", "the session credentials have expired; refresh them"},
      {"UnrecognizedClientException", "AWS does not know this access key id (wrong, deleted or other-partition credentials)"},
      {"InvalidSignatureException", "the request signature does not match (wrong secret key, or the clock is off)"},
      {"IncompleteSignatureException", "the request's signature or its headers are incomplete"},
      {"MissingAuthenticationTokenException", "the request carried no credentials"},
      {"NotFoundException", "no such key or alias in this account and region"},
      {"DisabledException", "the key is disabled"},
      {"KMSInvalidStateException", "the key is not usable now (disabled, pending deletion or pending import)"},
      {"KeyUnavailableException", "the key is temporarily unavailable; retry"},
      {"InvalidCiphertextException", "the ciphertext is damaged, or its encryption context differs"},
      {"IncorrectKeyException", "the ciphertext was encrypted under another key than the one named"},
      {"InvalidKeyUsageException", "the key's usage or spec does not allow this operation"},
      {"InvalidGrantTokenException", "a grant token is invalid"},
      {"ValidationException", "a request parameter is invalid"},
      {"ThrottlingException", "the request rate exceeded the KMS quota; retry later"},
      {"LimitExceededException", "a KMS limit was exceeded"},
      {"DependencyTimeoutException", "KMS timed out on an internal dependency; retry"},
      {"KMSInternalException", "KMS failed internally; retry"},
  };
  for (const auto& [t, meaning] : kMeaning)
    if (type == t) return meaning;
  if (status == 401 || status == 403) return "the request was not authorized";
  if (status == 404) return "the endpoint has no such resource (is this a KMS endpoint?)";
  if (status >= 500) return "the KMS endpoint failed; retry";
  return "KMS refused the request without saying why";
}

static std::string describe(int status, const std::string& type, const std::string& message,
                            const std::string& request_id, const std::string& operation) {
  std::string s = operation.empty() ? "KMS" : "KMS " + operation;
  s += ": HTTP " + std::to_string(status) + " " + (type.empty() ? "UnknownError" : type);
  s += ": " + (message.empty() ? implied_by(status, type) + " (no message from KMS)" : message);
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
