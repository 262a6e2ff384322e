#include "shield_nitro/core/error.h"

#include <openssl/err.h>

#include <cstring>

namespace shield_nitro {
namespace {
struct Name {
  Errc code;
  const char* name;
};
constexpr Name kNames[] = {
    {Errc::kUsage, "usage"},         {Errc::kIo, "io"},
    {Errc::kEnvironment, "environment"}, {Errc::kTimeout, "timeout"},
    {Errc::kAuth, "auth"},           {Errc::kVerify, "verify"},
    {Errc::kPolicy, "policy"},       {Errc::kExpired, "expired"},
    {Errc::kFormat, "format"},       {Errc::kUnsupported, "unsupported"},
    {Errc::kNotFound, "not_found"},  {Errc::kRemote, "remote"},
    {Errc::kInternal, "internal"},
};
}  // namespace

const char* errc_name(Errc c) {
  for (const auto& n : kNames)
    if (n.code == c) return n.name;
  return "internal";
}

Errc errc_from_name(const std::string& name) {
  for (const auto& n : kNames)
    if (name == n.name) return n.code;
  return Errc::kInternal;
}

int exit_code(Errc c) {
  switch (c) {
    case Errc::kUsage:
      return 2;
    case Errc::kIo:
    case Errc::kEnvironment:
    case Errc::kTimeout:
    case Errc::kInternal:
      return 3;
    default:
      return 1;
  }
}

void throw_openssl(const std::string& what) {
  std::string detail;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (detail.empty()) detail = buf;
  }
  throw Error(Errc::kInternal, detail.empty() ? what : what + ": " + detail);
}

}  // namespace shield_nitro
