// Socket descriptor helpers of the network layer; the owning handle is core's UniqueFd.
#pragma once

#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro::net {

// Spelling kept for code written against the network layer; the type is core's.
using shield_nitro::UniqueFd;

// Sets or clears O_NONBLOCK; throws Error(kIo) on failure.
void set_nonblocking(int fd, bool on);

}  // namespace shield_nitro::net
