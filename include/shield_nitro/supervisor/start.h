// `shield-nitro-enclave run --config FILE -- CMD [ARGS...]`: the whole supervisor.
//
// In order, each step logged as an event (docs/runtime.md):
//   config          the runtime config (measured into PCR2), parsed and checked strictly
//   loopback        lo up (the Nitro init leaves it down)
//   nsm             /dev/nsm, or sim:DIR (waiting for a simulator that is still starting)
//   recipient_key   the enclave's RSA key for KMS Recipient answers (only when KMS is used)
//   credentials     the role credentials from the host agent, retried with a bounded backoff
//   storage         a size-limited tmpfs at storage.path (only with artifacts)
//   artifact        per artifact: fetched (image path or host stream), pinned digest checked,
//                   key released by attested KMS Decrypt, plaintext at its path (0400, app's user)
//   ingress/egress  the forwarders and the egress proxy, when configured
// then the app (process.h) with the supervisor's environment + app.env + what the runtime adds.
// Any failure: start_failed {step, error} is logged, the app never starts, and the exit code
// is 1 for a refusal (policy, verification, KMS AccessDenied) or 3 for the environment or I/O.
// SIGTERM/SIGINT/SIGQUIT during the start stop it (exit 128 + signal).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/nsm/transport.h"

namespace shield_nitro::supervisor {

struct RunOptions {
  std::string config_path;
  std::string nsm;                     // "/dev/nsm", "sim:DIR"; empty: $SHIELD_NITRO_NSM or /dev/nsm
  unsigned nsm_wait_s = 10;            // for a simulated NSM still starting
  unsigned credentials_wait_s = 120;   // for the host agent's credentials
  std::vector<std::string> command;    // CMD [ARGS...]
  int console_fd = 2;
  int64_t start_ns = 0;                // monotonic_ns() at the program's start
};

// The environment variable that lets the storage step fall back to a plain folder when a
// tmpfs cannot be mounted (tests that do not run as root): "1" allows it. Never in an image.
inline constexpr const char* kPlainStorageEnv = "SHIELD_NITRO_TEST_PLAIN_STORAGE";

// nsm::open_nsm(spec), except that a simulated NSM (sim:DIR, or $SHIELD_NITRO_NSM for the default
// spec) that is not serving yet is waited for, up to wait_s seconds; on_wait is told when the
// wait starts and when it ends. /dev/nsm is there or not: no wait.
std::unique_ptr<nsm::NsmTransport> open_nsm_waiting(const std::string& spec, unsigned wait_s,
                                                    const std::function<void(const std::string&)>& on_wait);

// Runs the start sequence and then the app; returns the exit code (the app's status once it
// ran). Call block_supervisor_signals() first thing in main.
int run_supervisor(const RunOptions& options);

}  // namespace shield_nitro::supervisor
