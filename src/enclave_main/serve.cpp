// shield-nitro-enclave serve: the service that runs inside the enclave.
#include <memory>
#include <string>

#include "serve.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/enclave/kms_releaser.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/server.h"
#include "shield_nitro/nsm/transport.h"
#include "shield_nitro/supervisor/start.h"

namespace shield_nitro::enclave_main {
namespace {

struct ServeOptions {
  std::string listen = "vsock://ANY:5000";
  std::string nsm = nsm::kNsmDefault;
  enclave::KmsReleaserOptions kms;
  std::string policy;
  size_t max_frame_mib = 64;
  size_t workers = 0;
  unsigned artifact_workers = 0;
  unsigned nsm_wait_s = 10;
  size_t max_buffered_replies_mib = net::ServerOptions{}.total_output_limit >> 20;
};

void run_serve(const ServeOptions& o) {
  set_log_component("enclave");
  net::block_termination_signals();
  enclave::ServiceOptions so;
  so.listen = net::Endpoint::parse(o.listen);
  so.server.max_frame = o.max_frame_mib << 20;
  so.server.workers = o.workers;
  so.artifact_workers = o.artifact_workers;
  if (o.max_buffered_replies_mib == 0) throw Error(Errc::kUsage, "--max-buffered-replies-mib must be at least 1");
  so.server.total_output_limit = o.max_buffered_replies_mib << 20;
  if (!o.policy.empty()) so.policy = enclave::ReleasePolicy::load(o.policy);
  auto nsm_client = std::make_unique<nsm::NsmClient>(
      supervisor::open_nsm_waiting(o.nsm, o.nsm_wait_s, [](const std::string& m) { log_info(m); }));
  nsm::NsmClient& nsm_ref = *nsm_client;
  auto releaser = enclave::make_kms_releaser(o.kms, nsm_ref);
  enclave::EnclaveService service(std::move(nsm_client), std::move(releaser), std::move(so));
  service.start();
  log_info("serving on " + service.endpoint().to_string() + " (NSM " + nsm_ref.transport().describe() + "; " +
           (o.artifact_workers ? std::to_string(o.artifact_workers) : "one per CPU") + " artifact workers)");
  int sig = net::wait_for_termination_signal();
  log_info("signal " + std::to_string(sig) + ": finishing in-flight requests, wiping keys and artifacts");
  service.stop();
}

}  // namespace

void add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* serve = app.add_subcommand(
      "serve",
      "Serve attestation, key release and sealed artifacts to the parent.\n"
      "Data keys are released by KMS only against this enclave's attestation document; they, the\n"
      "decrypted models and code stay in enclave memory. Plaintext results leave only inside the\n"
      "attested channel (docs/enclave-api.md, docs/threat-model.md).");
  serve->add_option("--listen", o->listen, "Endpoint: vsock://ANY:PORT | unix:PATH | tcp://127.0.0.1:PORT")
      ->capture_default_str();
  serve->add_option("--nsm", o->nsm, "NSM: /dev/nsm, or sim:DIR for the simulator (default: $SHIELD_NITRO_NSM or /dev/nsm)");
  serve->add_option("--kms-region", o->kms.region, "AWS region of the KMS key")->capture_default_str();
  serve->add_option("--kms-endpoint", o->kms.endpoint, "KMS URL (default https://kms.REGION.amazonaws.com)");
  serve->add_option("--kms-via", o->kms.via, "Reach KMS through the parent's proxy: vsock://3:8000 | unix:PATH");
  serve->add_option("--kms-ca", o->kms.ca_file, "PEM CA bundle for a private KMS endpoint (e.g. kms-local)");
  serve->add_option("--policy", o->policy, "Key-release policy JSON (allowed KMS keys, encryption context, code)");
  serve->add_option("--max-frame-mib", o->max_frame_mib, "Largest protocol frame accepted, MiB")->capture_default_str();
  serve->add_option("--workers", o->workers, "Handler threads (0 = one per CPU)");
  serve->add_option("--artifact-workers", o->artifact_workers,
                    "Threads decrypting an artifact of announced size while it arrives (0 = one per CPU)");
  serve->add_option("--nsm-wait", o->nsm_wait_s, "Seconds to wait for a simulated NSM (sim:DIR) that is still starting")
      ->capture_default_str();
  serve->add_option("--max-buffered-replies-mib", o->max_buffered_replies_mib,
                    "Unsent replies held for all clients together; past it the client holding most is dropped")
      ->capture_default_str();
  serve->footer(
      "Example (on Nitro):\n  shield-nitro-enclave serve --listen vsock://ANY:5000 --kms-via vsock://3:8000 --kms-region us-east-1\n"
      "Example (simulator):\n  shield-nitro-enclave serve --listen unix:/tmp/enc.sock --nsm sim:/tmp/nsm \\\n"
      "      --kms-endpoint https://127.0.0.1:4566 --kms-ca /tmp/kms/ca.pem");
  serve->callback([o] { run_serve(*o); });
}

}  // namespace shield_nitro::enclave_main
