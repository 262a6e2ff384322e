// attest verify / attest show: check or inspect a Nitro attestation document.
// (`attest request` lives with the NSM commands in cmd_nsm.cpp.)
#include <ctime>
#include <iostream>
#include <sstream>

#include "attest_options.h"
#include "registry.h"
#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

using nlohmann::ordered_json;

struct VerifyOpts {
  std::string doc;
  PolicyOptions policy;  // --root, --pcr, --max-age, --allow-debug (attest_options.h)
  std::string at;
  std::string nonce, user_data;
  bool json = false;
};

struct ShowOpts {
  std::string doc;
  bool json = false;
};

Bytes read_document(const std::string& path) {
  return attest::document_bytes_from_text_or_binary(read_file(path));
}

// Offset suffix of RFC 3339 ("Z", "+02:00", "-0530") in seconds east of UTC, or -1 on error.
bool parse_offset(const std::string& s, int64_t& east) {
  if (s == "Z" || s == "z") return (east = 0, true);
  int h = 0, m = 0;
  char sign = 0;
  if (std::sscanf(s.c_str(), "%c%2d:%2d", &sign, &h, &m) != 3 && std::sscanf(s.c_str(), "%c%2d%2d", &sign, &h, &m) != 3)
    return false;
  if ((sign != '+' && sign != '-') || h > 23 || m > 59) return false;
  east = (sign == '+' ? 1 : -1) * (h * 3600 + m * 60);
  return true;
}

// "--at": Unix seconds, or RFC 3339 such as 2021-03-17T22:01:55Z / 2021-03-17T22:01:55.685+00:00.
int64_t parse_at_ms(const std::string& at) {
  if (!at.empty() && at.find_first_not_of("0123456789") == std::string::npos && at.size() <= 12)
    return std::stoll(at) * 1000;
  std::tm tm{};
  const char* rest = strptime(at.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) throw Error(Errc::kUsage, "--at expects Unix seconds or RFC 3339 (2021-03-17T22:01:55Z), got '" + at + "'");
  int64_t ms = 0;
  if (*rest == '.') {
    int digits = 0;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest, ++digits)
      if (digits < 3) ms = ms * 10 + (*rest - '0');
    for (int d = digits; d < 3; ++d) ms *= 10;
  }
  int64_t east = 0;
  if (!parse_offset(rest, east)) throw Error(Errc::kUsage, "--at: RFC 3339 time needs a zone (Z or +HH:MM), got '" + at + "'");
  return (static_cast<int64_t>(timegm(&tm)) - east) * 1000 + ms;
}

attest::Policy make_verify_policy(const VerifyOpts& o) {
  attest::Policy p = make_policy(o.policy);
  if (!o.nonce.empty()) p.nonce = usage_hex(o.nonce, "--nonce");
  if (!o.user_data.empty()) p.user_data = usage_hex(o.user_data, "--user-data");
  return p;
}

// ---- output shared by verify and show ----

ordered_json optional_json(const attest::OptionalBytes& f) {
  ordered_json j = {{"presence", attest::presence_name(f.presence)}};
  if (f.has_value()) {
    j["length"] = f.value.size();
    j["hex"] = hex_encode(f.value);
  }
  return j;
}

std::string optional_text(const attest::OptionalBytes& f) {
  return f.has_value() ? std::to_string(f.value.size()) + " bytes" : attest::presence_name(f.presence);
}

ordered_json cert_json(const attest::CertificateSummary& c) {
  return {{"subject", c.subject},       {"issuer", c.issuer},
          {"serial", c.serial_hex},     {"not_before", attest::format_utc_seconds(c.not_before_s)},
          {"not_after", attest::format_utc_seconds(c.not_after_s)},
          {"key_type", c.key_type},     {"ca", c.is_ca},
          {"sha256", c.sha256_hex}};
}

std::string cert_text(const attest::CertificateSummary& c) {
  return c.subject + "\n      issuer " + c.issuer + "\n      valid  " + attest::format_utc_seconds(c.not_before_s) +
         " .. " + attest::format_utc_seconds(c.not_after_s) + ", " + c.key_type + (c.is_ca ? ", CA" : "");
}

// The fields Claims and Document share.
template <typename T>
ordered_json fields_json(const T& d) {
  ordered_json pcrs = ordered_json::object();
  for (const auto& [i, v] : d.pcrs) pcrs[std::to_string(i)] = hex_encode(v);
  return {{"module_id", d.module_id},
          {"timestamp_ms", d.timestamp_ms},
          {"timestamp", attest::format_utc_millis(static_cast<int64_t>(d.timestamp_ms))},
          {"digest", d.digest},
          {"pcrs", pcrs},
          {"public_key", optional_json(d.public_key)},
          {"user_data", optional_json(d.user_data)},
          {"nonce", optional_json(d.nonce)}};
}

template <typename T>
void print_fields(std::ostream& out, const T& d) {
  out << "module_id:  " << d.module_id << "\n"
      << "timestamp:  " << attest::format_utc_millis(static_cast<int64_t>(d.timestamp_ms)) << " (" << d.timestamp_ms
      << " ms)\n"
      << "digest:     " << d.digest << "\n"
      << "public_key: " << optional_text(d.public_key) << "\n"
      << "user_data:  " << optional_text(d.user_data) << "\n"
      << "nonce:      " << optional_text(d.nonce) << "\n";
  for (const auto& [i, v] : d.pcrs) out << "PCR" << i << (i < 10 ? ":  " : ": ") << hex_encode(v) << "\n";
}

// ---- verify ----

void print_verified(const attest::Claims& c, const attest::TrustAnchor& anchor, bool json) {
  std::string root = anchor.is_aws() ? "AWS Nitro Enclaves Root G1" : anchor.subject() + " (caller-supplied root)";
  if (json) {
    ordered_json j = {{"valid", true}, {"trust_anchor", root}, {"trust_anchor_sha256", anchor.sha256_hex()},
                      {"checked_at", attest::format_utc_millis(c.checked_at_ms)}, {"debug", c.debug}};
    j.update(fields_json(c));
    j["leaf"] = cert_json(c.leaf);
    print_json(j);
    return;
  }
  std::ostringstream out;
  out << "verified: attestation document signed through " << root << "\n"
      << "checked at: " << attest::format_utc_millis(c.checked_at_ms) << "\n";
  print_fields(out, c);
  out << "debug:      " << (c.debug ? "YES (PCR0 all zero, accepted by --allow-debug)" : "no") << "\n"
      << "leaf:       " << cert_text(c.leaf) << "\n";
  std::cout << out.str() << std::flush;
}

void run_verify(const VerifyOpts& o) {
  attest::Policy policy = make_verify_policy(o);
  std::optional<int64_t> at;
  if (!o.at.empty()) at = parse_at_ms(o.at);
  attest::TrustAnchor anchor = make_anchor(o.policy);
  Bytes doc = read_document(o.doc);
  attest::Verifier verifier(anchor, {.chain_cache = false});
  attest::VerifyResult r = verifier.check(doc, policy, at);
  if (r.ok()) return print_verified(*r.claims, anchor, o.json);
  if (o.json) print_json({{"valid", false}, {"error", {{"code", errc_name(r.error->code())}, {"message", r.error->what()}}}});
  throw *r.error;
}

// ---- show ----

template <typename F>
ordered_json summary_or_error(const Bytes& der, F&& as) {
  try {
    return as(attest::summarize_certificate(der));
  } catch (const Error& e) {
    return std::string("unparsable: ") + e.what();
  }
}

void run_show(const ShowOpts& o) {
  attest::Document d = attest::decode_document(read_document(o.doc));
  if (o.json) {
    ordered_json j = {{"verified", false}, {"tagged", d.envelope.tagged},
                      {"indefinite_envelope", d.envelope.indefinite}, {"indefinite_payload_map", d.indefinite_payload_map}};
    j.update(fields_json(d));
    j["certificate"] = summary_or_error(d.certificate, cert_json);
    j["cabundle"] = ordered_json::array();
    for (const auto& c : d.cabundle) j["cabundle"].push_back(summary_or_error(c, cert_json));
    print_json(j);
    return;
  }
  std::ostringstream out;
  out << "UNVERIFIED attestation document (decoded only; use 'attest verify' before trusting any field)\n"
      << "envelope:   COSE_Sign1 ES384" << (d.envelope.tagged ? ", tag 18" : ", untagged")
      << (d.envelope.indefinite ? ", indefinite array" : "") << ", payload map "
      << (d.indefinite_payload_map ? "indefinite" : "definite") << "\n";
  print_fields(out, d);
  auto text = [](const attest::CertificateSummary& c) { return cert_text(c); };
  out << "certificate:\n    " << summary_or_error(d.certificate, text).get<std::string>() << "\n";
  for (size_t i = 0; i < d.cabundle.size(); ++i)
    out << "cabundle[" << i << "]:\n    " << summary_or_error(d.cabundle[i], text).get<std::string>() << "\n";
  std::cout << out.str() << std::flush;
}

// ---- registration ----


void setup_verify(CLI::App& attest) {
  auto o = std::make_shared<VerifyOpts>();
  auto* sub = attest.add_subcommand(
      "verify",
      "Verify an attestation document: structure, certificate chain to one trusted root, ES384 signature, then your policy");
  sub->add_option("doc", o->doc, "The document: raw CBOR, base64, or - for stdin")->required();
  add_policy_options(sub, o->policy);
  sub->add_option("--at", o->at,
                  "Check at this time (Unix seconds or RFC 3339) instead of now; for stored documents, "
                  "it proves validity at that time only");
  sub->add_option("--nonce", o->nonce, "Require the document's nonce to equal this challenge (hex)");
  sub->add_option("--user-data", o->user_data, "Require user_data to equal this (hex)");
  sub->add_flag("--json", o->json, "Print the verified claims (or the failure) as JSON");
  sub->footer(
      "Exit 0 with the verified claims, or 1 with one line naming the first failed check.\n"
      "Examples:\n"
      "  shield-nitro attest verify doc.cbor --nonce $CHALLENGE --max-age 300 --pcr 0=$PCR0\n"
      "  shield-nitro attest verify stored.cbor --at 2021-03-17T22:01:55Z\n"
      "  shield-nitro attest verify doc.cbor --root /tmp/nsm/root.pem   # the simulator's documents");
  sub->callback([o] { run_verify(*o); });
}

void setup_show(CLI::App& attest) {
  auto o = std::make_shared<ShowOpts>();
  auto* sub = attest.add_subcommand("show", "Decode an attestation document without verifying it: fields and certificates");
  sub->add_option("doc", o->doc, "The document: raw CBOR, base64, or - for stdin")->required();
  sub->add_flag("--json", o->json, "Print JSON");
  sub->footer("Nothing shown is trustworthy until 'attest verify' passes.\n"
              "Example: shield-nitro attest show doc.cbor --json | jq .pcrs");
  sub->callback([o] { run_show(*o); });
}

void setup(CLI::App& app) {
  CLI::App& attest = attest_group(app);
  setup_verify(attest);
  setup_show(attest);
}

CommandRegistrar reg(45, setup);

}  // namespace
}  // namespace shield_nitro::cli
