// Endpoint: where a service listens or a client connects, as one string.
//
//   vsock://16:5000      AF_VSOCK, CID 16, port 5000 (an enclave, seen from the parent)
//   vsock://ANY:5000     listen on every CID (inside the enclave); "any" also accepted
//   vsock://3:8000       the parent, seen from the enclave (CID 3 is always the parent)
//   unix:/run/sn.sock    a unix stream socket (path up to 107 bytes)
//   tcp://127.0.0.1:7000 TCP, for development on one machine; tcp://[::1]:7000 for IPv6
//
// Everything above the socket (framing, server, client, proxy) is the same for all three.
//
// How a vsock endpoint becomes a socket (AF_VSOCK, or the simulator's unix sockets
// DIR/<CID>_<PORT>.sock) is the process's VsockNetwork (vsock_network.h), so the enclave
// service, the parent and the proxy run unchanged on a machine without vsock. See docs/protocol.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "shield_nitro/net/fd.h"

namespace shield_nitro::net {

inline constexpr uint32_t kVsockCidAny = 0xFFFFFFFFu;
inline constexpr uint32_t kVsockCidParent = 3;
inline constexpr uint32_t kDefaultSimulatedCid = 16;

struct Endpoint {
  enum class Kind { kVsock, kUnix, kTcp };

  Kind kind = Kind::kUnix;
  uint32_t cid = 0;    // kVsock: kVsockCidAny for "ANY"
  uint32_t port = 0;   // kVsock (32-bit) and kTcp (16-bit; 0 = pick a free port when listening)
  std::string host;    // kTcp: name or IP literal, without brackets
  std::string path;    // kUnix

  // Throws Error(kUsage, "endpoint '...': <why>") on anything malformed: unknown scheme,
  // missing or non-decimal port, out-of-range CID/port, empty or over-long unix path.
  static Endpoint parse(std::string_view text);
  static Endpoint vsock(uint32_t cid, uint32_t port);
  static Endpoint unix_path(std::string path);
  static Endpoint tcp(std::string host, uint16_t port);

  // The canonical string; parse(to_string()) == *this.
  std::string to_string() const;
  bool operator==(const Endpoint&) const = default;
};

// The endpoint actually used for a socket: vsock endpoints as the process's VsockNetwork
// resolves them (unix sockets under the simulator); everything else is returned unchanged.
Endpoint map_simulated_vsock(const Endpoint& ep, bool listening);

struct ListenOptions {
  int backlog = 1024;
  // Permissions of a unix socket file: 0600 (owner only) or 0660 (owner and group).
  unsigned unix_mode = 0600;
};

// A listening, close-on-exec socket. For unix sockets a stale socket file (nobody accepts on
// it) is removed first; a live one is an error, so two services never share a path.
// Throws Error(kIo) with errno text, or kUnsupported for vsock on a system without AF_VSOCK.
UniqueFd listen(const Endpoint& ep, const ListenOptions& options = {});

// A connected, blocking, close-on-exec stream socket (TCP_NODELAY on TCP).
// Throws Error(kTimeout) when the timeout passes, Error(kIo) when refused or unreachable.
UniqueFd connect(const Endpoint& ep, std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The address a listening socket is bound to, in the listener's own terms: e.g. the real port
// after listening on tcp://127.0.0.1:0. For simulated vsock, returns `requested` unchanged.
Endpoint bound_endpoint(int listen_fd, const Endpoint& requested);

}  // namespace shield_nitro::net
