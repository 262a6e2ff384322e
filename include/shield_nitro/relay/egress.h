// Egress: how an app inside the enclave reaches allowlisted hosts. Two halves, one allowlist
// (runtime::EgressConfig, from the measured runtime config) enforced on both:
//
//   enclave: EgressProxy — an HTTP proxy on 127.0.0.1:<egress.proxy_port> (the app gets
//            HTTPS_PROXY/HTTP_PROXY). CONNECT host:port opens a tunnel; an absolute-form plain
//            HTTP request (GET http://host/path) is forwarded in origin-form. Each tunnel is opened
//            by the injected dial (the supervisor passes HostLink::connect: {"op":"connect"} over
//            vsock). A destination the allowlist refuses gets 403 and a log line; nothing is dialled.
//   host:    HostEgress — serves one host-link connection whose request was
//            {"op":"connect","target":"H:P"}: checks the host's copy of the allowlist (so a
//            compromised enclave that skips its own check is still refused), connects by TCP,
//            answers {"ok":true} or {"ok":false,"error":"..."} (and logs), then relays.
//
//   relay::EgressProxyOptions o;
//   o.listen = net::Endpoint::tcp("127.0.0.1", cfg.egress.proxy_port);
//   o.egress = cfg.egress;
//   o.dial = [&](const std::string& h, uint16_t p) { return host_link.connect(h, p); };
//   relay::EgressProxy proxy(o); proxy.start();
//
//   relay::HostEgress egress({.egress = enclave.runtime.egress, .name = "egress app"});
//   host_link::Request req = host_link::parse_request(host_link::read_line(fd, timeout, "enclave"));
//   if (req.op == host_link::Op::kConnect) egress.serve(std::move(conn), req.host, req.port);  // on its thread
//
// Both relay with net::relay (half-close propagated) and count bytes and refusals for metrics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/runtime/config.h"

namespace shield_nitro::relay {

// Opens a tunnel to host:port (blocking; called on the client's thread). Throws Error:
// kPolicy (refused: 403), kTimeout (504), anything else (502). The message is logged, and sent
// to the app in the error body.
using EgressDial = std::function<UniqueFd(const std::string& host, uint16_t port)>;

struct EgressProxyOptions {
  net::Endpoint listen;              // tcp://127.0.0.1:<egress.proxy_port>
  runtime::EgressConfig egress;      // allow: checked before anything is dialled
  EgressDial dial;                   // required
  size_t max_head_bytes = 16 * 1024;     // a request head past it: 431
  std::chrono::milliseconds head_timeout{std::chrono::seconds(10)};  // a head not complete by then: 408
  size_t max_connections = 256;      // at once; past it: 503 and close
};

struct EgressProxyStats {
  uint64_t connections = 0;  // accepted
  uint64_t tunnels = 0;      // CONNECT answered 200
  uint64_t forwarded = 0;    // plain HTTP requests forwarded
  uint64_t refused = 0;      // 403: not in the allowlist, or refused by the host
  uint64_t bad_requests = 0; // 400/405/408/431/501/503/505 answered by the proxy itself
  uint64_t failed_dials = 0; // 502/504: the tunnel could not be opened
  uint64_t bytes_up = 0;     // app → destination (a forwarded request's rewritten head included), finished connections
  uint64_t bytes_down = 0;   // destination → app, finished connections
};

class EgressProxy {
 public:
  // Throws Error(kUsage) without a dial callback.
  explicit EgressProxy(EgressProxyOptions options);
  ~EgressProxy();  // stop()
  EgressProxy(const EgressProxy&) = delete;
  EgressProxy& operator=(const EgressProxy&) = delete;

  // Listens; Error(kIo) naming the endpoint and the reason if it cannot.
  void start();
  // Stops accepting, closes open tunnels, joins. Idempotent.
  void stop();
  const net::Endpoint& endpoint() const;
  EgressProxyStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The enclave's proxy for the runtime config's egress section: listens on
// tcp://127.0.0.1:<proxy_port>, allows what `egress.allow` allows, dials with `dial`.
EgressProxyOptions enclave_egress(const runtime::EgressConfig& egress, EgressDial dial);

struct HostEgressOptions {
  runtime::EgressConfig egress;  // the host's copy of the enclave's allowlist (from its runtime config)
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::string name = "egress";   // log prefix, e.g. "egress app"
};

struct HostEgressStats {
  uint64_t connections = 0;  // connect ops served
  uint64_t refused = 0;      // not in the allowlist, or a malformed target
  uint64_t failed = 0;       // allowed, but the TCP connect failed or timed out
  uint64_t bytes_up = 0;     // enclave → destination, finished relays
  uint64_t bytes_down = 0;   // destination → enclave, finished relays
  uint64_t active = 0;       // relays open now
};

class HostEgress {
 public:
  explicit HostEgress(HostEgressOptions options);

  // Serves one connect op on `conn`, whose request line the caller already read (with
  // host_link::read_line, which never reads past the line): host and port from
  // host_link::parse_request, `pending` any bytes the caller read past that line (sent on to the
  // destination first). Answers one host-link line (host_link::answer_ok / answer_error), then
  // relays until both sides close or stop_fd becomes readable; closes conn. Thread-safe (one call
  // per connection thread); never throws for what the enclave or the destination do: refusals
  // and failures are answered, logged and counted.
  void serve(UniqueFd conn, const std::string& host, uint16_t port, ByteView pending = {}, int stop_fd = -1);
  // The same with the request's "target" as sent ("host:port", "[v6]:port"); a malformed one is
  // answered {"ok":false} and counted as refused.
  void serve(UniqueFd conn, std::string_view target, ByteView pending = {}, int stop_fd = -1);

  // The counters so far (for the host agent's /metrics).
  HostEgressStats stats() const;

 private:
  HostEgressOptions opt_;
  std::atomic<uint64_t> connections_{0}, refused_{0}, failed_{0}, up_{0}, down_{0}, active_{0};
};

}  // namespace shield_nitro::relay
