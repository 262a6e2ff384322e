// shield-nitro-enclave run: the supervisor, the EIF's command for any app (docs/runtime.md).
#include "run.h"

#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/core/log.h"
#include "shield_nitro/supervisor/process.h"
#include "shield_nitro/supervisor/start.h"

namespace shield_nitro::enclave_main {

void add_run(CLI::App& app, int& status, int64_t start_ns) {
  auto o = std::make_shared<supervisor::RunOptions>();
  auto* run = app.add_subcommand(
      "run",
      "Supervise an app inside the enclave: bring up loopback, open the NSM, get credentials from the\n"
      "host agent, place the sealed artifacts (key released by attested KMS Decrypt) in a memory\n"
      "filesystem, start the configured forwarders, then run CMD as the configured user, reap,\n"
      "forward signals, restart on failure, and stream its logs to the host agent. Any failed step:\n"
      "the app never starts (exit 1 refused, 3 environment). Otherwise the exit code is the app's.");
  run->add_option("--config", o->config_path, "The runtime config (YAML, docs/runtime.md), measured in the image")
      ->required();
  run->add_option("--nsm", o->nsm, "NSM: /dev/nsm, or sim:DIR for the simulator (default: $SHIELD_NITRO_NSM or /dev/nsm)");
  run->add_option("--nsm-wait", o->nsm_wait_s, "Seconds to wait for a simulated NSM (sim:DIR) that is still starting")
      ->capture_default_str();
  run->add_option("--credentials-wait", o->credentials_wait_s, "Seconds to wait for credentials from the host agent")
      ->capture_default_str();
  run->add_option("command", o->command, "-- CMD [ARGS...]: the app")->required();
  run->footer(
      "Example (the command eif build --runtime gives an image):\n"
      "  shield-nitro-enclave run --config /etc/shield-nitro/runtime.yaml -- python3 /app/server.py");
  run->callback([o, &status, start_ns] {
    // Before any thread: only the process core receives these signals.
    supervisor::block_supervisor_signals();
    set_log_component("supervisor");
    o->start_ns = start_ns;
    status = supervisor::run_supervisor(*o);
  });
}

}  // namespace shield_nitro::enclave_main
