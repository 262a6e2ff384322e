// Shared by the relay tests: simulated vsock chosen the way programs choose it, and a dead port.
#pragma once

#include <stdlib.h>

#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/vsock_network.h"
#include "support/temp_dir.h"

namespace sn_test {

// Simulated vsock for the object's lifetime, through SHIELD_NITRO_VSOCK_DIR (this process is
// CID 16, the default); the environment's choice is read again afterwards.
class SimulatedVsock {
 public:
  SimulatedVsock() {
    ::setenv("SHIELD_NITRO_VSOCK_DIR", dir_.path().c_str(), 1);
    shield_nitro::net::install_vsock_network(nullptr);
  }
  ~SimulatedVsock() {
    ::unsetenv("SHIELD_NITRO_VSOCK_DIR");
    shield_nitro::net::install_vsock_network(nullptr);
  }

 private:
  shield_nitro::test_support::TempDir dir_;
};

// A loopback TCP port nobody listens on (it was free a moment ago).
inline uint16_t dead_port() {
  using shield_nitro::net::Endpoint;
  shield_nitro::UniqueFd l = shield_nitro::net::listen(Endpoint::parse("tcp://127.0.0.1:0"));
  return static_cast<uint16_t>(shield_nitro::net::bound_endpoint(l.get(), Endpoint::parse("tcp://127.0.0.1:0")).port);
}

}  // namespace sn_test
