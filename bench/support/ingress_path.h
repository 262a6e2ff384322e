// Both forwarders of a deployment's ingress in front of an app, in process, for the benchmarks
// (bench/relay_bench.cpp, bench/attested_tls_bench.cpp):
//
//   client → host forwarder (tcp://127.0.0.1:PORT) → simulated vsock → enclave forwarder → app
//
// The enclave forwarder runs `session` (e.g. attested TLS) or, when empty, the passthrough relay.
// One IngressPath at a time per process: it points SHIELD_NITRO_VSOCK_DIR at its own directory.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "shield_nitro/net/vsock_network.h"
#include "shield_nitro/relay/ingress.h"

namespace sn_bench {

class IngressPath {
 public:
  explicit IngressPath(const shield_nitro::net::Endpoint& app, shield_nitro::relay::IngressSession session = {})
      : dir_((std::filesystem::temp_directory_path() / ("sn-ingress-bench-" + std::to_string(::getpid()))).string()) {
    using namespace shield_nitro;
    std::filesystem::create_directories(dir_);
    ::setenv("SHIELD_NITRO_VSOCK_DIR", dir_.c_str(), 1);
    net::install_vsock_network(nullptr);
    runtime::IngressConfig entry;
    entry.vsock_port = 5000;
    relay::IngressOptions e = relay::enclave_ingress(entry);
    e.target = app;
    e.session = std::move(session);
    relay::IngressOptions h;
    h.name = "ingress host";
    h.listen = net::Endpoint::parse("tcp://127.0.0.1:0");
    h.target = net::Endpoint::vsock(net::kDefaultSimulatedCid, 5000);
    enclave_ = std::make_unique<relay::IngressForwarder>(e);
    host_ = std::make_unique<relay::IngressForwarder>(h);
    enclave_->start();
    host_->start();
  }
  ~IngressPath() {
    host_.reset();
    enclave_.reset();
    std::filesystem::remove_all(dir_);
  }
  IngressPath(const IngressPath&) = delete;
  IngressPath& operator=(const IngressPath&) = delete;
  // The host forwarder's address: where clients connect.
  const shield_nitro::net::Endpoint& endpoint() const { return host_->endpoint(); }

 private:
  std::string dir_;
  std::unique_ptr<shield_nitro::relay::IngressForwarder> enclave_, host_;
};

}  // namespace sn_bench
