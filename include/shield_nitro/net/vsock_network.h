// How vsock addresses become sockets: a seam like nsm/transport.h, chosen once per process.
//
//   hardware_vsock()        AF_VSOCK, on a Nitro parent instance or inside an enclave;
//   simulated_vsock(DIR)    the local simulator's stand-in: vsock://CID:PORT is the unix socket
//                           DIR/<CID>_<PORT>.sock; listening on vsock://ANY:PORT uses the own CID.
//
// vsock_from_environment() is the one place that reads SHIELD_NITRO_VSOCK_DIR (set: simulated)
// and SHIELD_NITRO_VSOCK_CID (the own CID, default 16). Programs get that choice by default the
// first time a vsock endpoint is used; a test or tool may install another one explicitly.
// Everything that opens a vsock socket (net::listen/connect, the proxy, the KMS client's
// tunnel) goes through resolve(), so nothing else knows about the simulator.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "shield_nitro/net/endpoint.h"

namespace shield_nitro::net {

// One way of opening vsock endpoints (see above); implementations are immutable.
class VsockNetwork {
 public:
  virtual ~VsockNetwork() = default;
  // The address a socket is really opened on for a vsock endpoint: itself (AF_VSOCK) or the unix
  // endpoint standing in for it. Throws Error(kUsage) for vsock://ANY when connecting.
  virtual Endpoint resolve(const Endpoint& vsock, bool listening) const = 0;
  // Appended to a failed connect's message: where this network looked, and what to check.
  virtual std::string connect_hint(const Endpoint& requested) const = 0;
};

// AF_VSOCK itself; or the simulator's unix sockets under dir, this process being own_cid.
std::unique_ptr<VsockNetwork> hardware_vsock();
std::unique_ptr<VsockNetwork> simulated_vsock(std::string dir, uint32_t own_cid = kDefaultSimulatedCid);
// Simulated when SHIELD_NITRO_VSOCK_DIR is set, else hardware. Throws kUsage for a malformed CID.
std::unique_ptr<VsockNetwork> vsock_from_environment();

// The process's vsock network: vsock_from_environment() unless one was installed. Installing
// nullptr makes the next use read the environment again (tests that change it).
std::shared_ptr<const VsockNetwork> vsock_network();
void install_vsock_network(std::shared_ptr<const VsockNetwork> network);

}  // namespace shield_nitro::net
