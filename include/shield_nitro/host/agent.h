// The host agent (`shield-nitro host run --config host.yaml`, docs/host-agent.md): one process on
// the parent instance serving one or more supervised enclaves. Untrusted: it relays sealed files,
// TLS to KMS and egress bytes, never a key or plaintext; what it must honour (artifact digests,
// egress allowlist, ports) comes from each enclave's measured runtime config, which the enclave
// enforces again on its side.
//
//   host::AgentOptions o;
//   o.config = runtime::load_host_config("host.yaml");
//   host::Agent agent(std::move(o));   // Error(kUsage) naming what is inconsistent
//   agent.start();                     // Error(kIo) naming an endpoint it cannot listen on
//   ...; agent.stop();
//
// Per enclave: a host-link listener on vsock://<runtime host.cid>:<host.port> (credentials,
// `source: host` artifacts after checking their digest, the log stream, egress through module
// relay), and its ingress listeners (TCP → vsock://<cid>:<vsock_port>). Shared: the KMS proxy on
// vsock://3:<kms.proxy_port> to the host config's kms.target, and /healthz + /metrics (Prometheus
// text) on the metrics endpoint.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/runtime/host_config.h"

namespace shield_nitro::host {

struct AgentOptions {
  runtime::HostConfig config;
  // Where credentials come from; empty: credentials_provider(config.credentials).
  std::shared_ptr<kms::CredentialsProvider> credentials;
  // Where `logs: stdout` records go (a test passes a pipe).
  int stdout_fd = 1;
  // How long an enclave may take to send its request line.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  // Credentials are fetched again when they expire within this margin: more than the enclave's
  // own (it asks again 15 minutes before expiry), so its request finds new ones.
  std::chrono::seconds refresh_margin{std::chrono::minutes(20)};
  const Clock* clock = nullptr;  // nullptr: system_clock()
};

// The host agent (see above). Thread-safe; all serving happens on its own threads.
class Agent {
 public:
  // Checks what the parser cannot: two enclaves on one host-link endpoint, one listen endpoint
  // used twice, an ingress vsock_port its runtime config does not forward. Error(kUsage).
  explicit Agent(AgentOptions options);
  ~Agent();  // stop()
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Opens every listener, then serves. Error(kIo, "cannot listen on <endpoint> (<what>): ...")
  // if one cannot be opened; nothing is left running then.
  void start();
  // Stops accepting, closes open connections, joins every thread. Idempotent.
  void stop();

  // The metrics endpoint after start() (the real port for tcp://...:0); nullopt when off.
  std::optional<net::Endpoint> metrics_endpoint() const;
  // The Prometheus text exposition of every counter (what GET /metrics answers).
  std::string metrics_text() const;
  // What GET /healthz answers: {"status":"ok","enclaves":{name:{"connected":..,"app":..}}}.
  std::string health_json() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A credentials source from host.yaml's `credentials:` value: "environment" (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), "imds" (IMDSv2 role credentials) or "file:PATH"
// (an AWS shared-credentials file, profile $AWS_PROFILE or default). Error(kUsage) otherwise.
std::shared_ptr<kms::CredentialsProvider> credentials_provider(const std::string& spec);

// The SHA-256 of a file's content as lowercase hex, read in 1 MiB pieces. Error(kIo).
std::string file_sha256(const std::string& path);

}  // namespace shield_nitro::host
