#include "shield_nitro/core/unique_fd.h"

#include <unistd.h>

namespace shield_nitro {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

int UniqueFd::close() {
  int fd = release();
  return fd >= 0 ? ::close(fd) : 0;
}

}  // namespace shield_nitro
