// shield-nitro proxy: the parent-side byte relay that lets an enclave reach one TCP service
// (normally KMS), like AWS vsock-proxy, with an optional allowlist in its YAML format.
#include <memory>
#include <string>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/net/proxy.h"
#include "shield_nitro/net/server.h"

namespace shield_nitro::cli {
namespace {

struct ProxyArgs {
  std::string listen;
  std::string to;
  std::string allowlist;
  std::string record;
  int connect_timeout_ms = 5000;
  size_t max_connections = 512;
  bool group_access = false;
};

void run_proxy(const ProxyArgs& a) {
  net::block_termination_signals();  // before any thread starts, so they inherit the mask
  set_log_component("proxy");
  if (log_level() > LogLevel::kInfo) set_log_level(LogLevel::kInfo);
  net::ProxyOptions o;
  o.listen = net::Endpoint::parse(a.listen);
  net::Endpoint to;
  try {
    to = net::Endpoint::parse("tcp://" + a.to);
  } catch (const Error& e) {
    throw Error(Errc::kUsage, "--to expects HOST:PORT, got '" + a.to + "'");
  }
  if (to.port == 0) throw Error(Errc::kUsage, "--to: port must be 1-65535");
  o.target_host = to.host;
  o.target_port = static_cast<uint16_t>(to.port);
  if (!a.allowlist.empty()) o.allowlist = net::Allowlist::load(a.allowlist);
  o.record_dir = a.record;
  o.connect_timeout = std::chrono::milliseconds(a.connect_timeout_ms);
  o.max_connections = a.max_connections;
  o.listen_options.unix_mode = a.group_access ? 0660 : 0600;
  net::Proxy proxy(std::move(o));
  proxy.start();
  int sig = net::wait_for_termination_signal();
  log_info("proxy: signal " + std::to_string(sig) + ", shutting down");
  proxy.stop();
}

void setup(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "proxy",
      "Relay connections from a vsock or unix endpoint to one TCP destination (like AWS vsock-proxy).\n"
      "Run it on the parent so the enclave can reach KMS: TLS stays end to end inside the enclave,\n"
      "the proxy only moves ciphertext. With --allowlist the destination must be listed, else it\n"
      "refuses to start. Logs one line per connection open and close with byte counts.");
  auto a = std::make_shared<ProxyArgs>();
  sub->add_option("--listen", a->listen, "Where to accept: vsock://ANY:8000, vsock://3:8000 or unix:PATH")->required();
  sub->add_option("--to", a->to, "Destination HOST:PORT, e.g. kms.us-east-1.amazonaws.com:443")->required();
  sub->add_option("--allowlist", a->allowlist,
                  "Allowlist in vsock-proxy YAML (allowlist: then - {address: HOST, port: N} lines); --to must be listed");
  sub->add_option("--record", a->record, "Append every relayed byte to DIR/conn-<n>.up and DIR/conn-<n>.down (audits)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--connect-timeout", a->connect_timeout_ms, "Milliseconds to reach the destination")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  sub->add_option("--max-connections", a->max_connections, "Simultaneous relayed connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_flag("--group-access", a->group_access, "Unix socket mode 0660 instead of 0600");
  sub->footer(
      "Example:\n"
      "  shield-nitro proxy --listen vsock://ANY:8000 --to kms.us-east-1.amazonaws.com:443 \\\n"
      "      --allowlist /etc/nitro_enclaves/vsock-proxy.yaml\n"
      "Stops on SIGINT/SIGTERM. With SHIELD_NITRO_VSOCK_DIR set, vsock endpoints are unix sockets\n"
      "(see docs/protocol.md). An endpoint it cannot listen on (a taken port, a missing folder) is one\n"
      "line naming it and why, exit 3.");
  sub->callback([a] { run_proxy(*a); });
}

CommandRegistrar reg(80, setup);

}  // namespace
}  // namespace shield_nitro::cli
