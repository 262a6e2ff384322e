// net::Proxy: a byte relay from one listening endpoint to one TCP destination, the
// shield-nitro equivalent of AWS vsock-proxy (kms.md §7). The enclave reaches KMS through it:
// TLS runs end to end inside the enclave, so the proxy only ever sees ciphertext.
//
//   net::ProxyOptions o;
//   o.listen = net::Endpoint::parse("vsock://ANY:8000");
//   o.target_host = "kms.us-east-1.amazonaws.com"; o.target_port = 443;
//   o.allowlist = net::Allowlist::load("/etc/nitro_enclaves/vsock-proxy.yaml");
//   net::Proxy proxy(o);   // throws Error(kPolicy) if the target is not allow-listed
//   proxy.start(); ...; proxy.stop();
//
// Each accepted connection gets its own relay thread (connections are few and long-lived;
// at most max_connections at once). Half-close is propagated: when one side shuts down its
// writing half, the proxy finishes relaying what it has and shuts down the writing half
// towards the other side, while the other direction keeps flowing. One log line is written
// when a connection opens and one when it closes, with the byte counts of both directions.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "shield_nitro/net/allowlist.h"
#include "shield_nitro/net/endpoint.h"

namespace shield_nitro::net {

struct ProxyOptions {
  Endpoint listen;
  std::string target_host;
  uint16_t target_port = 0;
  // When set, the target must be allowed by it (checked once, at construction).
  std::optional<Allowlist> allowlist;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  size_t max_connections = 512;
  // When set, every relayed byte is appended to DIR/conn-<n>.up (client → target) and
  // DIR/conn-<n>.down (target → client). For audits and the parent-blindness test.
  std::string record_dir;
  ListenOptions listen_options;
};

struct ProxyStats {
  uint64_t connections = 0;        // accepted
  uint64_t failed_connects = 0;    // target unreachable or timed out
  uint64_t bytes_up = 0;           // client → target, finished connections only
  uint64_t bytes_down = 0;         // target → client, finished connections only
};

class Proxy {
 public:
  explicit Proxy(ProxyOptions options);
  ~Proxy();  // stop()
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Listens and starts accepting. Throws Error(kIo) naming the endpoint and the reason if it
  // cannot listen; nothing is left running then (stop() and the destructor have nothing to do).
  void start();
  // Stops accepting, closes all relayed connections and joins their threads. Idempotent.
  void stop();
  // The listening address after start() (real port for tcp://...:0).
  const Endpoint& endpoint() const;
  ProxyStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shield_nitro::net
