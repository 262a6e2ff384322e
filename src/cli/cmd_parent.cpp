// shield-nitro parent ...: the parent SDK (parent::EnclaveClient) for scripts. Each command is
// one connection; the enclave's key and artifact handles outlive it, so a script can run
// load-key, then load-artifact, then invoke. Commands that return plaintext (invoke, decrypt)
// first open an attested channel, so they need the PCR policy options.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "attest_options.h"
#include "registry.h"
#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/channel/session.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/parent/enclave_client.h"
#include "shield_nitro/parent/json.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

using cbor::Value;
using nlohmann::ordered_json;

constexpr unsigned kPlaintextMode = 0600;

struct Common {
  std::string enclave;
  bool json = false;
  int timeout_s = 60;
};

struct CredentialOpts {
  std::string file;
  std::string profile;
};

// ---- shared plumbing ----

std::unique_ptr<parent::EnclaveClient> connect(const Common& c, size_t chunk_size = size_t{1} << 20) {
  parent::ClientOptions o;
  o.call_timeout = std::chrono::seconds(c.timeout_s);
  o.chunk_size = chunk_size;
  return parent::EnclaveClient::connect(net::Endpoint::parse(c.enclave), o);
}

void add_common(CLI::App* sub, Common& c) {
  sub->add_option("--enclave", c.enclave, "The enclave service: vsock://16:5000, unix:PATH or tcp://127.0.0.1:PORT")
      ->envname("SHIELD_NITRO_ENCLAVE")
      ->required();
  sub->add_flag("--json", c.json, "Print the enclave's response body as JSON (PCRs as hex, other byte strings as base64)");
  sub->add_option("--timeout", c.timeout_s, "Seconds to wait for each answer")->capture_default_str()->check(CLI::Range(1, 86400));
}

// A profile of one credentials file (--credentials-file F [--profile P]).
class FileCredentials final : public kms::CredentialsProvider {
 public:
  FileCredentials(std::string path, std::string profile) : path_(std::move(path)), profile_(std::move(profile)) {}
  kms::Credentials get() override {
    auto c = kms::credentials_from_file(path_, profile_);
    if (!c) throw Error(Errc::kEnvironment, "no profile '" + profile_ + "' with AWS credentials in " + path_);
    return std::move(*c);
  }

 private:
  std::string path_, profile_;
};

std::shared_ptr<kms::CredentialsProvider> credentials_provider(const CredentialOpts& o) {
  if (!o.file.empty()) {
    const char* env = std::getenv("AWS_PROFILE");
    std::string profile = !o.profile.empty() ? o.profile : (env && *env ? env : "default");
    return std::make_shared<FileCredentials>(o.file, profile);
  }
  return std::make_shared<kms::DefaultCredentialsChain>(o.profile);
}

void add_credentials(CLI::App* sub, CredentialOpts& o) {
  sub->add_option("--credentials-file", o.file, "Read AWS credentials from this INI file (default: the standard chain: "
                                                "environment, ~/.aws/credentials, IMDSv2)");
  sub->add_option("--profile", o.profile, "Profile of the credentials file (default: AWS_PROFILE or default)");
}

// invoke/decrypt return plaintext: they run inside a channel to an enclave the caller named.
void open_channel(parent::EnclaveClient& client, const PolicyOptions& p) {
  if (p.pcrs.empty())
    throw Error(Errc::kUsage, "this command opens an attested channel: name the enclave you trust with --pcr 0=HEX "
                              "(and --root PEM for a simulator)");
  client.open_channel(make_policy(p), make_anchor(p));
}

Bytes read_input(const std::string& path) { return read_file(path); }

// Plaintext goes to a file (mode 0600) or stdout, never into logs.
void write_output(const std::string& path, ByteView data) { write_file_atomic(path, data, kPlaintextMode); }

void print_body(const Value& body) { print_json(ordered_json::parse(parent::to_json_text(body))); }

std::string text_or(const Value* v, const std::string& fallback = "") {
  return v && v->is(cbor::Type::kText) ? v->as_text() : fallback;
}

// ---- describe / stats ----

void print_describe(const Common& c, const Value& d) {
  std::cout << "enclave:     " << c.enclave << "\n"
            << "version:     " << text_or(d.find("version")) << "\n"
            << "module_id:   " << text_or(d.find("module_id")) << "\n";
  if (const Value* pcrs = d.find("pcrs"); pcrs && pcrs->is(cbor::Type::kMap))
    for (const auto& [i, v] : pcrs->as_map())
      if (i.is(cbor::Type::kUnsigned) && v.is(cbor::Type::kBytes))
        std::cout << "PCR" << i.as_uint() << (i.as_uint() < 10 ? ":        " : ":       ") << hex_encode(v.as_bytes()) << "\n";
  if (const Value* keys = d.find("keys"); keys && keys->is(cbor::Type::kArray))
    for (const auto& k : keys->as_array())
      std::cout << "key:         " << text_or(k.find("handle")) << "  " << text_or(k.find("key_id")) << "\n";
  if (const Value* arts = d.find("artifacts"); arts && arts->is(cbor::Type::kArray))
    for (const auto& a : arts->as_array()) {
      const Value* size = a.find("size");
      std::cout << "artifact:    " << text_or(a.find("handle")) << "  " << text_or(a.find("kind")) << "  "
                << text_or(a.find("name")) << "  " << (size && size->is(cbor::Type::kUnsigned) ? size->as_uint() : 0)
                << " bytes\n";
    }
  if (const Value* cr = d.find("credentials"); cr && cr->is(cbor::Type::kMap)) {
    const Value* present = cr->find("present");
    const Value* expires = cr->find("expires_at");
    const Value* refresh = cr->find("refresh_needed");
    bool has = present && present->is(cbor::Type::kBool) && present->as_bool();
    std::cout << "credentials: " << (has ? "present" : "none");
    if (has && expires && expires->is_integer()) std::cout << ", expire at " << expires->as_int() << " (Unix s)";
    if (refresh && refresh->is(cbor::Type::kBool) && refresh->as_bool()) std::cout << ", refresh needed";
    std::cout << "\n";
  }
  std::cout << std::flush;
}

// describe's JSON: as the enclave answered, but PCRs in lowercase hex like every other
// measurement the CLI prints (eif describe, attest --json).
ordered_json describe_json(const Value& d) {
  ordered_json j = ordered_json::parse(parent::to_json_text(d));
  const Value* pcrs = d.find("pcrs");
  if (!pcrs || !pcrs->is(cbor::Type::kMap)) return j;
  ordered_json hex = ordered_json::object();
  for (const auto& [i, v] : pcrs->as_map())
    if (i.is(cbor::Type::kUnsigned) && v.is(cbor::Type::kBytes)) hex[std::to_string(i.as_uint())] = hex_encode(v.as_bytes());
  j["pcrs"] = std::move(hex);
  return j;
}

void run_describe(const Common& c) {
  Value d = connect(c)->describe();
  if (c.json) return print_json(describe_json(d));
  print_describe(c, d);
}

void run_stats(const Common& c) {
  Value s = connect(c)->stats();
  if (c.json) return print_body(s);
  const Value* uptime = s.find("uptime_ms");
  const Value* conns = s.find("connections");
  const Value* sessions = s.find("sessions");
  std::cout << "uptime_ms:   " << (uptime && uptime->is_integer() ? uptime->as_int() : 0) << "\n"
            << "connections: " << (conns && conns->is_integer() ? conns->as_int() : 0) << "\n"
            << "sessions:    " << (sessions && sessions->is_integer() ? sessions->as_int() : 0) << "\n";
  const Value* requests = s.find("requests");
  const Value* errors = s.find("errors");
  if (requests && requests->is(cbor::Type::kMap))
    for (const auto& [op, n] : requests->as_map()) {
      const Value* e = errors ? errors->find(text_or(&op)) : nullptr;
      std::cout << "op " << text_or(&op) << ": " << (n.is_integer() ? n.as_int() : 0) << " requests, "
                << (e && e->is_integer() ? e->as_int() : 0) << " errors\n";
    }
  std::cout << std::flush;
}

// ---- attest ----

struct AttestOpts {
  Common common;
  PolicyOptions policy;
  std::string nonce, user_data, out;
  bool no_verify = false;
};

void run_attest(const AttestOpts& o) {
  Bytes nonce = o.nonce.empty() ? os_random().bytes(channel::kNonceSize) : usage_hex(o.nonce, "--nonce");
  if (nonce.size() < parent::kMinNonceSize || nonce.size() > parent::kMaxNonceSize)
    throw Error(Errc::kUsage, "--nonce: expected 1..512 bytes (2..1024 hex digits), got " + std::to_string(nonce.size()));
  std::optional<Bytes> user_data;
  if (!o.user_data.empty()) user_data = usage_hex(o.user_data, "--user-data");
  attest::Policy policy = make_policy(o.policy);  // parsed before connecting: usage errors first
  policy.nonce = nonce;
  if (user_data) policy.user_data = *user_data;
  Bytes doc = connect(o.common)->attest(nonce, user_data);
  if (!o.out.empty()) write_file_atomic(o.out, doc);
  std::optional<attest::Claims> claims;
  if (!o.no_verify) claims = attest::Verifier(make_anchor(o.policy)).verify(doc, policy);
  if (o.common.json) {
    ordered_json j = {{"document", base64_encode(doc)}, {"nonce", hex_encode(nonce)}, {"verified", claims.has_value()}};
    if (claims) {
      ordered_json pcrs = ordered_json::object();
      for (const auto& [i, v] : claims->pcrs) pcrs[std::to_string(i)] = hex_encode(v);
      j["module_id"] = claims->module_id;
      j["timestamp_ms"] = claims->timestamp_ms;
      j["pcrs"] = pcrs;
    }
    return print_json(j);
  }
  std::cout << "document:   " << doc.size() << " bytes" << (o.out.empty() ? "" : ", written to " + o.out) << "\n"
            << "nonce:      " << hex_encode(nonce) << "\n";
  if (!claims) {
    std::cout << "UNVERIFIED (--no-verify): check it with 'shield-nitro attest verify --nonce ...'\n" << std::flush;
    return;
  }
  std::cout << "verified:   yes\n"
            << "module_id:  " << claims->module_id << "\n";
  for (const auto& [i, v] : claims->pcrs)
    if (i < 16) std::cout << "PCR" << i << (i < 10 ? ":       " : ":      ") << hex_encode(v) << "\n";
  std::cout << std::flush;
}

// ---- load-key ----

struct LoadKeyOpts {
  Common common;
  CredentialOpts creds;
  std::string blob, key_id;
  std::vector<std::string> context;
};

parent::EncryptionContext parse_context(const std::vector<std::string>& pairs) {
  parent::EncryptionContext ctx;
  for (const auto& p : pairs) {
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(Errc::kUsage, "--encryption-context expects K=V, got '" + p + "'");
    ctx[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return ctx;
}

void run_load_key(const LoadKeyOpts& o) {
  parent::EncryptionContext ctx = parse_context(o.context);
  Bytes blob = read_input(o.blob);
  auto provider = credentials_provider(o.creds);
  kms::Credentials creds = provider->get();  // before connecting: a missing source is the caller's to fix
  auto client = connect(o.common);
  client->set_credentials_provider(provider);
  client->push_credentials(std::move(creds));
  parent::KeyHandle k = client->load_key(blob, o.key_id, ctx);
  if (o.common.json)
    return print_body(Value::map({cbor::entry("handle", Value::text(k.handle)), cbor::entry("key_id", Value::text(k.key_id))}));
  std::cout << "handle: " << k.handle << "\nkey_id: " << k.key_id << std::endl;
}

// ---- load-artifact ----

struct LoadArtifactOpts {
  Common common;
  CredentialOpts creds;  // pushed first when given: a sealed file's key is released with them
  std::string key, kind = "model", name, file;
  std::vector<std::string> models;
  size_t chunk_kib = 1024;
};

void run_load_artifact(const LoadArtifactOpts& o) {
  std::shared_ptr<kms::CredentialsProvider> provider;
  std::optional<kms::Credentials> creds;
  if (!o.creds.file.empty() || !o.creds.profile.empty()) {
    provider = credentials_provider(o.creds);
    creds = provider->get();  // before connecting: a missing source is the caller's to fix
  }
  auto client = connect(o.common, o.chunk_kib << 10);
  if (provider) {
    client->set_credentials_provider(provider);
    client->push_credentials(std::move(creds));
  }
  parent::ArtifactInfo a = client->load_artifact(o.key, o.file, o.kind, o.name, o.models);
  if (o.common.json)
    return print_body(Value::map({cbor::entry("handle", Value::text(a.handle)), cbor::entry("kind", Value::text(a.kind)),
                                  cbor::entry("name", Value::text(a.name)), cbor::entry("size", Value::uint(a.size))}));
  std::cout << "handle: " << a.handle << "\nkind:   " << a.kind << "\nname:   " << a.name << "\nsize:   " << a.size
            << " bytes (plaintext, inside the enclave)" << std::endl;
}

// ---- invoke / encrypt / decrypt / unload ----

struct DataOpts {
  Common common;
  PolicyOptions policy;
  std::string handle, input = "-", output = "-";
};

void run_invoke(const DataOpts& o) {
  make_policy(o.policy);  // usage errors before any I/O
  Bytes input = read_input(o.input);
  auto client = connect(o.common);
  open_channel(*client, o.policy);
  SecureBytes out = client->invoke(o.handle, input);
  if (o.common.json) return print_json({{"output", base64_encode(out.view())}});
  write_output(o.output, out.view());
}

void run_decrypt(const DataOpts& o) {
  make_policy(o.policy);
  Bytes ct = read_input(o.input);
  auto client = connect(o.common);
  open_channel(*client, o.policy);
  SecureBytes pt = client->decrypt(o.handle, ct);
  if (o.common.json) return print_json({{"plaintext", base64_encode(pt.view())}});
  write_output(o.output, pt.view());
}

void run_encrypt(const DataOpts& o) {
  SecureBytes pt(read_input(o.input));
  Bytes ct = connect(o.common)->encrypt(o.handle, pt.view());
  if (o.common.json) return print_json({{"ciphertext", base64_encode(ct)}});
  write_file_atomic(o.output, ct);
}

void run_unload(const DataOpts& o) {
  connect(o.common)->unload(o.handle);
  if (o.common.json) return print_json(ordered_json::object());
  std::cout << "unloaded " << o.handle << " (wiped inside the enclave)" << std::endl;
}

// ---- registration ----

CLI::App* add(CLI::App* parent, const std::string& name, const std::string& what, const std::string& footer) {
  auto* sub = parent->add_subcommand(name, what);
  sub->footer(footer);
  return sub;
}

void add_io(CLI::App* sub, DataOpts& o, const std::string& in_what, const std::string& out_what) {
  sub->add_option("-i,--input", o.input, in_what + " (file, or - for stdin)")->capture_default_str();
  sub->add_option("-o,--output", o.output, out_what + " (file, or - for stdout)")->capture_default_str();
}

void setup_data_commands(CLI::App* p) {
  auto inv = std::make_shared<DataOpts>();
  auto* sub = add(p, "invoke", "Run a loaded code artifact on an input, inside the attested channel (plaintext stays sealed)",
                  "Opens an attested channel first: --pcr names the enclave you trust (PCR0 at least).\n"
                  "Example:\n  shield-nitro parent invoke --enclave vsock://16:5000 --pcr 0=$PCR0 --artifact art-2 \\\n"
                  "      --input request.bin --output reply.bin");
  add_common(sub, inv->common);
  add_policy_options(sub, inv->policy);
  sub->add_option("--artifact", inv->handle, "Handle of the code artifact (from load-artifact)")->required();
  add_io(sub, *inv, "The input", "Where the output goes (mode 0600)");
  sub->callback([inv] { run_invoke(*inv); });

  auto dec = std::make_shared<DataOpts>();
  sub = add(p, "decrypt", "Decrypt Shield v4 ciphertext with a loaded key, inside the attested channel",
            "Example:\n  shield-nitro parent decrypt --enclave vsock://16:5000 --pcr 0=$PCR0 --key key-1 --input ct.bin --output pt.bin");
  add_common(sub, dec->common);
  add_policy_options(sub, dec->policy);
  sub->add_option("--key", dec->handle, "Handle of the data key (from load-key)")->required();
  add_io(sub, *dec, "The ciphertext", "Where the plaintext goes (mode 0600)");
  sub->callback([dec] { run_decrypt(*dec); });

  auto enc = std::make_shared<DataOpts>();
  sub = add(p, "encrypt", "Encrypt with a loaded key (Shield v4 key mode); the parent sends this plaintext itself",
            "Example:\n  shield-nitro parent encrypt --enclave vsock://16:5000 --key key-1 --input record.json --output record.shield");
  add_common(sub, enc->common);
  sub->add_option("--key", enc->handle, "Handle of the data key (from load-key)")->required();
  add_io(sub, *enc, "The plaintext", "Where the ciphertext goes");
  sub->callback([enc] { run_encrypt(*enc); });

  auto unl = std::make_shared<DataOpts>();
  sub = add(p, "unload", "Wipe a loaded key or artifact inside the enclave",
            "Example:\n  shield-nitro parent unload --enclave vsock://16:5000 art-2");
  add_common(sub, unl->common);
  sub->add_option("handle", unl->handle, "key-N or art-N")->required();
  sub->callback([unl] { run_unload(*unl); });
}

void setup(CLI::App& app) {
  auto* p = app.add_subcommand("parent", "Drive an enclave service from the parent: attest, load keys and artifacts, invoke");
  p->require_subcommand(1);
  p->footer(
      "Each command is one connection; key and artifact handles live on in the enclave, so a script can run\n"
      "load-key, load-artifact, then invoke. Exit codes: 0 ok, 1 refused (verification, policy, KMS),\n"
      "2 usage, 3 connection or I/O. docs/parent-sdk.md has the details.");

  auto c = std::make_shared<Common>();
  auto* sub = add(p, "describe", "Version, module id, PCRs, loaded keys/artifacts (handles only) and credential state",
                  "Example:\n  shield-nitro parent describe --enclave vsock://16:5000 --json");
  add_common(sub, *c);
  sub->callback([c] { run_describe(*c); });

  auto st = std::make_shared<Common>();
  sub = add(p, "stats", "Request counters and latencies of the enclave service",
            "Example:\n  shield-nitro parent stats --enclave unix:/tmp/enclave.sock");
  add_common(sub, *st);
  sub->callback([st] { run_stats(*st); });

  auto at = std::make_shared<AttestOpts>();
  sub = add(p, "attest", "Ask the enclave for an attestation document (fresh nonce) and verify it",
            "Verifies against AWS's root unless --root names another (the simulator's root.pem);\n"
            "--pcr pins measurements. --no-verify only fetches (check later with 'attest verify').\n"
            "Example:\n  shield-nitro parent attest --enclave vsock://16:5000 --pcr 0=$PCR0 --out doc.cbor");
  add_common(sub, at->common);
  add_policy_options(sub, at->policy);
  sub->add_option("--nonce", at->nonce, "Challenge, 1..512 bytes in hex (default: 32 random bytes)");
  sub->add_option("--user-data", at->user_data, "user_data to embed and require (hex)");
  sub->add_option("-o,--output,--out", at->out, "Write the raw document (CBOR) here");
  sub->add_flag("--no-verify", at->no_verify, "Fetch only; do not verify");
  sub->callback([at] { run_attest(*at); });

  auto lk = std::make_shared<LoadKeyOpts>();
  sub = add(p, "load-key", "Push AWS credentials, then have the enclave decrypt a data key with KMS (Recipient)",
            "KMS releases the key only to an enclave whose PCRs match the key policy; it then lives in enclave\n"
            "memory under the handle printed here. Refusals (AccessDenied) exit 1.\n"
            "Example:\n  shield-nitro parent load-key --enclave vsock://16:5000 --blob data.key.enc \\\n"
            "      --key-id alias/app --encryption-context app=demo");
  add_common(sub, lk->common);
  add_credentials(sub, lk->creds);
  sub->add_option("--blob", lk->blob, "The encrypted data key (KMS CiphertextBlob), file or -")->required();
  sub->add_option("--key-id", lk->key_id, "KMS key id, ARN or alias the blob must belong to");
  sub->add_option("--encryption-context", lk->context, "K=V bound to the blob (repeatable)")->allow_extra_args(false);
  sub->callback([lk] { run_load_key(*lk); });

  auto la = std::make_shared<LoadArtifactOpts>();
  sub = add(p, "load-artifact", "Stream a Shield-encrypted or sealed model or code plugin into the enclave (decrypted inside)",
            "The file is sent in chunks and never read whole. Code artifacts are plugins (docs/plugin-abi.md)\n"
            "given the model handles they need with --model. A sealed file (shield-nitro seal) names its own\n"
            "KMS key: without --key the enclave releases it from the file's header, with the credentials it was\n"
            "pushed (by load-key, or here with --credentials-file / --profile).\n"
            "Example:\n  shield-nitro parent load-artifact --enclave vsock://16:5000 --key key-1 --kind model --name weights model.snst\n"
            "  shield-nitro parent load-artifact --enclave vsock://16:5000 --kind model model.sealed\n"
            "  shield-nitro parent load-artifact --enclave vsock://16:5000 --key key-1 --kind code --model art-1 plugin.snst");
  add_common(sub, la->common);
  sub->add_option("--key", la->key, "Handle of the data key that sealed a Shield artifact (none for a sealed file)");
  add_credentials(sub, la->creds);
  sub->add_option("--kind", la->kind, "model or code")->check(CLI::IsMember({"model", "code"}))->capture_default_str();
  sub->add_option("--name", la->name, "Name shown by describe (default: the file name)");
  sub->add_option("--model", la->models, "A model handle the code artifact gets at init (repeatable)")->allow_extra_args(false);
  sub->add_option("--chunk-kib", la->chunk_kib, "KiB per stream frame")->capture_default_str()->check(CLI::Range(1, 16384));
  sub->add_option("file", la->file, "The artifact (sealed file, Shield stream or v4 message), or -")->required();
  sub->callback([la] { run_load_artifact(*la); });

  setup_data_commands(p);
}

CommandRegistrar reg(65, setup);

}  // namespace
}  // namespace shield_nitro::cli
