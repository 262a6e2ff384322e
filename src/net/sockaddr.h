// Internal: socket addresses for the endpoint kinds. AF_VSOCK lives in vsock.cpp only.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace shield_nitro::net::detail {

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_UNSPEC;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// AF_VSOCK address for cid/port. Throws Error(kUnsupported) where AF_VSOCK does not exist.
SockAddr vsock_address(uint32_t cid, uint32_t port);
// Reads the port back from a bound AF_VSOCK socket address.
uint32_t vsock_port(const sockaddr_storage& storage);

// Human text for errno, e.g. "connection refused".
std::string errno_text(int err);

}  // namespace shield_nitro::net::detail
