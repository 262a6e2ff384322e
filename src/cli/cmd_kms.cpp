// kms <op>, policy, kms-local: the KMS client for scripting and debugging, the attested key
// policy generator, and the local KMS-compatible server.
#include <signal.h>

#include <cctype>

#include <memory>
#include <string>
#include <vector>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/eif/reader.h"
#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms_local/recipient_verifier.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms_local/http_server.h"
#include "shield_nitro/kms/key_policy.h"
#include "shield_nitro/kms_local/local_kms.h"
#include "kms_options.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

using namespace shield_nitro::kms;

constexpr unsigned kSecretMode = 0600;

struct KmsArgs {
  KmsConnection conn;
  std::string recipient_nsm, key_id, blob_out;
  std::string key_pair_spec, public_key_in, public_key_out;
  std::vector<std::string> context;
  int bytes = 32;
  bool json = false;
  std::vector<std::string> files;
};

void need_files(const KmsArgs& a, size_t n, const std::string& usage) {
  if (a.files.size() != n) throw Error(Errc::kUsage, "expected " + usage);
}

void need_key(const KmsArgs& a) {
  if (a.key_id.empty()) throw Error(Errc::kUsage, "--key-id is required (key id, key ARN, alias/NAME or alias ARN)");
}

// Secrets go to a file (mode 0600) or stdout; never into --json output.
void check_secret_output(const std::string& path, bool json) {
  if (path == "-" && json) throw Error(Errc::kUsage, "--json prints to stdout, so write the secret to a file, not '-'");
}

// Private keys and shared secrets go only to a file (mode 0600): not to a terminal or pipe.
void check_secret_file(const std::string& path, const char* what) {
  if (path == "-") throw Error(Errc::kUsage, std::string(what) + " goes only to a file (mode 0600), not to stdout ('-')");
}

void write_secret(const std::string& path, const SecureBytes& s, bool json) {
  check_secret_output(path, json);
  write_file_atomic(path, s.view(), kSecretMode);
}

// The peer's public key for derive-shared-secret as DER SubjectPublicKeyInfo, from a DER file
// or a PEM "PUBLIC KEY" one (what `openssl pkey -pubout` writes).
Bytes public_key_der(const Bytes& file) {
  const std::string begin = "-----BEGIN PUBLIC KEY-----", end = "-----END PUBLIC KEY-----";
  std::string text(file.begin(), file.end());
  size_t b = text.find(begin);
  if (b == std::string::npos) return file;
  size_t e = text.find(end, b);
  if (e == std::string::npos) throw Error(Errc::kUsage, "--public-key: PEM without its END PUBLIC KEY line");
  std::string body;
  for (char c : text.substr(b + begin.size(), e - b - begin.size()))
    if (!std::isspace(static_cast<unsigned char>(c))) body += c;
  try {
    return base64_decode(body);
  } catch (const Error& err) {
    throw Error(Errc::kUsage, std::string("--public-key: the PEM body is not base64: ") + err.what());
  }
}

void run_kms(const std::string& op, const KmsArgs& a) {
  KmsClient kms = make_kms_client(a.conn);
  auto recipient = a.recipient_nsm.empty() ? nullptr : make_nsm_recipient(a.recipient_nsm);
  const Recipient* r = recipient ? &recipient->recipient : nullptr;
  EncryptionContext ctx = parse_encryption_context(a.context);
  nlohmann::ordered_json out;
  if (op == "encrypt") {
    need_key(a);
    need_files(a, 2, "IN|- OUT|-");
    SecureBytes plaintext(read_file(a.files[0]));
    EncryptResult e = kms.encrypt(a.key_id, plaintext.view(), ctx);
    write_file_atomic(a.files[1], e.ciphertext_blob);
    out = {{"KeyId", e.key_id}, {"CiphertextBytes", e.ciphertext_blob.size()}};
  } else if (op == "decrypt") {
    need_files(a, 2, "IN|- OUT|-");
    DecryptResult d = kms.decrypt(read_file(a.files[0]), ctx, a.key_id, r);
    write_secret(a.files[1], d.plaintext, a.json);
    out = {{"KeyId", d.key_id}, {"EncryptionAlgorithm", d.encryption_algorithm}, {"PlaintextBytes", d.plaintext.size()},
           {"Recipient", r != nullptr}};
  } else if (op == "generate-data-key") {
    need_key(a);
    need_files(a, 1, "OUT|- (the plaintext data key) and --blob-out FILE");
    if (a.blob_out.empty()) throw Error(Errc::kUsage, "--blob-out FILE is required: it receives the encrypted data key");
    DataKeyResult d = kms.generate_data_key(a.key_id, a.bytes, ctx, r);
    check_secret_output(a.files[0], a.json);
    // Both files or neither: a data key without its blob (or the reverse) is useless.
    AtomicFileWriter blob(a.blob_out), key(a.files[0], kSecretMode);
    blob.write(d.ciphertext_blob);
    key.write(d.plaintext.view());
    AtomicFileWriter::commit_all({&blob, &key});
    out = {{"KeyId", d.key_id}, {"CiphertextBlob", base64_encode(d.ciphertext_blob)}, {"Recipient", r != nullptr}};
  } else if (op == "generate-data-key-without-plaintext") {
    need_key(a);
    need_files(a, 1, "OUT|- (the encrypted data key)");
    DataKeyResult d = kms.generate_data_key_without_plaintext(a.key_id, a.bytes, ctx);
    write_file_atomic(a.files[0], d.ciphertext_blob);
    out = {{"KeyId", d.key_id}, {"CiphertextBytes", d.ciphertext_blob.size()}};
  } else if (op == "generate-random") {
    need_files(a, 1, "OUT|-");
    SecureBytes bytes = kms.generate_random(a.bytes, r);
    write_secret(a.files[0], bytes, a.json);
    out = {{"NumberOfBytes", bytes.size()}, {"Recipient", r != nullptr}};
  } else if (op == "generate-data-key-pair") {
    need_key(a);
    need_files(a, 1, "OUT (the private key, DER PKCS #8), --blob-out FILE and --public-key-out FILE");
    if (a.blob_out.empty() || a.public_key_out.empty())
      throw Error(Errc::kUsage, "--blob-out FILE and --public-key-out FILE are required: they receive the encrypted "
                                "private key and the public key");
    check_secret_file(a.files[0], "the private key");
    DataKeyPairResult d = kms.generate_data_key_pair(a.key_id, a.key_pair_spec, ctx, r);
    // All three or none: a private key without its wrapped copy or public key is half a pair.
    AtomicFileWriter blob(a.blob_out), pub(a.public_key_out), key(a.files[0], kSecretMode);
    blob.write(d.private_key_ciphertext_blob);
    pub.write(d.public_key);
    key.write(d.private_key.view());
    AtomicFileWriter::commit_all({&blob, &pub, &key});
    out = {{"KeyId", d.key_id}, {"KeyPairSpec", d.key_pair_spec}, {"PublicKey", base64_encode(d.public_key)},
           {"PrivateKeyCiphertextBlob", base64_encode(d.private_key_ciphertext_blob)}, {"Recipient", r != nullptr}};
  } else if (op == "generate-data-key-pair-without-plaintext") {
    need_key(a);
    need_files(a, 1, "OUT|- (the encrypted private key) and --public-key-out FILE");
    if (a.public_key_out.empty()) throw Error(Errc::kUsage, "--public-key-out FILE is required: it receives the public key");
    DataKeyPairResult d = kms.generate_data_key_pair_without_plaintext(a.key_id, a.key_pair_spec, ctx);
    AtomicFileWriter blob(a.files[0]), pub(a.public_key_out);
    blob.write(d.private_key_ciphertext_blob);
    pub.write(d.public_key);
    AtomicFileWriter::commit_all({&blob, &pub});
    out = {{"KeyId", d.key_id}, {"KeyPairSpec", d.key_pair_spec}, {"PublicKey", base64_encode(d.public_key)}};
  } else if (op == "derive-shared-secret") {
    need_key(a);
    need_files(a, 1, "OUT (the shared secret) and --public-key FILE (the peer's, DER or PEM)");
    if (a.public_key_in.empty()) throw Error(Errc::kUsage, "--public-key FILE is required: the peer's EC public key (DER or PEM)");
    check_secret_file(a.files[0], "the shared secret");
    SharedSecretResult s = kms.derive_shared_secret(a.key_id, public_key_der(read_file(a.public_key_in)), r);
    write_secret(a.files[0], s.shared_secret, a.json);
    out = {{"KeyId", s.key_id}, {"KeyAgreementAlgorithm", s.key_agreement_algorithm},
           {"SharedSecretBytes", s.shared_secret.size()}, {"Recipient", r != nullptr}};
  } else if (op == "get-public-key") {
    need_key(a);
    if (a.files.size() > 1) throw Error(Errc::kUsage, "expected at most OUT|- (the DER public key)");
    PublicKeyResult p = kms.get_public_key(a.key_id);
    if (!a.files.empty()) write_file_atomic(a.files[0], p.public_key);
    out = {{"KeyId", p.key_id}, {"KeySpec", p.key_spec}, {"KeyUsage", p.key_usage},
           {"PublicKey", base64_encode(p.public_key)}};
    auto add_list = [&out](const char* name, const std::vector<std::string>& list) {
      if (!list.empty()) out[name] = list;
    };
    add_list("EncryptionAlgorithms", p.encryption_algorithms);
    add_list("SigningAlgorithms", p.signing_algorithms);
    add_list("KeyAgreementAlgorithms", p.key_agreement_algorithms);
    if (a.files.empty()) {
      print_json(out);  // nothing written: the metadata is the answer
      return;
    }
  } else {
    need_key(a);
    need_files(a, 0, "no positional arguments");
    // KMS's answer as it came (every field, in its order), like `aws kms describe-key`.
    print_json(nlohmann::ordered_json::parse(kms.call_text("DescribeKey", nlohmann::json{{"KeyId", a.key_id}}.dump())));
    return;
  }
  if (a.json) print_json(out);
}

void add_kms_op(CLI::App* kms, const std::string& op, const std::string& what, const std::string& example) {
  auto args = std::make_shared<KmsArgs>();
  auto* sub = kms->add_subcommand(op, what);
  add_kms_connection_options(sub, args->conn);
  bool pair = op.rfind("generate-data-key-pair", 0) == 0;
  if (op == "decrypt" || op == "generate-data-key" || op == "generate-random" || op == "generate-data-key-pair" ||
      op == "derive-shared-secret")
    sub->add_option("--recipient-nsm", args->recipient_nsm,
                    "Attestation-gated: attest with this NSM (/dev/nsm or sim:DIR); KMS answers CiphertextForRecipient, opened in-process");
  if (op != "generate-random") sub->add_option("--key-id", args->key_id, "Key id, key ARN, alias/NAME or alias ARN");
  if (op != "describe-key" && op != "generate-random" && op != "derive-shared-secret" && op != "get-public-key")
    sub->add_option("--encryption-context", args->context, "K=V pair bound to the ciphertext (repeatable)")->allow_extra_args(false);
  if (op.rfind("generate", 0) == 0 && !pair) sub->add_option("--bytes", args->bytes, "Number of bytes (32 = AES_256, 16 = AES_128)")->check(CLI::Range(1, 1024));
  if (op == "generate-data-key") sub->add_option("--blob-out", args->blob_out, "Where to write the encrypted data key (CiphertextBlob)");
  if (pair) {
    sub->add_option("--key-pair-spec", args->key_pair_spec,
                    "RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384 or ECC_NIST_P521")->required();
    sub->add_option("--public-key-out", args->public_key_out, "Where to write the public key (DER SubjectPublicKeyInfo)");
  }
  if (op == "generate-data-key-pair")
    sub->add_option("--blob-out", args->blob_out, "Where to write the encrypted private key (PrivateKeyCiphertextBlob)");
  if (op == "derive-shared-secret")
    sub->add_option("--public-key", args->public_key_in, "The peer's EC public key (DER SubjectPublicKeyInfo or PEM), same curve as the KMS key");
  sub->add_flag("--json", args->json, "Print the result metadata as JSON (never secrets)");
  if (op != "describe-key") sub->add_option("files", args->files, "IN|- and/or OUT|- (see usage)");
  std::string secrets = op == "generate-data-key-pair" || op == "derive-shared-secret" ? "The private key or secret goes only to OUT (mode 0600), never into --json.\n" : "";
  sub->footer(secrets + "Example:\n  " + example);
  sub->callback([op, args] { run_kms(op, *args); });
}

void setup_kms(CLI::App& app) {
  auto* kms = app.add_subcommand("kms", "Call AWS KMS (or kms-local): encrypt, decrypt, data keys and key pairs, shared secrets, random, "
                                        "public keys, describe-key. "
                                        "With --recipient-nsm the key is released only to this attested enclave.");
  kms->require_subcommand(1);
  kms->footer("Credentials come from the environment, the shared credentials file (--profile) or IMDSv2, in that order.\n"
              "Every KMS error is printed with its HTTP status, __type, message and request id.");
  add_kms_op(kms, "encrypt", "Encrypt a small secret (<= 4 KiB) under a KMS key", "shield-nitro kms encrypt --key-id alias/app secret.bin secret.kms");
  add_kms_op(kms, "decrypt", "Decrypt a KMS ciphertext blob", "shield-nitro kms decrypt --recipient-nsm /dev/nsm secret.kms secret.bin");
  add_kms_op(kms, "generate-data-key", "Generate a data key: plaintext to OUT, encrypted copy to --blob-out",
             "shield-nitro kms generate-data-key --key-id alias/app --blob-out dk.kms dk.bin");
  add_kms_op(kms, "generate-data-key-without-plaintext", "Generate a data key, keeping only its encrypted copy",
             "shield-nitro kms generate-data-key-without-plaintext --key-id alias/app dk.kms");
  add_kms_op(kms, "generate-random", "Random bytes from KMS", "shield-nitro kms generate-random --bytes 32 --recipient-nsm sim:/tmp/nsm out.bin");
  add_kms_op(kms, "generate-data-key-pair",
             "Generate an RSA or EC data key pair: private key (DER PKCS #8) to OUT, its encrypted copy to --blob-out, "
             "public key to --public-key-out",
             "shield-nitro kms generate-data-key-pair --key-id alias/app --key-pair-spec ECC_NIST_P256 \\\n"
             "      --blob-out pair.kms --public-key-out pub.der --recipient-nsm /dev/nsm priv.der");
  add_kms_op(kms, "generate-data-key-pair-without-plaintext",
             "Generate a data key pair, keeping only the encrypted private key (OUT) and the public key",
             "shield-nitro kms generate-data-key-pair-without-plaintext --key-id alias/app --key-pair-spec RSA_3072 \\\n"
             "      --public-key-out pub.der pair.kms");
  add_kms_op(kms, "derive-shared-secret",
             "ECDH between a KEY_AGREEMENT KMS key and a peer's public key: the raw shared secret to OUT",
             "shield-nitro kms derive-shared-secret --key-id alias/agree --public-key peer.pem --recipient-nsm /dev/nsm secret.bin");
  add_kms_op(kms, "get-public-key", "Print an asymmetric KMS key's metadata as JSON, or write its public key (DER) to OUT",
             "shield-nitro kms get-public-key --key-id alias/agree --json kms-pub.der");
  add_kms_op(kms, "describe-key", "Print a key's metadata as JSON", "shield-nitro kms describe-key --key-id alias/app");
}

// ---- policy ----

struct PolicyArgs {
  std::string eif, role, admin, producer, account;
  std::vector<std::string> pcrs, context;
  bool signed_by_pcr8 = false;
};

void run_policy(const PolicyArgs& a) {
  KeyPolicyRequest r;
  if (!a.eif.empty()) {
    eif::Measurements m = eif::measure(a.eif);
    r.pcrs[0] = Bytes(m.pcr0.begin(), m.pcr0.end());
    r.pcrs[1] = Bytes(m.pcr1.begin(), m.pcr1.end());
    r.pcrs[2] = Bytes(m.pcr2.begin(), m.pcr2.end());
    if (m.pcr8) r.pcrs[8] = Bytes(m.pcr8->begin(), m.pcr8->end());
  }
  for (const auto& p : a.pcrs) {
    auto [i, v] = parse_pcr_argument(p);
    r.pcrs[i] = v;
  }
  if (r.pcrs.empty()) throw Error(Errc::kUsage, "give --eif APP.eif or at least --pcr 0=HEX");
  r.role_arn = a.role;
  r.admin_arn = a.admin;
  r.producer_arn = a.producer;
  r.account = a.account;
  r.signed_by_pcr8 = a.signed_by_pcr8;
  r.encryption_context = parse_encryption_context(a.context);
  print_json(nlohmann::ordered_json::parse(generate_key_policy(r)));
}

void setup_policy(CLI::App& app) {
  auto args = std::make_shared<PolicyArgs>();
  auto* sub = app.add_subcommand("policy",
                                 "Print a KMS key policy that releases the key only to an enclave with these measurements, "
                                 "and explicitly denies the role any release without attestation.");
  sub->add_option("--eif", args->eif, "Measure this EIF (PCR0/1/2, and PCR8 when signed)");
  sub->add_option("--pcr", args->pcrs, "N=HEX, 96 hex characters (repeatable; overrides --eif for that N)")->allow_extra_args(false);
  sub->add_option("--role-arn", args->role, "IAM role of the enclave's parent instance")->required();
  sub->add_option("--admin-arn", args->admin, "Key administrator (default: the account root)");
  sub->add_option("--producer-arn", args->producer, "Principal allowed to Encrypt / GenerateDataKeyWithoutPlaintext");
  sub->add_option("--account", args->account, "12-digit account id (default: from --role-arn)");
  sub->add_flag("--signed-by-pcr8", args->signed_by_pcr8, "Pin PCR8 (signing certificate) instead of PCR0, to survive rebuilds");
  sub->add_option("--encryption-context", args->context,
                  "K=V the role's Decrypt/GenerateDataKey/GenerateDataKeyPair must carry (repeatable): refuses wrapped keys "
                  "made for another purpose (docs/threat-model.md, key substitution)")
      ->allow_extra_args(false);
  sub->footer("Example:\n  shield-nitro policy --eif app.eif --role-arn arn:aws:iam::111122223333:role/enclave \\\n"
              "      --admin-arn arn:aws:iam::111122223333:role/kms-admin --encryption-context app=inference > policy.json\n"
              "  aws kms put-key-policy --key-id alias/app --policy-name default --policy file://policy.json\n"
              "All-zero PCRs (debug-mode enclaves) are refused: such a policy would admit any debug enclave.");
  sub->callback([args] { run_policy(*args); });
}

// ---- kms-local ----

struct LocalArgs {
  std::string listen = "127.0.0.1:4566", state, tls_cert, tls_key, account = "111122223333", region = "us-east-1";
  std::vector<std::string> trust_roots;
};

void run_kms_local(const LocalArgs& a) {
  if (a.tls_cert.empty() != a.tls_key.empty()) throw Error(Errc::kUsage, "--tls-cert and --tls-key go together");
  if (a.account.size() != 12 || a.account.find_first_not_of("0123456789") != std::string::npos)
    throw Error(Errc::kUsage, "--account must be 12 digits");
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts: sigwait below gets them
  LocalKmsOptions o;
  o.state_dir = a.state;
  o.account = a.account;
  o.region = a.region;
  if (!a.trust_roots.empty()) o.verifier = make_recipient_verifier(a.trust_roots);
  LocalKms kms(o);
  HttpServerOptions so;
  so.listen = a.listen;
  so.tls_cert = a.tls_cert;
  so.tls_key = a.tls_key;
  HttpServer server(so, [&kms](const HttpServerRequest& r) { return kms.handle(r); });
  server.start();
  log_info("kms-local: serving " + (a.listen.rfind("unix:", 0) == 0 ? a.listen : server.url()) + " (region " + a.region +
           ", account " + a.account + "); credentials in " + kms.credentials_path());
  int sig = 0;
  sigwait(&set, &sig);
  server.stop();
}

void setup_kms_local(CLI::App& app) {
  auto args = std::make_shared<LocalArgs>();
  auto* sub = app.add_subcommand("kms-local",
                                 "Run a KMS-compatible server for development and CI (AWS CLI, botocore and shield-nitro kms "
                                 "work against it), with SigV4, key policies and attestation-gated Recipient answers.");
  sub->add_option("--listen", args->listen, "HOST:PORT or unix:PATH")->capture_default_str();
  sub->add_option("--state", args->state, "State folder: credentials, keys, aliases (created on first start)")->required();
  sub->add_option("--tls-cert", args->tls_cert, "PEM certificate chain: serve HTTPS");
  sub->add_option("--tls-key", args->tls_key, "PEM private key for --tls-cert");
  sub->add_option("--trust-root", args->trust_roots,
                  "PEM root that attestation documents must chain to (repeatable), e.g. the NSM simulator's root.pem; "
                  "'aws' for the pinned AWS Nitro root")
      ->allow_extra_args(false);
  sub->add_option("--account", args->account, "Account id in ARNs")->capture_default_str();
  sub->add_option("--region", args->region, "Region in ARNs and the SigV4 scope")->capture_default_str();
  sub->footer("One server per --state folder (it holds DIR/kms-local.lock); with --tls-cert, plain HTTP on the\n"
              "port gets a 400 saying it speaks HTTPS. A --listen it cannot bind is one line, exit 3.\n"
              "Example:\n  shield-nitro kms-local --listen 127.0.0.1:4566 --state /tmp/kms --trust-root /tmp/nsm/root.pem &\n"
              "  AWS_SHARED_CREDENTIALS_FILE=/tmp/kms/credentials aws --profile admin --region us-east-1 \\\n"
              "      --endpoint-url http://127.0.0.1:4566 kms create-key");
  sub->callback([args] { run_kms_local(*args); });
}

CommandRegistrar reg_kms(60, setup_kms);
CommandRegistrar reg_policy(61, setup_policy);
CommandRegistrar reg_kms_local(62, setup_kms_local);

}  // namespace
}  // namespace shield_nitro::cli
