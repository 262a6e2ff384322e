#include "attest_options.h"

#include "shield_nitro/attest/document.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/pcr.h"
#include "shield_nitro/core/file_io.h"
#include "util.h"

namespace shield_nitro::cli {

void add_policy_options(CLI::App* sub, PolicyOptions& o) {
  auto* aws = sub->add_flag("--aws-root", o.aws_root, "Trust the pinned AWS Nitro Enclaves Root G1 (the default)");
  sub->add_option("--root,--trust-root", o.root_pem,
                  "Trust this root certificate (PEM) INSTEAD of AWS's, e.g. a simulator's root.pem")
      ->excludes(aws);
  sub->add_option("--pcr", o.pcrs, "Require PCR N to equal HEX (48 bytes); repeat an index to allow alternatives");
  sub->add_option("--max-age", o.max_age, "Require the document to be at most this many seconds old (and not from the future)")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--allow-debug", o.allow_debug, "Accept debug-mode enclaves (PCR0 all zero); they are refused otherwise");
}

Bytes usage_hex(const std::string& hex, const std::string& option) {
  try {
    return hex_decode(hex);
  } catch (const Error& e) {
    throw Error(Errc::kUsage, option + ": " + e.what());
  }
}

attest::Policy make_policy(const PolicyOptions& o) {
  attest::Policy p;
  for (const auto& arg : o.pcrs) {
    auto [index, value] = parse_index_hex(arg, "--pcr");
    check_pcr(index, value.size());
    p.expect_pcr(static_cast<uint32_t>(index), std::move(value));
  }
  if (o.max_age >= 0) p.max_age_s = o.max_age;
  p.allow_debug = o.allow_debug;
  return p;
}

attest::TrustAnchor make_anchor(const PolicyOptions& o) {
  if (o.root_pem.empty()) return attest::TrustAnchor::aws();
  return attest::TrustAnchor::from_pem(read_text_file(o.root_pem));
}

}  // namespace shield_nitro::cli
