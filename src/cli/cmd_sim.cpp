// `shield-nitro sim ...`: run an EIF as a simulated Nitro enclave on this machine.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/pcr.h"
#include "shield_nitro/sim/simulator.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

struct RunOpts {
  sim::RunOptions run;
  std::string label = "current";
  bool attach = false;
};

void setup_run(CLI::App& sim) {
  auto o = std::make_shared<RunOpts>();
  auto* sub = sim.add_subcommand("run", "Start an EIF as a simulated enclave (detached), like nitro-cli run-enclave");
  sub->add_option("eif", o->run.eif_path, "The .eif to run")->required();
  sub->add_option("--state", o->run.state_dir, "Folder for this enclave's state, sockets and console")->required();
  sub->add_option("--cid", o->run.cid, "The enclave's vsock CID (the parent is CID 3)")->capture_default_str();
  sub->add_option("--memory", o->run.memory_mib, "Memory limit in MiB (default: the EIF's default, 1024)");
  sub->add_option("--cpus", o->run.cpus, "CPUs (default: the EIF's default, 2, capped at this machine's)");
  sub->add_option("--name", o->run.name, "EnclaveName (default: the EIF file name)");
  sub->add_flag("--debug-mode", o->run.debug_mode, "Debug enclave: PCR0/1/2/8 read as zeros inside, so KMS policies refuse it");
  sub->add_option("--role-arn", o->run.role_arn, "The parent's IAM role ARN, measured into PCR3");
  sub->add_option("--instance-id", o->run.instance_id, "The parent's instance id, measured into PCR4");
  sub->add_option("--hash-label", o->label, "Measurements' HashAlgorithm string: current | legacy")->capture_default_str();
  sub->add_flag("--attach-console", o->attach, "After start, stream the console until the enclave exits");
  sub->footer(
      "The enclave runs in its own PID, mount and network namespaces (loopback only), rooted at the\n"
      "image's root filesystem. It reaches the parent through STATE/vsock/3_PORT.sock and the parent\n"
      "reaches it through STATE/vsock/CID_PORT.sock; its NSM is simulated with the measured PCRs.\n"
      "Needs root (namespaces). See docs/simulator.md.\n"
      "Example: shield-nitro sim run app.eif --state /tmp/enc --memory 512 --cpus 1");
  sub->callback([o] {
    o->run.hash_label = eif::parse_hash_label(o->label);
    print_json(sim::run_enclave(o->run));
    if (o->attach) sim::follow_console(o->run.state_dir, std::cout);
  });
}

void print_summary(const nlohmann::ordered_json& all) {
  if (all.empty()) {
    std::cout << "no enclave\n";
    return;
  }
  for (const auto& e : all) {
    std::cout << e["EnclaveName"].get<std::string>() << "  " << e["State"].get<std::string>() << "  "
              << e["EnclaveID"].get<std::string>() << "  cid " << e["EnclaveCID"] << "  " << e["NumberOfCPUs"]
              << " CPUs  " << e["MemoryMiB"] << " MiB  flags " << e["Flags"].get<std::string>() << "\n";
    if (e.contains("Ended")) std::cout << "  ended: " << e["Ended"]["Text"].get<std::string>() << "\n";
    for (const auto& [k, v] : e["Measurements"].items())
      if (k != "HashAlgorithm") std::cout << "  " << k << " " << v.get<std::string>() << "\n";
  }
}

void setup_describe(CLI::App& sim) {
  auto state = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* sub = sim.add_subcommand("describe", "Describe the simulated enclave, like nitro-cli describe-enclaves");
  sub->add_option("--state", *state, "The enclave's state folder")->required();
  sub->add_flag("--json", *json, "describe-enclaves' JSON (an array), for scripts");
  sub->footer("Measurements are the image's PCRs, also for a debug-mode enclave (like nitro-cli).\n"
              "A terminated enclave's Ended says how: its command's exit status, the signal that killed it\n"
              "(OomKilled when the memory limit did), or sim terminate. A missing folder is an error (exit 1).\n"
              "Example: shield-nitro sim describe --state /tmp/enc --json");
  sub->callback([state, json] {
    auto all = sim::describe_enclave(*state);
    if (*json) print_json(all);
    else print_summary(all);
  });
}

void setup_terminate(CLI::App& sim) {
  auto state = std::make_shared<std::string>();
  auto* sub = sim.add_subcommand("terminate", "Stop the simulated enclave and clean up its processes and sockets");
  sub->add_option("--state", *state, "The enclave's state folder")->required();
  sub->footer("Kills every process of the enclave, stops its NSM, removes its sockets and cgroups. Idempotent.\n"
              "Example: shield-nitro sim terminate --state /tmp/enc");
  sub->callback([state] { print_json(sim::terminate_enclave(*state)); });
}

void setup_console(CLI::App& sim) {
  auto state = std::make_shared<std::string>();
  auto timeout = std::make_shared<int>(0);
  auto* sub = sim.add_subcommand("console", "Stream the enclave's console (stdout and stderr), like nitro-cli console");
  sub->add_option("--state", *state, "The enclave's state folder")->required();
  sub->add_option("--disconnect-timeout", *timeout, "Stop after this many seconds (default: when the enclave exits)");
  sub->footer("Prints the console from the start, then follows it until the enclave terminates.\n"
              "Example: shield-nitro sim console --state /tmp/enc --disconnect-timeout 10");
  sub->callback([state, timeout] { sim::follow_console(*state, std::cout, *timeout); });
}

void setup(CLI::App& app) {
  auto* sim = app.add_subcommand("sim", "Run EIFs as simulated Nitro enclaves on this machine (no Nitro needed)");
  sim->require_subcommand(1);
  setup_run(*sim);
  setup_describe(*sim);
  setup_terminate(*sim);
  setup_console(*sim);
}

CommandRegistrar reg(90, setup);

}  // namespace
}  // namespace shield_nitro::cli
