// Errors the NSM reports, and how they surface in shield-nitro.
//
// The device answers a failed request with {"Error": "<code>"}; the client throws NsmError
// carrying that code. Replies that do not decode, or answer a different request, become
// NsmError(kInvalidResponse). A failed ioctl() becomes NsmIoError with the errno. Both derive
// from shield_nitro::Error, so callers that do not care about the detail just catch Error.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "shield_nitro/core/error.h"

namespace shield_nitro::nsm {

// libnsm's C ErrorCode order (nsm.md §3.3). Only the name travels on the wire.
enum class ErrorCode {
  kSuccess = 0,
  kInvalidArgument = 1,
  kInvalidIndex = 2,
  kInvalidResponse = 3,
  kReadOnlyIndex = 4,
  kInvalidOperation = 5,
  kBufferTooSmall = 6,
  kInputTooLarge = 7,
  kInternalError = 8,
};

// The wire name, e.g. "InvalidIndex".
const char* error_code_name(ErrorCode code);
// The code for a wire name; nullopt for a name the NSM API does not define.
std::optional<ErrorCode> error_code_from_name(std::string_view name);

// A refusal from the NSM (Errc::kRemote), or an undecodable reply (Errc::kFormat).
class NsmError : public Error {
 public:
  NsmError(ErrorCode code, const std::string& message);
  // The NSM's own code (kInvalidResponse for an undecodable reply).
  ErrorCode nsm_code() const { return nsm_code_; }

 private:
  ErrorCode nsm_code_;
};

// ioctl() on the device failed (Errc::kIo, or kTimeout for ETIMEDOUT).
class NsmIoError : public Error {
 public:
  NsmIoError(int sys_errno, const std::string& message);
  // The errno of the failed ioctl().
  int sys_errno() const { return errno_; }

 private:
  int errno_;
};

}  // namespace shield_nitro::nsm
