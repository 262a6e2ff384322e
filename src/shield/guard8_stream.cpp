// Guard8 StreamCipher reader (format: docs/stream-format.md, "Migrating from Guard8 files").
// One record is held at a time and decrypted in place, so memory is one chunk whatever the
// file size; a chunk is released only after its tag verified.
#include "shield_nitro/shield/guard8_stream.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cstring>
#include <string>

#include "shield_nitro/core/error.h"

namespace shield_nitro::shield {
namespace {

constexpr size_t kSaltBytes = 16;
constexpr size_t kNonceBytes = 16;
constexpr size_t kMacBytes = 16;  // HMAC-SHA256 truncated to its first 16 bytes
constexpr size_t kEndTagBytes = 32;
constexpr std::string_view kEndLabel = "shield-stream-eof";

using Digest = std::array<uint8_t, 32>;

// Wipes a key-bearing digest when it goes out of scope.
struct SecretDigest {
  Digest d{};
  ~SecretDigest() { OPENSSL_cleanse(d.data(), d.size()); }
  ByteView view() const { return {d.data(), d.size()}; }
};

const EVP_MD* sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (!md) throw_openssl("cannot fetch SHA-256");
  return md;
}

EVP_MAC* hmac_algorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!mac) throw_openssl("cannot fetch HMAC");
  return mac;
}

struct MdCtx {
  EVP_MD_CTX* p = EVP_MD_CTX_new();
  MdCtx() {
    if (!p) throw_openssl("cannot create a SHA-256 context");
  }
  ~MdCtx() { EVP_MD_CTX_free(p); }
  MdCtx(const MdCtx&) = delete;
  MdCtx& operator=(const MdCtx&) = delete;
};

void digest_into(EVP_MD_CTX* ctx, ByteView data, uint8_t* out) {
  unsigned n = 0;
  if (EVP_DigestInit_ex2(ctx, sha256(), nullptr) != 1 || EVP_DigestUpdate(ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx, out, &n) != 1)
    throw_openssl("SHA-256 failed");
}

// HMAC-SHA256(key, a || b).
void hmac_into(ByteView key, ByteView a, ByteView b, Digest& out) {
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac_algorithm());
  if (!ctx) throw_openssl("cannot create an HMAC context");
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                         OSSL_PARAM_construct_end()};
  size_t n = 0;
  bool ok = EVP_MAC_init(ctx, key.data(), key.size(), params) == 1 && EVP_MAC_update(ctx, a.data(), a.size()) == 1 &&
            EVP_MAC_update(ctx, b.data(), b.size()) == 1 && EVP_MAC_final(ctx, out.data(), &n, out.size()) == 1;
  EVP_MAC_CTX_free(ctx);
  if (!ok) throw_openssl("HMAC-SHA256 failed");
}

void put_le(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

std::string prefix(uint64_t chunk) { return "guard8 stream: chunk " + std::to_string(chunk) + ": "; }

// The end tag commits to the stream salt and the number of chunks.
bool end_tag_matches(ByteView key, ByteView salt, uint64_t chunks, ByteView tag) {
  SecretDigest end_key;
  hmac_into(key, as_bytes(kEndLabel), {}, end_key.d);
  uint8_t count[8];
  put_le(count, chunks, sizeof count);
  Digest expected;
  hmac_into(end_key.view(), salt, {count, sizeof count}, expected);
  return CRYPTO_memcmp(expected.data(), tag.data(), kEndTagBytes) == 0;
}

// Verifies record (nonce || ciphertext || mac) of chunk i, then turns its ciphertext into
// plaintext in place: byte j is XORed with SHA-256(chunk_key || nonce || u32le(j / 32)).
ByteView open_record(ByteView key, ByteView salt, uint64_t i, uint8_t* record, size_t len, EVP_MD_CTX* md) {
  SecretDigest chunk_key;
  {
    uint8_t seed_tail[kSaltBytes + 8];
    std::memcpy(seed_tail, salt.data(), kSaltBytes);
    put_le(seed_tail + kSaltBytes, i, 8);
    if (EVP_DigestInit_ex2(md, sha256(), nullptr) != 1 || EVP_DigestUpdate(md, key.data(), key.size()) != 1 ||
        EVP_DigestUpdate(md, seed_tail, sizeof seed_tail) != 1 ||
        EVP_DigestFinal_ex(md, chunk_key.d.data(), nullptr) != 1)
      throw_openssl("SHA-256 failed");
  }
  const size_t body = len - kMacBytes;
  Digest mac;
  hmac_into(chunk_key.view(), {record, body}, {}, mac);
  if (CRYPTO_memcmp(mac.data(), record + body, kMacBytes) != 0)
    throw Error(Errc::kAuth, prefix(i) +
                                 "authentication failed: its HMAC tag does not verify (wrong password, key or "
                                 "original name, or the chunk was changed or moved)");

  uint8_t* text = record + kNonceBytes;
  const size_t text_len = body - kNonceBytes;
  uint8_t block_in[32 + kNonceBytes + 4];
  std::memcpy(block_in, chunk_key.d.data(), 32);
  std::memcpy(block_in + 32, record, kNonceBytes);
  SecretDigest pad;
  for (size_t off = 0, j = 0; off < text_len; off += 32, ++j) {
    put_le(block_in + 32 + kNonceBytes, j, 4);
    digest_into(md, {block_in, sizeof block_in}, pad.d.data());
    const size_t n = std::min<size_t>(32, text_len - off);
    for (size_t k = 0; k < n; ++k) text[off + k] ^= pad.d[k];
  }
  OPENSSL_cleanse(block_in, sizeof block_in);
  return {text, text_len};
}

}  // namespace

SecureBytes guard8_password_key(ByteView password, std::string_view original_name, int iterations) {
  if (original_name.empty())
    throw Error(Errc::kUsage, "a Guard8 password key needs the original file name (its PBKDF2 salt)");
  if (iterations < 1) throw Error(Errc::kUsage, "PBKDF2 needs at least 1 iteration");
  // PBKDF2(password, salt || service) with an empty service is PBKDF2(password, name).
  return derive_password_master(password, as_bytes(original_name), {}, iterations);
}

uint64_t decrypt_guard8_stream(ByteView key, Source& in, Sink& out, const Guard8DecryptOptions& options) {
  if (key.empty()) throw Error(Errc::kUsage, "a Guard8 stream key cannot be empty");
  uint8_t header[kGuard8HeaderSize];
  if (size_t n = in.read(header, sizeof header); n != sizeof header)
    throw Error(Errc::kFormat, "guard8 stream: header cut short: " + std::to_string(n) + " of " +
                                   std::to_string(kGuard8HeaderSize) + " bytes");
  // header[0..4) is the writer's chunk size: unauthenticated and not needed to read, so unused.
  ByteView salt(header + 4, kSaltBytes);
  const uint64_t max_record = uint64_t{options.max_chunk_size} + kGuard8RecordOverhead;

  MdCtx md;
  SecureBytes record;
  for (uint64_t i = 0;; ++i) {
    uint8_t len_le[4];
    size_t got = in.read(len_le, sizeof len_le);
    if (got == 0)
      throw Error(Errc::kFormat, "guard8 stream: the file ends after " + std::to_string(i) +
                                     " chunks without its end tag: it is truncated");
    if (got < sizeof len_le)
      throw Error(Errc::kFormat,
                  prefix(i) + "length field cut short (" + std::to_string(got) + " of 4 bytes): the file is truncated");
    const uint32_t len = uint32_t{len_le[0]} | uint32_t{len_le[1]} << 8 | uint32_t{len_le[2]} << 16 |
                         uint32_t{len_le[3]} << 24;
    if (len == 0) {  // end marker: the end tag follows
      uint8_t tag[kEndTagBytes];
      if (size_t n = in.read(tag, sizeof tag); n != sizeof tag)
        throw Error(Errc::kFormat, "guard8 stream: end tag after " + std::to_string(i) + " chunks cut short (" +
                                       std::to_string(n) + " of 32 bytes): the file is truncated");
      if (!end_tag_matches(key, salt, i, {tag, sizeof tag}))
        throw Error(Errc::kAuth, "guard8 stream: authentication failed: the end tag does not match " +
                                     std::to_string(i) +
                                     " chunks (chunks were removed or added, or a wrong password, key or original "
                                     "name)");
      uint8_t extra;
      if (in.read(&extra, 1) != 0)
        throw Error(Errc::kFormat, "guard8 stream: data follows the end tag after " + std::to_string(i) +
                                       " chunks (appended or concatenated)");
      return i;
    }
    if (len < kGuard8RecordOverhead)
      throw Error(Errc::kFormat, prefix(i) + "record of " + std::to_string(len) +
                                     " bytes is shorter than its 16-byte nonce and 16-byte tag");
    if (len > max_record)
      throw Error(Errc::kPolicy, prefix(i) + "record of " + std::to_string(len) +
                                     " bytes exceeds this reader's limit (" +
                                     std::to_string(options.max_chunk_size) + "-byte chunks)");
    record.resize_for_overwrite(len);
    if (size_t n = in.read(record.data(), len); n != len)
      throw Error(Errc::kFormat, prefix(i) + "record cut short (" + std::to_string(n) + " of " + std::to_string(len) +
                                     " bytes): the file is truncated");
    out.write(open_record(key, salt, i, record.data(), len, md.p));
    if (options.on_progress) options.on_progress(sizeof len_le + len);
  }
}

}  // namespace shield_nitro::shield
