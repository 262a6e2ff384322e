// shield-nitro-enclave: the trusted program, the one binary an EIF runs and a KMS key policy
// trusts through PCR0/PCR2. It holds only what runs inside the enclave (core, cbor, shield,
// channel, the NSM and KMS clients, net, enclave): no simulator, dev server, EIF builder, parent
// SDK or CLI (docs/threat-model.md lists its libraries; a test checks its symbols).
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "run.h"
#include "serve.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/version.h"

namespace {

// Keys and plaintext live in this process: no core dumps, and no ptrace or /proc/PID/mem
// access from other processes of the same user.
void refuse_core_dumps() {
  rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
  using shield_nitro::Errc;
  using shield_nitro::Error;
  const int64_t start_ns = shield_nitro::monotonic_ns();
  refuse_core_dumps();
  CLI::App app{
      "shield-nitro-enclave: the program inside the Nitro enclave. `serve` serves attestation, KMS key\n"
      "release and sealed artifacts to the parent; `run` supervises any app (sealed artifacts, logs,\n"
      "restarts). Keys and plaintext never leave enclave memory.\n\n"
      "Exit codes: 0 ok, 1 refused, 2 usage, 3 I/O or environment.",
      "shield-nitro-enclave"};
  app.set_version_flag("--version", shield_nitro::version());
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log debug detail to stderr");
  app.parse_complete_callback([&] {
    if (verbose) shield_nitro::set_log_level(shield_nitro::LogLevel::kDebug);
  });
  int status = 0;
  shield_nitro::enclave_main::add_serve(app);
  shield_nitro::enclave_main::add_run(app, status, start_ns);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "shield-nitro-enclave: " << e.what() << "\nRun 'shield-nitro-enclave --help' for the commands and options."
              << std::endl;
    return 2;
  } catch (const Error& e) {
    std::fflush(stdout);
    std::cerr << "shield-nitro-enclave: " << e.what() << std::endl;
    return shield_nitro::exit_code(e.code());
  } catch (const std::exception& e) {
    std::cerr << "shield-nitro-enclave: internal error: " << e.what() << std::endl;
    return 3;
  }
  return status;
}
