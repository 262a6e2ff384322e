#include "shield_nitro/nsm/error.h"

#include <cerrno>
#include <cstring>

namespace shield_nitro::nsm {

namespace {

constexpr const char* kNames[] = {"Success",       "InvalidArgument",  "InvalidIndex",
                                  "InvalidResponse", "ReadOnlyIndex",  "InvalidOperation",
                                  "BufferTooSmall", "InputTooLarge",   "InternalError"};

Errc errc_for(ErrorCode code) {
  return code == ErrorCode::kInvalidResponse ? Errc::kFormat : Errc::kRemote;
}

}  // namespace

const char* error_code_name(ErrorCode code) {
  auto i = static_cast<size_t>(code);
  return i < std::size(kNames) ? kNames[i] : "InternalError";
}

std::optional<ErrorCode> error_code_from_name(std::string_view name) {
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (name == kNames[i]) return static_cast<ErrorCode>(i);
  return std::nullopt;
}

NsmError::NsmError(ErrorCode code, const std::string& message) : Error(errc_for(code), message), nsm_code_(code) {}

NsmIoError::NsmIoError(int sys_errno, const std::string& message)
    : Error(sys_errno == ETIMEDOUT ? Errc::kTimeout : Errc::kIo, message), errno_(sys_errno) {}

}  // namespace shield_nitro::nsm
