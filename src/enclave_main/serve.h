// `shield-nitro-enclave serve`: the enclave service (docs/enclave-api.md).
#pragma once

#include <CLI/CLI.hpp>

namespace shield_nitro::enclave_main {

void add_serve(CLI::App& app);

}  // namespace shield_nitro::enclave_main
