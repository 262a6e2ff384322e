// shield-nitro: one binary, many subcommands (see registry.h for how areas add theirs).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"

#ifndef SN_VERSION
#define SN_VERSION "0.1.0"
#endif

int main(int argc, char** argv) {
  using shield_nitro::Errc;
  using shield_nitro::Error;
  CLI::App app{
      "shield-nitro: run Shield-encrypted code and models inside AWS Nitro Enclaves.\n"
      "Keys are released by KMS only to an enclave whose measurements match a policy;\n"
      "the parent instance relays ciphertext and never sees keys or plaintext.\n\n"
      "Exit codes: 0 ok, 1 refused (authentication, verification, policy), 2 usage, 3 I/O or environment.",
      "shield-nitro"};
  app.set_version_flag("--version", SN_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log debug detail to stderr");
  app.parse_complete_callback([&] {
    if (verbose) shield_nitro::set_log_level(shield_nitro::LogLevel::kDebug);
    // An interrupted command removes what it had not finished writing and says so in one line.
    std::string what;
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
      sub = sub->get_subcommands().front();
      what += (what.empty() ? "" : " ") + sub->get_name();
    }
    shield_nitro::exit_cleanly_on_interrupt(what.empty() ? "shield-nitro" : what);
  });
  shield_nitro::cli::setup_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const Error& e) {
    std::fflush(stdout);
    std::cerr << "shield-nitro: " << e.what() << std::endl;
    return shield_nitro::exit_code(e.code());
  } catch (const std::exception& e) {
    std::cerr << "shield-nitro: internal error: " << e.what() << std::endl;
    return 3;
  }
  return 0;
}
