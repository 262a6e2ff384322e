// A plain HTTP/1.1 GET for the host agent's /healthz and /metrics (Connection: close; the whole
// answer, status line included).
#pragma once

#include <sys/socket.h>

#include <string>

#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/net/endpoint.h"

namespace shield_nitro::host {

inline std::string http_get(const net::Endpoint& ep, const std::string& path) {
  UniqueFd fd = net::connect(ep);
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  host_link::write_all(fd.get(), reinterpret_cast<const uint8_t*>(req.data()), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

}  // namespace shield_nitro::host
