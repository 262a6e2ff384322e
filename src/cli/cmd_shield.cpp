// keygen / encrypt / decrypt: Shield v4 messages and stream containers from the command line,
// and read-only migration of Guard8 StreamCipher files.
#include <openssl/crypto.h>

#include <memory>
#include <optional>
#include <string>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/progress.h"
#include "shield_nitro/shield/format.h"
#include "shield_nitro/shield/guard8_stream.h"
#include "shield_nitro/shield/shield.h"
#include "shield_nitro/shield/stream.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

using shield::Shield;
using shield::ShieldKey;
using shield::ShieldOptions;

constexpr unsigned kPlaintextMode = 0600;
// Fewer PBKDF2 iterations make password guessing cheap: only to read old data, on request.
constexpr int64_t kWeakKdfBelow = 100000;
constexpr int64_t kMaxKdfIterations = 100000000;  // about a minute: more is a typo, not a policy

struct KeyArgs {
  std::string key_file;
  std::string password_env;
  std::string service;
  std::optional<int64_t> pbkdf2_iterations;
  bool allow_weak_kdf = false;
};

struct CryptArgs {
  KeyArgs key;
  std::string in, out;
  std::string suite = "aes-256-gcm";
  bool stream = false;
  uint32_t chunk_size = shield::kStreamDefaultChunkSize;
  std::string max_age = "60000";
  std::string from = "shield";
  std::string original_name;
};

// A key file holds 32 raw bytes, or 64 hex characters with an optional trailing newline.
ShieldKey load_key_file(const std::string& path) {
  Bytes raw = read_file(path);
  std::string_view text(reinterpret_cast<const char*>(raw.data()), raw.size());
  while (raw.size() != shield::kKeySize && !text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.remove_suffix(1);
  std::optional<ShieldKey> key;
  if (raw.size() == shield::kKeySize) {
    key = ShieldKey::from_bytes(raw);
  } else if (text.size() == 2 * shield::kKeySize) {
    try {
      Bytes decoded = hex_decode(text);
      key = ShieldKey::from_bytes(decoded);
      OPENSSL_cleanse(decoded.data(), decoded.size());
    } catch (const Error&) {
    }
  }
  OPENSSL_cleanse(raw.data(), raw.size());
  if (!key)
    throw Error(Errc::kUsage, "key file " + path + " must hold 32 raw bytes or 64 hex characters (got " +
                                  std::to_string(raw.size()) + " bytes); create one with 'shield-nitro keygen -o FILE'");
  return std::move(*key);
}

// The PBKDF2 iteration count of password mode: --pbkdf2-iterations, checked against the floor.
int kdf_iterations(const KeyArgs& k) {
  if (!k.pbkdf2_iterations) return shield::kPbkdf2Iterations;
  const int64_t n = *k.pbkdf2_iterations;
  if (!k.key_file.empty())
    throw Error(Errc::kUsage, "--pbkdf2-iterations applies to password mode only, not to --key-file");
  if (n < 1 || n > kMaxKdfIterations)
    throw Error(Errc::kUsage, "--pbkdf2-iterations expects 1 to " + std::to_string(kMaxKdfIterations) + ", got " +
                                  std::to_string(n));
  if (n < kWeakKdfBelow && !k.allow_weak_kdf)
    throw Error(Errc::kUsage, "--pbkdf2-iterations " + std::to_string(n) + " is below " +
                                  std::to_string(kWeakKdfBelow) +
                                  ", which makes password guessing cheap; add --allow-weak-kdf to accept it for old "
                                  "data");
  return static_cast<int>(n);
}

Shield make_shield(const KeyArgs& k, ShieldOptions options) {
  const bool password = !k.password_env.empty() || !k.service.empty();
  if (!k.key_file.empty() && password)
    throw Error(Errc::kUsage, "use either --key-file or --password-env/--service, not both");
  options.pbkdf2_iterations = kdf_iterations(k);
  if (!k.key_file.empty()) return Shield::with_key(load_key_file(k.key_file), options);
  if (!password) throw Error(Errc::kUsage, "no key: pass --key-file FILE, or --password-env VAR --service NAME");
  if (k.service.empty()) throw Error(Errc::kUsage, "password mode needs --service NAME (the key depends on it)");
  SecureBytes pw = read_password(k.password_env);
  return Shield::with_password(pw.view(), k.service, options);
}

std::optional<int64_t> parse_max_age(const std::string& text) {
  if (text == "none") return std::nullopt;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || v > (int64_t{1} << 50))
      throw Error(Errc::kUsage, "--max-age-ms expects milliseconds or 'none', got '" + text + "'");
    v = v * 10 + (c - '0');
  }
  if (text.empty()) throw Error(Errc::kUsage, "--max-age-ms expects milliseconds or 'none'");
  return v;
}

void run_encrypt(const CryptArgs& a) {
  refuse_same_file(a.in, a.out);
  ShieldOptions options;
  options.suite = shield::parse_suite(a.suite);
  Shield s = make_shield(a.key, options);
  if (!a.stream) {
    Bytes plaintext = read_file(a.in);
    Bytes message = s.encrypt(plaintext);
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    write_file_atomic(a.out, message);
    return;
  }
  FileReader in(a.in);
  AtomicFileWriter out(a.out);
  auto progress = progress_for("encrypt", in);
  shield::encrypt_stream(s, in, out, {.chunk_size = a.chunk_size, .on_progress = report_to(progress.get())});
  out.commit();
}

// Guard8's CLI salts the key with the base name of the file it encrypted and names its output
// NAME.enc, so the default original name is IN's base name without ".enc".
std::string guard8_original_name(const CryptArgs& a) {
  if (!a.original_name.empty()) return a.original_name;
  std::string base = a.in.substr(a.in.find_last_of('/') + 1);
  const std::string suffix = ".enc";
  if (a.in == "-" || base.size() <= suffix.size() || base.compare(base.size() - suffix.size(), suffix.size(), suffix))
    throw Error(Errc::kUsage, "cannot tell the original file name from " + a.in +
                                  " (Guard8 salts the key with it): pass --original-name NAME");
  return base.substr(0, base.size() - suffix.size());
}

void run_decrypt_guard8(const CryptArgs& a) {
  if (!a.key.service.empty())
    throw Error(Errc::kUsage, "Guard8 stream files have no service name: drop --service (the key comes from the "
                              "password and the original file name)");
  if (!a.key.key_file.empty() && !a.key.password_env.empty())
    throw Error(Errc::kUsage, "use either --key-file or --password-env, not both");
  SecureBytes key;
  if (!a.key.key_file.empty()) {
    if (!a.original_name.empty())
      throw Error(Errc::kUsage, "--original-name applies to password mode only, not to --key-file");
    kdf_iterations(a.key);  // refuses --pbkdf2-iterations with a key file
    key = SecureBytes(load_key_file(a.key.key_file).expose_secret());
  } else {
    const std::string name = guard8_original_name(a);
    const int iterations = kdf_iterations(a.key);
    SecureBytes pw = read_password(a.key.password_env);
    key = shield::guard8_password_key(pw.view(), name, iterations);
  }
  FileReader in(a.in);
  AtomicFileWriter out(a.out, kPlaintextMode);
  auto progress = progress_for("decrypt", in);
  shield::decrypt_guard8_stream(key.view(), in, out, {.on_progress = report_to(progress.get())});
  out.commit();
}

void run_decrypt(const CryptArgs& a) {
  refuse_same_file(a.in, a.out);
  if (a.from == "guard8-stream") return run_decrypt_guard8(a);
  if (!a.original_name.empty()) throw Error(Errc::kUsage, "--original-name needs --from guard8-stream");
  ShieldOptions options;
  options.max_age_ms = parse_max_age(a.max_age);
  Shield s = make_shield(a.key, options);
  FileReader in(a.in);
  Bytes prefix(shield::kDetectBytes);
  prefix.resize(in.read(prefix.data(), prefix.size()));
  if (prefix.empty()) throw Error(Errc::kFormat, "input " + a.in + " is empty: nothing to decrypt");
  PrefixedSource src(prefix, in);
  AtomicFileWriter out(a.out, kPlaintextMode);
  if (shield::detect_format(prefix) == shield::Format::kStream) {
    auto progress = progress_for("decrypt", in);
    shield::decrypt_stream(s, src, out, {.on_progress = report_to(progress.get())});
  } else {
    Bytes message;
    BytesSink collect(message);
    uint8_t buf[1 << 16];
    for (size_t n; (n = src.read(buf, sizeof buf)) > 0;) collect.write({buf, n});
    out.write(s.decrypt(message).view());
  }
  out.commit();
}

void run_keygen(const std::string& path, bool force) {
  if (path != "-" && file_exists(path) && !force)
    throw Error(Errc::kUsage, path + " already exists; pass --force to replace it");
  ShieldKey key = ShieldKey::generate();
  write_file_atomic(path, key.expose_secret(), 0600);
}

void add_key_options(CLI::App* sub, KeyArgs& k) {
  sub->add_option("--key-file", k.key_file, "Key mode: file with 32 raw bytes or 64 hex characters");
  sub->add_option("--password-env", k.password_env,
                  "Password mode: read the password from this environment variable (never argv); "
                  "with --service alone you are prompted on the terminal");
  sub->add_option("--service", k.service, "Password mode: service name mixed into the key (domain separation)");
  auto* iterations = sub->add_option("--pbkdf2-iterations", k.pbkdf2_iterations,
                                     "Password mode: PBKDF2 iterations of the key (default 600000); files do not "
                                     "record it, so encrypt and decrypt must be given the same number");
  sub->add_flag("--allow-weak-kdf", k.allow_weak_kdf, "Accept --pbkdf2-iterations below 100000 (old data only)")
      ->needs(iterations);
}

void setup(CLI::App& app) {
  auto* keygen = app.add_subcommand("keygen", "Write a new random 32-byte Shield key file (mode 0600)");
  auto key_out = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  keygen->add_option("-o,--output", *key_out, "Key file to create")->required();
  keygen->add_flag("--force", *force, "Replace an existing file");
  keygen->footer("Example: shield-nitro keygen -o model.key");
  keygen->callback([key_out, force] { run_keygen(*key_out, *force); });

  auto enc = std::make_shared<CryptArgs>();
  auto* e = app.add_subcommand("encrypt",
                               "Encrypt a file as a Shield v4 message, or with --stream as a chunked stream container "
                               "(for large artifacts: constant memory, parallel, random access)");
  add_key_options(e, enc->key);
  e->add_option("--suite", enc->suite, "AEAD suite: aes-256-gcm (default) or chacha20-poly1305");
  auto* stream = e->add_flag("--stream", enc->stream, "Write a stream container instead of one v4 message");
  e->add_option("--chunk-size", enc->chunk_size, "Stream chunk size in bytes (default 1 MiB, 64 B to 16 MiB)")
      ->needs(stream);
  e->add_option("IN", enc->in, "Input file, '-' for stdin")->required();
  e->add_option("OUT,-o,--output", enc->out, "Output file, '-' for stdout (written atomically)")->required();
  e->footer(
      "Examples:\n"
      "  shield-nitro encrypt --key-file model.key --stream model.bin model.snst\n"
      "  SHIELD_PW=... shield-nitro encrypt --password-env SHIELD_PW --service acme.com note.txt note.shield\n"
      "  SHIELD_PW=... shield-nitro encrypt --password-env SHIELD_PW --service acme.com --pbkdf2-iterations 1000000 "
      "note.txt note.shield\n"
      "  SHIELD_PW=... shield-nitro encrypt --password-env SHIELD_PW --service acme.com --pbkdf2-iterations 50000 "
      "--allow-weak-kdf note.txt for-old-reader.shield   (only for a reader that cannot do more)\n"
      "IN and OUT must be different files.");
  e->callback([enc] { run_encrypt(*enc); });

  auto dec = std::make_shared<CryptArgs>();
  auto* d = app.add_subcommand("decrypt",
                               "Decrypt a Shield v4 message or a stream container (told apart by their first bytes), "
                               "or with --from guard8-stream a Guard8 StreamCipher file; nothing is written unless "
                               "everything authenticates");
  add_key_options(d, dec->key);
  d->add_option("--from", dec->from,
                "Input format: shield (default: v4 message or stream container, told apart by their first bytes) "
                "or guard8-stream (a file written by Guard8's 'shield encrypt', read-only migration)")
      ->check(CLI::IsMember({"shield", "guard8-stream"}));
  d->add_option("--original-name", dec->original_name,
                "guard8-stream, password mode: base name of the file Guard8 encrypted (its key's salt; default: IN's "
                "base name without .enc)");
  d->add_option("--max-age-ms", dec->max_age,
                "v4 freshness window in milliseconds, or 'none' for data at rest (default 60000; streams have none)");
  d->add_option("IN", dec->in, "Input file, '-' for stdin")->required();
  d->add_option("OUT,-o,--output", dec->out, "Output file (mode 0600, atomic); '-' for stdout, where a stream that fails late "
                                 "may already have written its verified leading chunks")
      ->required();
  d->footer(
      "Examples:\n"
      "  shield-nitro decrypt --key-file model.key model.snst model.bin\n"
      "  shield-nitro decrypt --key-file k --max-age-ms none archived.shield out.txt\n"
      "  SHIELD_PW=... shield-nitro decrypt --password-env SHIELD_PW --service acme.com --pbkdf2-iterations 1000000 "
      "note.shield note.txt\n"
      "  SHIELD_PW=... shield-nitro decrypt --password-env SHIELD_PW --service acme.com --max-age-ms none "
      "--pbkdf2-iterations 10000 --allow-weak-kdf old.shield old.txt\n"
      "  SHIELD_PW=... shield-nitro decrypt --from guard8-stream --password-env SHIELD_PW report.pdf.enc report.pdf\n"
      "  SHIELD_PW=... shield-nitro decrypt --from guard8-stream --password-env SHIELD_PW --original-name report.pdf "
      "renamed.bin report.pdf\n"
      "IN and OUT must be different files.\n"
      "Exit codes: 1 authentication failed / expired / malformed, 2 usage, 3 I/O.");
  d->callback([dec] { run_decrypt(*dec); });
}

CommandRegistrar registrar(10, setup);

}  // namespace
}  // namespace shield_nitro::cli
