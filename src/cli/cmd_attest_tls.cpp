// attest tls: verify an enclave's attested-TLS endpoint and print the key to pin (issue 15,
// docs/attested-tls.md). The work is parent::verify_attested_tls; this prints its result.
#include <iostream>
#include <sstream>

#include "attest_options.h"
#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/parent/attested_tls.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

struct TlsOpts {
  std::string url;
  PolicyOptions policy;  // --root, --pcr, --max-age, --allow-debug (attest_options.h)
  int timeout_s = 10;
  bool json = false;
};

void run_tls(const TlsOpts& o) {
  attest::Policy policy = make_policy(o.policy);
  attest::TrustAnchor anchor = make_anchor(o.policy);
  if (o.timeout_s < 1 || o.timeout_s > 3600) throw Error(Errc::kUsage, "--timeout is 1..3600 seconds");
  parent::AttestedTlsOptions options;
  options.timeout = std::chrono::seconds(o.timeout_s);
  parent::TlsTarget target = parent::parse_tls_target(o.url);
  parent::AttestedTlsResult r;
  try {
    r = parent::verify_attested_tls(o.url, policy, anchor, options);
  } catch (const Error& e) {
    if (o.json) print_json({{"valid", false}, {"error", {{"code", errc_name(e.code())}, {"message", e.what()}}}});
    throw;
  }
  std::string curl = "curl --pinnedpubkey '" + r.curl_pin + "' --insecure https://" + parent::tls_authority(target) + "/";
  if (o.json) {
    nlohmann::ordered_json pcrs = nlohmann::ordered_json::object();
    for (const auto& [i, v] : r.claims.pcrs) pcrs[std::to_string(i)] = hex_encode(v);
    print_json({{"valid", true},
                {"url", o.url},
                {"spki_sha256", r.spki_sha256_hex},
                {"spki_sha256_base64", r.spki_sha256_base64},
                {"pin", r.curl_pin},
                {"curl", curl},
                {"app_user_data", hex_encode(r.app_user_data)},
                {"module_id", r.claims.module_id},
                {"timestamp_ms", r.claims.timestamp_ms},
                {"debug", r.claims.debug},
                {"pcrs", pcrs}});
    return;
  }
  std::ostringstream out;
  out << "verified: " << o.url << " holds its TLS key inside an attested enclave (" << r.claims.module_id << ")\n"
      << "spki sha256 (hex):    " << r.spki_sha256_hex << "\n"
      << "spki sha256 (base64): " << r.spki_sha256_base64 << "\n";
  if (!r.app_user_data.empty()) out << "app user_data:        " << hex_encode(r.app_user_data) << "\n";
  out << curl << "\n";
  std::cout << out.str() << std::flush;
}

void setup(CLI::App& app) {
  auto o = std::make_shared<TlsOpts>();
  auto* sub = attest_group(app).add_subcommand(
      "tls", "Verify an enclave's attested-TLS endpoint (its document binds the TLS key) and print the key to pin");
  sub->add_option("url", o->url, "https://HOST:PORT of the enclave's attested-TLS ingress")->required();
  add_policy_options(sub, o->policy);
  sub->add_option("--timeout", o->timeout_s, "Seconds for connect, handshake and the answer (default 10)");
  sub->add_flag("--json", o->json, "Print the result (or the failure) as JSON");
  sub->footer(
      "Fetches a fresh document over the TLS connection it describes (random nonce), verifies it and checks\n"
      "user_data = \"sn-tls/1\" || SHA-256(SPKI of the certificate seen). Exit 0 with the pin, 1 when refused.\n"
      "Example: shield-nitro attest tls https://10.0.0.5:8443 --pcr 0=$PCR0 --max-age 60");
  sub->callback([o] { run_tls(*o); });
}

CommandRegistrar reg(46, setup);

}  // namespace
}  // namespace shield_nitro::cli
