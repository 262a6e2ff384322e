// shield-nitro: one binary, many subcommands (see registry.h for how areas add theirs).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/version.h"


namespace {

// The subcommand the user reached (deepest selected), and its path ("kms encrypt").
const CLI::App* selected_command(const CLI::App& app, std::string* path) {
  const CLI::App* sub = &app;
  while (!sub->get_subcommands().empty()) {
    sub = sub->get_subcommands().front();
    *path += (path->empty() ? "" : " ") + sub->get_name();
  }
  return sub;
}

// A usage error: one line saying what, then the command's usage line and where to read more.
int usage_error(const CLI::App& app, const std::string& message) {
  std::string path;
  const CLI::App* sub = selected_command(app, &path);
  std::string name = "shield-nitro" + (path.empty() ? "" : " " + path);
  std::cerr << "shield-nitro: " << message << "\n"
            << CLI::Formatter().make_usage(sub, name) << "Run '" << name << " --help' for details and examples."
            << std::endl;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using shield_nitro::Errc;
  using shield_nitro::Error;
  CLI::App app{
      "shield-nitro: run Shield-encrypted code and models inside AWS Nitro Enclaves.\n"
      "Keys are released by KMS only to an enclave whose measurements match a policy;\n"
      "the parent instance relays ciphertext and never sees keys or plaintext.\n\n"
      "Exit codes: 0 ok, 1 refused (authentication, verification, policy), 2 usage, 3 I/O or environment.",
      "shield-nitro"};
  app.set_version_flag("--version", shield_nitro::version());
  app.require_subcommand(1);
  app.fallthrough();
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log debug detail to stderr");
  app.parse_complete_callback([&] {
    if (verbose) shield_nitro::set_log_level(shield_nitro::LogLevel::kDebug);
    // An interrupted command removes what it had not finished writing and says so in one line.
    std::string what;
    selected_command(app, &what);
    shield_nitro::exit_cleanly_on_interrupt(what.empty() ? "shield-nitro" : what);
  });
  shield_nitro::cli::setup_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(app, e.what());
  } catch (const Error& e) {
    std::fflush(stdout);
    // A command given no arguments at all gets its usage line with the complaint.
    std::string path;
    selected_command(app, &path);
    bool bare = argc - 1 == static_cast<int>(std::count(path.begin(), path.end(), ' ') + (path.empty() ? 0 : 1));
    if (e.code() == Errc::kUsage && bare) return usage_error(app, e.what());
    std::cerr << "shield-nitro: " << e.what() << std::endl;
    return shield_nitro::exit_code(e.code());
  } catch (const std::exception& e) {
    std::cerr << "shield-nitro: internal error: " << e.what() << std::endl;
    return 3;
  }
  return 0;
}
