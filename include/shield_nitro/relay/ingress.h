// Ingress forwarding: listen on one endpoint, and for each connection dial another and relay
// bytes both ways (half-close propagated, net::relay). The same class runs on both sides:
//
//   host:    tcp://0.0.0.0:8080  → vsock://<enclave cid>:5000    (host agent, host config ingress)
//   enclave: vsock://ANY:5000    → tcp://127.0.0.1:8080          (supervisor, runtime ingress)
//
//   relay::IngressOptions o;
//   o.listen = net::Endpoint::parse("vsock://ANY:5000");
//   o.target = net::Endpoint::tcp("127.0.0.1", 8080);
//   relay::IngressForwarder fwd(o);
//   fwd.start(); ...; fwd.stop();
//
// A target that cannot be reached closes that client (no bytes, a FIN) and logs one line; the
// forwarder keeps serving. One log line per connection when it ends (debug level: ingress can be
// busy), with byte counts. `session` is the slot for the attested-TLS mode (next issue): it runs
// between the accepted client and the dialled target instead of the passthrough relay.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/relay.h"
#include "shield_nitro/runtime/host_config.h"

namespace shield_nitro::relay {

// Serves one connection between the accepted `client` and the dialled `target` until it ends
// (or stop_fd becomes readable); owns neither socket. Passthrough is net::relay. target is -1
// when it could not be reached (logged and counted): the session may still answer by itself.
using IngressSession = std::function<net::RelayResult(int client, int target, int stop_fd)>;

struct IngressOptions {
  std::string name = "ingress";  // log prefix, e.g. "ingress 5000"
  net::Endpoint listen;
  net::Endpoint target;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  size_t max_connections = 1024;  // at once; past it a connection is closed at once and logged
  net::ListenOptions listen_options;
  IngressSession session;  // empty: passthrough
};

struct IngressStats {
  uint64_t connections = 0;      // accepted
  uint64_t failed_connects = 0;  // target unreachable or timed out
  uint64_t bytes_up = 0;         // client → target, finished connections only
  uint64_t bytes_down = 0;       // target → client, finished connections only
  size_t active = 0;             // open now
};

class IngressForwarder {
 public:
  // Throws Error(kUsage) if listen or target is missing (a unix endpoint with an empty path).
  explicit IngressForwarder(IngressOptions options);
  ~IngressForwarder();  // stop()
  IngressForwarder(const IngressForwarder&) = delete;
  IngressForwarder& operator=(const IngressForwarder&) = delete;

  // Listens; Error(kIo) naming the endpoint and the reason if it cannot (nothing left running).
  void start();
  // Stops accepting, closes every open connection, joins. Idempotent.
  void stop();
  // The listening address after start() (the real port for tcp://...:0).
  const net::Endpoint& endpoint() const;
  IngressStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The enclave's forwarder for one runtime-config ingress entry:
// vsock://ANY:<vsock_port> → tcp://127.0.0.1:<app_port>, named "ingress <vsock_port>".
IngressOptions enclave_ingress(const runtime::IngressConfig& entry);
// The host's forwarder for one host-config ingress entry of an enclave:
// <listen> → vsock://<enclave_cid>:<vsock_port>, named "ingress <enclave name> <vsock_port>".
// Throws Error(kUsage) if listen is not an endpoint.
IngressOptions host_ingress(const runtime::HostIngress& entry, const runtime::HostEnclave& enclave);

}  // namespace shield_nitro::relay
