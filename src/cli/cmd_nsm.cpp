// NSM commands: request an attestation document from /dev/nsm or the simulator, describe the
// device, and run the simulated NSM (`nsm-sim init|serve`).
#include <csignal>
#include <iostream>
#include <memory>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/nsm/client.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

constexpr const char* kNsmOptionHelp =
    "The NSM to use: a device path (default /dev/nsm) or sim:DIR for a simulator serving DIR. "
    "Empty means $SHIELD_NITRO_NSM when set, else /dev/nsm; never a silent fallback";

Bytes hex_option(const std::string& value, const std::string& option) {
  try {
    return hex_decode(value);
  } catch (const Error& e) {
    throw Error(Errc::kUsage, option + ": " + e.what());
  }
}

std::optional<Bytes> optional_hex(const std::string& value, const std::string& option) {
  if (value.empty()) return std::nullopt;
  return hex_option(value, option);
}

// ---- attest request --------------------------------------------------------------------

struct RequestOptions {
  std::string nsm;
  std::string nonce;
  std::string user_data;
  std::string public_key_file;
  std::string out;
};

void run_request(const RequestOptions& o) {
  nsm::AttestationRequest req;
  req.nonce = optional_hex(o.nonce, "--nonce");
  req.user_data = optional_hex(o.user_data, "--user-data");
  if (!o.public_key_file.empty()) req.public_key = read_file(o.public_key_file);
  nsm::NsmClient client(nsm::open_nsm(o.nsm));
  Bytes doc = client.attestation(req);
  write_file_atomic(o.out, doc);
  log_info("attestation document of " + std::to_string(doc.size()) + " bytes from " + client.transport().describe());
}


void setup_request(CLI::App& app) {
  auto o = std::make_shared<RequestOptions>();
  auto* sub = attest_group(app).add_subcommand(
      "request", "Ask the NSM for an attestation document (inside an enclave, or from the simulator) and save it");
  sub->add_option("--nsm", o->nsm, kNsmOptionHelp);
  sub->add_option("--nonce", o->nonce, "Nonce to embed, hex (0-1024 bytes): the relying party's challenge");
  sub->add_option("--user-data", o->user_data, "User data to embed, hex (0-1024 bytes)");
  sub->add_option("--public-key", o->public_key_file, "File whose bytes go into public_key (e.g. an RSA-2048 SPKI DER)");
  sub->add_option("-o,--output", o->out, "Where to write the raw COSE_Sign1 document ('-' for stdout)")->required();
  sub->footer(
      "Example:\n  shield-nitro attest request --nsm sim:/tmp/nsm --nonce $(openssl rand -hex 16) -o doc.cbor\n"
      "  shield-nitro attest verify doc.cbor --root /tmp/nsm/root.pem");
  sub->callback([o] { run_request(*o); });
}

// ---- nsm describe / describe-pcr -------------------------------------------------------

struct DescribeOptions {
  std::string nsm;
  int index = -1;
  bool json = false;
};

void run_describe(const DescribeOptions& o) {
  nsm::NsmClient client(nsm::open_nsm(o.nsm));
  auto d = client.describe_nsm();
  if (o.json) {
    print_json({{"module_id", d.module_id},
                {"version", std::to_string(d.version_major) + "." + std::to_string(d.version_minor) + "." +
                                std::to_string(d.version_patch)},
                {"max_pcrs", d.max_pcrs},
                {"locked_pcrs", d.locked_pcrs},
                {"digest", d.digest}});
    return;
  }
  std::cout << "module_id:   " << d.module_id << "\n"
            << "version:     " << d.version_major << "." << d.version_minor << "." << d.version_patch << "\n"
            << "digest:      " << d.digest << "\nmax_pcrs:    " << d.max_pcrs << "\nlocked_pcrs:";
  for (uint16_t i : d.locked_pcrs) std::cout << " " << i;
  std::cout << std::endl;
}

void run_describe_pcr(const DescribeOptions& o) {
  if (o.index < 0 || o.index > 0xffff) throw Error(Errc::kUsage, "PCR index must be 0..31");
  nsm::NsmClient client(nsm::open_nsm(o.nsm));
  auto p = client.describe_pcr(static_cast<uint16_t>(o.index));
  if (o.json) print_json({{"index", o.index}, {"locked", p.lock}, {"value", hex_encode(p.data)}});
  else std::cout << "PCR" << o.index << (p.lock ? " (locked): " : " (open): ") << hex_encode(p.data) << std::endl;
}

void setup_nsm(CLI::App& app) {
  auto* nsm = app.add_subcommand("nsm", "Talk to the Nitro Secure Module (/dev/nsm or a simulator)");
  nsm->require_subcommand(1);
  auto o = std::make_shared<DescribeOptions>();
  auto* d = nsm->add_subcommand("describe", "Print the NSM's module id, version, digest and locked PCRs");
  d->add_option("--nsm", o->nsm, kNsmOptionHelp);
  d->add_flag("--json", o->json, "Print JSON");
  d->footer("Example:\n  shield-nitro nsm describe --nsm sim:/tmp/nsm --json");
  d->callback([o] { run_describe(*o); });
  auto* p = nsm->add_subcommand("describe-pcr", "Print one PCR's value and whether it is locked");
  p->add_option("index", o->index, "PCR index (0-31)")->required();
  p->add_option("--nsm", o->nsm, kNsmOptionHelp);
  p->add_flag("--json", o->json, "Print JSON");
  p->footer("Example:\n  shield-nitro nsm describe-pcr 0 --nsm sim:/tmp/nsm");
  p->callback([o] { run_describe_pcr(*o); });
}

// ---- nsm-sim init / serve --------------------------------------------------------------

struct SimOptions {
  std::string dir;
  std::vector<std::string> pcrs;
  bool debug = false;
  bool json = false;
  bool indefinite = false;
  bool fresh_leaf = false;
};

void run_sim_init(const SimOptions& o) {
  nsm::BootPcrs boot;
  boot.debug = o.debug;
  for (const std::string& arg : o.pcrs) {
    auto [index, value] = parse_index_hex(arg, "--pcr");
    if (index > 15) throw Error(Errc::kUsage, "--pcr " + std::to_string(index) + ": only PCRs 0-15 are set at boot");
    if (!boot.values.emplace(static_cast<uint16_t>(index), value).second)
      throw Error(Errc::kUsage, "--pcr " + std::to_string(index) + " given twice");
  }
  nsm::SimulatedNsm::init(o.dir, boot);
  auto sim = nsm::SimulatedNsm::open(o.dir);
  if (o.json) {
    print_json({{"dir", o.dir}, {"root", o.dir + "/root.pem"}, {"module_id", sim->module_id()}, {"debug", o.debug}});
    return;
  }
  std::cout << "simulated NSM initialised in " << o.dir << "\n  module_id: " << sim->module_id()
            << "\n  root:      " << o.dir << "/root.pem (trust it explicitly: attest verify --root)" << std::endl;
}

void run_sim_serve(const SimOptions& o) {
  nsm::SimulatorOptions options;
  options.indefinite_payload = o.indefinite;
  if (o.fresh_leaf) options.leaf_reuse_ms = 0;
  auto sim = nsm::SimulatedNsm::open(o.dir, options);
  // Block the stop signals before any server thread exists, so only sigwait() sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto server = sim->serve(nsm::simulator_socket_path(o.dir));
  std::cerr << "nsm-sim: serving " << sim->module_id() << " on " << server->socket_path() << std::endl;
  int sig = 0;
  sigwait(&stop, &sig);
  server->stop();
  std::cerr << "nsm-sim: stopped (signal " << sig << ")" << std::endl;
}

void setup_sim(CLI::App& app) {
  auto* sim = app.add_subcommand("nsm-sim", "A simulated Nitro Secure Module for machines without Nitro");
  sim->require_subcommand(1);
  auto o = std::make_shared<SimOptions>();
  auto* init = sim->add_subcommand(
      "init", "Create (or update) a simulator folder: its own CA chain, a module id, and the boot PCRs 0-15");
  init->add_option("dir", o->dir, "State folder (created 0700; keys are written 0600)")->required();
  init->add_option("--pcr", o->pcrs, "Boot PCR N=HEX (48 bytes), N in 0-15; PCR0 is required unless --debug");
  init->add_flag("--debug", o->debug, "A debug-mode enclave: PCR0, 1, 2 and 8 read as zeros");
  init->add_flag("--json", o->json, "Print JSON");
  init->footer(
      "Re-running init keeps the CA (root.pem stays valid) and replaces the boot PCRs.\n"
      "Example:\n  shield-nitro nsm-sim init /tmp/nsm --pcr 0=$(shield-nitro eif describe app.eif --json | jq -r .Measurements.PCR0)");
  init->callback([o] { run_sim_init(*o); });
  auto* serve = sim->add_subcommand(
      "serve", "Serve the simulated NSM on DIR/nsm.sock until SIGTERM/SIGINT (clients use --nsm sim:DIR)");
  serve->add_option("dir", o->dir, "State folder written by nsm-sim init")->required();
  serve->add_flag("--indefinite", o->indefinite, "Encode document payloads as indefinite-length maps (as AWS since 2025)");
  serve->add_flag("--fresh-leaf", o->fresh_leaf, "Sign every document with a new leaf instead of reusing one for 20 min");
  serve->footer("PCRs 16-31 start at zero and unlocked on every serve, like a fresh enclave.\n"
                "Example:\n  shield-nitro nsm-sim serve /tmp/nsm &\n"
                "  shield-nitro attest request --nsm sim:/tmp/nsm -o doc.cbor");
  serve->callback([o] { run_sim_serve(*o); });
}

void setup(CLI::App& app) {
  setup_request(app);
  setup_nsm(app);
  setup_sim(app);
}

CommandRegistrar reg(40, setup);

}  // namespace
}  // namespace shield_nitro::cli
