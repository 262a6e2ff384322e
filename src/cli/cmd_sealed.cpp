// seal / unseal: sealed artifacts (docs/stream-format.md §8). seal asks KMS for a data key with
// the producer's credentials and writes header + stream container; unseal asks KMS for the key
// again (with Recipient inside an enclave) and decrypts; unseal --show reads the header only.
#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "kms_options.h"
#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/sealed/sealed.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

constexpr unsigned kPlaintextMode = 0600;

struct SealArgs {
  KmsConnection conn;
  std::string key_id, in, out, suite = "aes-256-gcm";
  std::vector<std::string> context;
  uint32_t chunk_size = shield::kStreamDefaultChunkSize;
  bool json = false;
};

struct UnsealArgs {
  KmsConnection conn;
  std::string recipient_nsm, key_id, in, out;
  std::vector<std::string> context;
  bool show = false, json = false;
};

// Counts and hashes what passes to the real sink: the sealed file's size and SHA-256 for the
// summary (the runtime config's `sha256` pin; `header_sha256` is the prefix's, from the header).
class CountingSink final : public Sink {
 public:
  explicit CountingSink(Sink& to) : to_(to), ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw_openssl("SHA-256 init");
  }
  void write(ByteView data) override {
    to_.write(data);
    if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) throw_openssl("SHA-256 update");
    bytes_ += data.size();
  }
  uint64_t bytes() const { return bytes_; }
  // Once, after the last write: lowercase hex.
  std::string sha256_hex() {
    uint8_t md[32];
    unsigned len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) throw_openssl("SHA-256 final");
    return hex_encode(ByteView(md, len));
  }

 private:
  Sink& to_;
  ossl::Ptr<EVP_MD_CTX> ctx_;
  uint64_t bytes_ = 0;
};

nlohmann::ordered_json context_json(const sealed::EncryptionContext& ctx) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : ctx) j[k] = v;
  return j;
}

void check_json_output(const std::string& out, bool json) {
  if (json && out == "-") throw Error(Errc::kUsage, "--json prints to stdout, so write the output to a file, not '-'");
}

void run_seal(const SealArgs& a) {
  if (a.key_id.empty()) throw Error(Errc::kUsage, "--key-id is required (key id, key ARN, alias/NAME or alias ARN)");
  check_json_output(a.out, a.json);
  refuse_same_file(a.in, a.out);
  kms::EncryptionContext ctx = parse_encryption_context(a.context);
  const shield::Suite suite = shield::parse_suite(a.suite);
  FileReader in(a.in);  // a missing input fails before KMS is asked
  kms::KmsClient kms = make_kms_client(a.conn);
  kms::DataKeyResult generated = kms.generate_data_key(a.key_id, static_cast<int>(sealed::kDataKeySize), ctx);
  sealed::DataKey key{generated.key_id, std::move(generated.ciphertext_blob), std::move(generated.plaintext)};
  AtomicFileWriter file(a.out);
  CountingSink out(file);
  auto progress = progress_for("seal", in);
  uint64_t plaintext_bytes = 0;
  auto on_progress = report_to(progress.get());
  sealed::Header h = sealed::seal(in, out, key, ctx,
                                  {.chunk_size = a.chunk_size, .suite = suite, .on_progress = [&](uint64_t n) {
                                     plaintext_bytes += n;
                                     if (on_progress) on_progress(n);
                                   }});
  key.plaintext.clear();  // wiped before the file appears
  file.commit();
  if (progress) progress->finish();
  const std::string file_sha256 = out.sha256_hex(), header_sha256 = h.prefix_digest_hex();
  if (!a.json) {
    // The pins for the runtime config, lowercase hex (on stderr when the file goes to stdout).
    std::fprintf(a.out == "-" ? stderr : stdout,
                 "sealed %s: %llu bytes (headers %zu bytes: sealed header %zu + stream header %zu)\n"
                 "header_sha256  %s   (runtime config header_sha256, recommended: sha256 of the first %zu bytes)\n"
                 "file sha256    %s   (runtime config sha256: the whole file)\n",
                 a.out.c_str(), static_cast<unsigned long long>(out.bytes()), h.prefix_size(), h.size(),
                 sealed::kStreamHeaderSize, header_sha256.c_str(), h.prefix_size(), file_sha256.c_str());
    return;
  }
  print_json({{"File", a.out},
              {"KeyId", h.key_id},
              {"EncryptionContext", context_json(h.context)},
              {"PlaintextBytes", plaintext_bytes},
              {"SealedBytes", out.bytes()},
              {"HeaderBytes", h.size()},
              {"PrefixBytes", h.prefix_size()},
              {"HeaderSha256", header_sha256},
              {"Sha256", file_sha256},
              {"Suite", shield::suite_name(suite)},
              {"ChunkSize", a.chunk_size}});
}

void show(const UnsealArgs& a) {
  if (!a.out.empty()) throw Error(Errc::kUsage, "--show prints the header; it writes no output file (drop -o)");
  FileSource file(a.in);
  sealed::Description d = sealed::describe(file);
  if (a.json) {
    print_json({{"File", a.in},
                {"FileBytes", d.file_size},
                {"KeyId", d.header.key_id},
                {"EncryptionContext", context_json(d.header.context)},
                {"CiphertextBlob", base64_encode(d.header.ciphertext_blob)},
                {"HeaderBytes", d.header.size()},
                {"PrefixBytes", d.header.prefix_size()},
                {"HeaderSha256", d.header.prefix_digest_hex()},
                {"Suite", shield::suite_name(d.suite)},
                {"ChunkSize", d.chunk_size},
                {"PlaintextBytes", d.plaintext_size},
                {"Verified", false}});
    return;
  }
  std::string ctx;
  for (const auto& [k, v] : d.header.context) ctx += (ctx.empty() ? "" : ", ") + k + "=" + v;
  std::printf(
      "sealed file         %s (%llu bytes)\n"
      "KMS key id          %s\n"
      "encryption context  %s\n"
      "wrapped data key    %zu bytes\n"
      "headers             %zu bytes (sealed %zu + stream %zu), header_sha256 %s\n"
      "stream              %s, %u-byte chunks\n"
      "plaintext           %llu bytes\n"
      "Nothing is verified here: unseal checks the header and every chunk with the key KMS releases.\n",
      a.in.c_str(), static_cast<unsigned long long>(d.file_size), d.header.key_id.c_str(),
      ctx.empty() ? "(none)" : ctx.c_str(), d.header.ciphertext_blob.size(), d.header.prefix_size(), d.header.size(),
      sealed::kStreamHeaderSize, d.header.prefix_digest_hex().c_str(), shield::suite_name(d.suite), d.chunk_size,
      static_cast<unsigned long long>(d.plaintext_size));
}

void run_unseal(const UnsealArgs& a) {
  if (a.show) return show(a);
  if (a.out.empty()) throw Error(Errc::kUsage, "give -o OUT (the decrypted file), or --show to print the header");
  check_json_output(a.out, a.json);
  refuse_same_file(a.in, a.out);
  const kms::EncryptionContext pinned = parse_encryption_context(a.context);
  FileReader in(a.in);
  kms::KmsClient kms = make_kms_client(a.conn);
  auto recipient = a.recipient_nsm.empty() ? nullptr : make_nsm_recipient(a.recipient_nsm);
  AtomicFileWriter out(a.out, kPlaintextMode);
  auto progress = progress_for("unseal", in);
  uint64_t plaintext_bytes = 0;
  CountingSink counted(out);
  auto release = [&](const sealed::Header& h) {
    // The caller's pins, before KMS is asked: a file made for another purpose is refused here
    // (KMS would refuse a header whose context differs from the one the key was made with).
    if (!a.context.empty() && h.context != pinned)
      throw Error(Errc::kPolicy, "the sealed file's encryption context " + context_json(h.context).dump() +
                                     " is not the expected " + context_json(pinned).dump());
    // --key-id pins the key: KMS refuses a blob of another key (IncorrectKeyException).
    kms::DecryptResult d = kms.decrypt(h.ciphertext_blob, h.context, a.key_id.empty() ? h.key_id : a.key_id,
                                       recipient ? &recipient->recipient : nullptr);
    return std::move(d.plaintext);
  };
  sealed::Header h = sealed::open(in, counted, release, {.on_progress = report_to(progress.get())});
  out.commit();
  if (progress) progress->finish();
  plaintext_bytes = counted.bytes();
  if (!a.json) return;
  print_json({{"File", a.out},
              {"KeyId", h.key_id},
              {"EncryptionContext", context_json(h.context)},
              {"PlaintextBytes", plaintext_bytes},
              {"Recipient", recipient != nullptr}});
}

void setup(CLI::App& app) {
  auto s = std::make_shared<SealArgs>();
  auto* seal = app.add_subcommand("seal",
                                  "Encrypt a file under a new KMS data key into one self-describing sealed file (the key id, "
                                  "wrapped data key and encryption context in an authenticated header)");
  seal->add_option("--key-id", s->key_id, "KMS key: key id, key ARN, alias/NAME or alias ARN")->required();
  seal->add_option("--encryption-context", s->context,
                   "K=V bound to the data key (repeatable); KMS asks for the same pairs to release it")
      ->allow_extra_args(false);
  add_kms_connection_options(seal, s->conn);
  seal->add_option("--suite", s->suite, "AEAD suite: aes-256-gcm (default) or chacha20-poly1305");
  seal->add_option("--chunk-size", s->chunk_size, "Stream chunk size in bytes (default 1 MiB, 64 B to 16 MiB)");
  seal->add_flag("--json", s->json, "Print a summary as JSON (never the key)");
  seal->add_option("IN", s->in, "Input file, '-' for stdin")->required();
  seal->add_option("-o,--output", s->out, "The sealed file to write (atomically: nothing on failure)")->required();
  seal->footer(
      "KMS GenerateDataKey runs with the producer's credentials (environment, --profile, IMDSv2); the plaintext data\n"
      "key is wiped once the file is written. Format: docs/stream-format.md section 8.\n"
      "Example:\n"
      "  shield-nitro seal --key-id alias/models --encryption-context app=inference model.bin -o model.sealed");
  seal->callback([s] { run_seal(*s); });

  auto u = std::make_shared<UnsealArgs>();
  auto* unseal = app.add_subcommand("unseal",
                                    "Decrypt a sealed file: KMS Decrypt releases its data key (with --recipient-nsm only to "
                                    "this attested enclave); --show prints its header without calling KMS");
  unseal->add_option("--recipient-nsm", u->recipient_nsm,
                     "Attest with this NSM (/dev/nsm, or sim:DIR for the simulator): KMS answers CiphertextForRecipient, "
                     "opened in-process. Without it, a plain Decrypt: for development only");
  add_kms_connection_options(unseal, u->conn);
  unseal->add_option("--key-id", u->key_id, "Expected KMS key (default: the header's); KMS refuses a file of another key");
  unseal->add_option("--encryption-context", u->context,
                     "K=V the file must carry (repeatable; all of its pairs, exactly): refuses an artifact made for "
                     "another purpose before KMS is asked")
      ->allow_extra_args(false);
  unseal->add_flag("--show", u->show, "Print the header (key id, context, sizes) and stop: no KMS call, nothing verified");
  unseal->add_flag("--json", u->json, "Print the summary (or --show's header) as JSON");
  unseal->add_option("IN", u->in, "The sealed file ('-' for stdin, except with --show)")->required();
  unseal->add_option("-o,--output", u->out, "The decrypted file (mode 0600, atomically: nothing unless all of it authenticates)");
  unseal->footer(
      "Exit codes: 1 refused (KMS said no, with its reason; tampered header or data; not a sealed file), 2 usage,\n"
      "3 I/O or environment.\n"
      "Examples:\n"
      "  shield-nitro unseal --recipient-nsm /dev/nsm --kms-via vsock://3:8000 model.sealed -o /run/model.bin\n"
      "  shield-nitro unseal --show --json model.sealed\n"
      "  shield-nitro unseal --endpoint http://127.0.0.1:4566 model.sealed -o model.bin   (development: no attestation)");
  unseal->callback([u] { run_unseal(*u); });
}

CommandRegistrar registrar(15, setup);

}  // namespace
}  // namespace shield_nitro::cli
