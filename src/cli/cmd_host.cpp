// shield-nitro host run: the host agent on the parent instance for one or more supervised
// enclaves (host link, KMS proxy, ingress, egress, logs, /healthz and /metrics).
#include <memory>
#include <string>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/host/agent.h"
#include "shield_nitro/net/server.h"
#include "shield_nitro/runtime/host_config.h"

namespace shield_nitro::cli {
namespace {

struct HostArgs {
  std::string config;
};

void run_host(const HostArgs& a) {
  net::block_termination_signals();  // before any thread starts, so they inherit the mask
  set_log_component("host");
  if (log_level() > LogLevel::kInfo) set_log_level(LogLevel::kInfo);
  host::AgentOptions o;
  try {
    o.config = runtime::load_host_config(a.config);
  } catch (const Error& e) {
    // A config that does not parse is the operator's to fix: exit 2, naming the key.
    if (e.code() == Errc::kFormat) throw Error(Errc::kUsage, e.what());
    throw;
  }
  host::Agent agent(std::move(o));
  agent.start();
  if (auto m = agent.metrics_endpoint()) log_info("host agent: /healthz and /metrics on " + m->to_string());
  int sig = net::wait_for_termination_signal();
  log_info("host agent: signal " + std::to_string(sig) + ", shutting down");
  agent.stop();
}

void setup(CLI::App& app) {
  auto* host = app.add_subcommand("host", "The host agent on the parent instance for supervised enclaves");
  host->require_subcommand(1);
  auto* run = host->add_subcommand(
      "run",
      "Serve one or more enclaves from the parent: their host link (credentials, sealed artifacts,\n"
      "logs, allowlisted egress), the KMS proxy, ingress listeners (TCP to the enclave's vsock ports)\n"
      "and /healthz + Prometheus /metrics. See docs/host-agent.md.");
  auto a = std::make_shared<HostArgs>();
  run->add_option("--config", a->config, "The host agent's config (host.yaml; see docs/host-agent.md)")
      ->required()
      ->check(CLI::ExistingFile);
  run->footer(
      "Example:\n"
      "  shield-nitro host run --config /etc/shield-nitro/host.yaml\n"
      "Log records go to stdout (or the file the config names), one JSON object per line with the\n"
      "enclave's name first; the agent's own messages go to stderr. Stops on SIGINT/SIGTERM.\n"
      "Exit 2: a config error (its key named); exit 3: an endpoint it cannot listen on.");
  run->callback([a] { run_host(*a); });
}

CommandRegistrar reg(85, setup);

}  // namespace
}  // namespace shield_nitro::cli
