#include "shield_nitro/net/fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "sockaddr.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::net {

void set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw Error(Errc::kIo, "fcntl(F_GETFL): " + detail::errno_text(errno));
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) < 0) throw Error(Errc::kIo, "fcntl(F_SETFL): " + detail::errno_text(errno));
}

namespace detail {
std::string errno_text(int err) {
  char buf[128];
  // GNU strerror_r returns the message pointer (which may not be buf).
  const char* msg = ::strerror_r(err, buf, sizeof buf);
  std::string s = msg;
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}
}  // namespace detail

}  // namespace shield_nitro::net
