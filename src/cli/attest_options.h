// Relying-party options shared by `attest verify` and the `parent` commands that verify an
// enclave (attest, invoke, decrypt): one vocabulary, one parser.
//
//   PolicyOptions o;
//   add_policy_options(sub, o);                  // --pcr N=HEX, --root PEM, --aws-root, ...
//   attest::Policy p = make_policy(o);           // then add a nonce / user data as needed
//   attest::TrustAnchor a = make_anchor(o);      // AWS's root unless --root names another
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "shield_nitro/attest/policy.h"
#include "shield_nitro/attest/trust_anchor.h"

namespace shield_nitro::cli {

struct PolicyOptions {
  bool aws_root = false;
  std::string root_pem;
  std::vector<std::string> pcrs;  // "N=HEX"
  int64_t max_age = -1;           // seconds; -1 = not checked
  bool allow_debug = false;
};

// Adds --aws-root, --root/--trust-root, --pcr, --max-age and --allow-debug.
void add_policy_options(CLI::App* sub, PolicyOptions& o);
// PCRs, max age and debug acceptance; kUsage for a malformed --pcr.
attest::Policy make_policy(const PolicyOptions& o);
// The pinned AWS root, or exactly the --root certificate.
attest::TrustAnchor make_anchor(const PolicyOptions& o);
// Hex from an option, kUsage naming the option when malformed.
Bytes usage_hex(const std::string& hex, const std::string& option);

}  // namespace shield_nitro::cli
