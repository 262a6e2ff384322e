// `shield-nitro-enclave run`: the supervisor (include/shield_nitro/supervisor/start.h).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>

namespace shield_nitro::enclave_main {

// Adds the subcommand; when it runs, `status` gets the exit code (the app's status once it
// ran). start_ns: monotonic_ns() at the top of main, for the start-to-app measure.
void add_run(CLI::App& app, int& status, int64_t start_ns);

}  // namespace shield_nitro::enclave_main
