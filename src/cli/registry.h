// CLI subcommand registry. Each area's cmd_<area>.cpp registers its subcommands with a
// static CommandRegistrar, so areas land without touching main.cpp:
//
//   static void setup(CLI::App& app) {
//     auto* sub = app.add_subcommand("keygen", "Write a new 32-byte key file");
//     auto opts = std::make_shared<KeygenOptions>();
//     sub->add_option("-o,--output", opts->out)->required();
//     sub->callback([opts] { run_keygen(*opts); });   // throw shield_nitro::Error on failure
//   }
//   static shield_nitro::cli::CommandRegistrar reg(10, setup);
//
// Callbacks report failure by throwing shield_nitro::Error; main maps it to the exit code
// (1 "no", 2 usage, 3 environment/I/O) and prints one line "shield-nitro: <message>".
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace shield_nitro::cli {

using SetupFn = std::function<void(CLI::App&)>;

// order sorts the subcommands in --help (lower first).
struct CommandRegistrar {
  CommandRegistrar(int order, SetupFn setup);
};

void setup_all(CLI::App& app);

}  // namespace shield_nitro::cli
