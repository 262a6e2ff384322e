// The sealed header: strict parsing of untrusted bytes, building, and the key schedule that
// binds it to the stream (docs/stream-format.md §8).
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cstring>

#include "header_codec.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/hkdf.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/shield/format.h"

namespace shield_nitro::sealed {
namespace {

using detail::kMagic;
using detail::kVersion;

// magic, version, size; key id length + 1 byte; blob length + 1 byte; pair count; tag.
constexpr size_t kMinHeaderSize = kHeaderPrefixSize + 3 + 3 + 2 + kHeaderTagSize;
constexpr std::string_view kHeaderKeyInfo = "shield-nitro/sealed/v1/header";
constexpr std::string_view kStreamKeyInfo = "shield-nitro/sealed/v1/stream";

[[noreturn]] void malformed(const std::string& why) { throw Error(Errc::kFormat, "sealed header: " + why); }

// What a non-sealed input looks like, for the refusal.
std::string looks_like(ByteView prefix) {
  if (prefix.empty()) return "the input is empty";
  switch (shield::detect_format(prefix)) {
    case shield::Format::kStream:
      return "it is a stream container (SNST), not sealed: decrypt it with 'shield-nitro decrypt' and its Shield key";
    case shield::Format::kV4Key:
    case shield::Format::kV4Password:
      return "it starts like a Shield v4 message (first byte 0x" + hex_encode(prefix.first(1)) + ")";
    default:
      break;
  }
  ByteView head = prefix.first(std::min<size_t>(prefix.size(), 8));
  bool text = true;
  for (uint8_t c : head) text = text && c >= 0x20 && c < 0x7f;
  return "it starts with " + hex_encode(head) + (text ? " (text \"" + to_string(head) + "\")" : "") +
         ", not the magic 534e534c (\"SNSL\")";
}

bool printable_ascii(ByteView s) {
  for (uint8_t c : s)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF) without control
// characters: context entries are shown on terminals and sent to KMS as JSON text.
bool utf8_text(ByteView s) {
  for (size_t i = 0; i < s.size();) {
    uint8_t c = s[i];
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || s.size() - i < len) return false;
    uint32_t cp = c & (0x7f >> len);
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

ByteView take_field(ByteReader& r, const char* what, size_t min, size_t max) {
  uint16_t n = 0;
  ByteView v;
  if (!r.u16be(n)) malformed(std::string("the ") + what + " length runs past the header's size");
  if (n < min || n > max)
    malformed(std::string("the ") + what + " is " + std::to_string(n) + " bytes, outside [" + std::to_string(min) +
              ", " + std::to_string(max) + "]");
  if (!r.take(n, v)) malformed(std::string("the ") + what + " runs past the header's size");
  return v;
}

SecureBytes header_key(ByteView data_key) {
  return hkdf_sha256(data_key, {}, as_bytes(kHeaderKeyInfo), 32);
}

std::array<uint8_t, kHeaderTagSize> header_tag(ByteView data_key, ByteView signed_part) {
  SecureBytes k = header_key(data_key);
  std::array<uint8_t, kHeaderTagSize> tag{};
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()), signed_part.data(), signed_part.size(), tag.data(), &len))
    throw_openssl("sealed header: HMAC-SHA256");
  return tag;
}

void check_data_key(ByteView data_key) {
  if (data_key.size() != kDataKeySize)
    throw Error(Errc::kFormat, "the released data key is " + std::to_string(data_key.size()) + " bytes, expected " +
                                   std::to_string(kDataKeySize) + " (an AES_256 KMS data key)");
}

}  // namespace

ByteView detail::stream_header_after(ByteView after) {
  auto geometry = shield::peek_stream_geometry(after);
  if (!geometry) {
    if (after.size() < kStreamHeaderSize && shield::detect_format(after) == shield::Format::kStream)
      throw Error(Errc::kFormat, "sealed file: cut short inside the stream header (" + std::to_string(after.size()) +
                                     " of " + std::to_string(kStreamHeaderSize) + " bytes)");
    throw Error(Errc::kFormat, "sealed file: no stream container follows the header");
  }
  if (geometry->header_size != kStreamHeaderSize)
    throw Error(Errc::kFormat, "sealed file: the stream container is not in key mode");
  if (after.size() < kStreamHeaderSize)
    throw Error(Errc::kFormat, "sealed file: cut short inside the stream header (" + std::to_string(after.size()) +
                                   " of " + std::to_string(kStreamHeaderSize) + " bytes)");
  if (!shield::is_known_suite(after[5]))
    throw Error(Errc::kFormat, "sealed file: the stream names unknown suite 0x" + hex_encode(after.subspan(5, 1)));
  if (geometry->chunk_size < shield::kStreamMinChunkSize || geometry->chunk_size > shield::kStreamMaxChunkSize)
    throw Error(Errc::kFormat, "sealed file: the stream's chunk size " + std::to_string(geometry->chunk_size) + " is out of range");
  return after.first(kStreamHeaderSize);
}

std::string Header::digest_hex() const {
  uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256(bytes.data(), bytes.size(), d);
  return hex_encode({d, sizeof d});
}

std::string Header::prefix_digest_hex() const {
  if (stream_header.size() != kStreamHeaderSize)
    throw Error(Errc::kUsage, "sealed header: the stream header was not read, so the prefix digest is unknown");
  uint8_t d[SHA256_DIGEST_LENGTH];
  Bytes prefix = bytes;
  prefix.insert(prefix.end(), stream_header.begin(), stream_header.end());
  SHA256(prefix.data(), prefix.size(), d);
  return hex_encode({d, sizeof d});
}

std::optional<size_t> peek_header_size(ByteView prefix) {
  size_t have = std::min(prefix.size(), kMagic.size());
  if (prefix.empty() || std::memcmp(prefix.data(), kMagic.data(), have) != 0)
    throw Error(Errc::kFormat, "not a sealed file: " + looks_like(prefix));
  if (prefix.size() < kHeaderPrefixSize) return std::nullopt;
  if (prefix[4] != kVersion)
    throw Error(Errc::kUnsupported, "sealed file version " + std::to_string(prefix[4]) +
                                        " is not supported (this reader knows version 1)");
  uint32_t size = get_u32be(prefix.data() + 5);
  if (size < kMinHeaderSize || size > kMaxHeaderSize)
    malformed("declared size " + std::to_string(size) + " is outside [" + std::to_string(kMinHeaderSize) + ", " +
              std::to_string(kMaxHeaderSize) + "]");
  return size;
}

Header parse_header(ByteView bytes) {
  auto size = peek_header_size(bytes);
  if (!size) malformed("cut short: " + std::to_string(bytes.size()) + " of at least " + std::to_string(kHeaderPrefixSize) + " bytes");
  if (bytes.size() < *size)
    malformed("cut short: " + std::to_string(bytes.size()) + " of " + std::to_string(*size) + " bytes");
  ByteReader r(bytes.subspan(kHeaderPrefixSize, *size - kHeaderPrefixSize - kHeaderTagSize));
  Header h;
  ByteView key_id = take_field(r, "key id", 1, kMaxKeyIdSize);
  if (!printable_ascii(key_id)) malformed("the key id is not printable ASCII");
  h.key_id = to_string(key_id);
  ByteView blob = take_field(r, "wrapped data key", 1, kMaxCiphertextBlobSize);
  h.ciphertext_blob = to_bytes(blob);
  uint16_t pairs = 0;
  if (!r.u16be(pairs)) malformed("the encryption context count runs past the header's size");
  if (pairs > kMaxContextPairs)
    malformed("the encryption context has " + std::to_string(pairs) + " pairs, more than " + std::to_string(kMaxContextPairs));
  size_t context_bytes = 0;
  for (uint16_t i = 0; i < pairs; ++i) {
    ByteView k = take_field(r, "encryption context key", 1, kMaxContextBytes);
    ByteView v = take_field(r, "encryption context value", 0, kMaxContextBytes);
    context_bytes += k.size() + v.size();
    if (context_bytes > kMaxContextBytes)
      malformed("the encryption context exceeds " + std::to_string(kMaxContextBytes) + " bytes");
    if (!utf8_text(k) || !utf8_text(v))
      malformed("encryption context pair " + std::to_string(i) + " is not UTF-8 text without control characters");
    std::string key = to_string(k);
    if (!h.context.empty() && key <= h.context.rbegin()->first)
      malformed("encryption context key '" + key + "' is out of order or repeated (keys must ascend bytewise)");
    h.context.emplace_hint(h.context.end(), std::move(key), to_string(v));
  }
  if (!r.empty()) malformed(std::to_string(r.remaining()) + " unexplained bytes before the tag");
  h.bytes = to_bytes(bytes.first(*size));
  return h;
}

Header read_header(Source& in) {
  Bytes buf(kHeaderPrefixSize);
  buf.resize(in.read(buf.data(), buf.size()));
  auto size = peek_header_size(buf);  // refuses a foreign magic first, even when short
  if (!size) malformed("cut short: " + std::to_string(buf.size()) + " of at least " + std::to_string(kHeaderPrefixSize) + " bytes");
  buf.resize(*size);
  size_t got = kHeaderPrefixSize + in.read(buf.data() + kHeaderPrefixSize, *size - kHeaderPrefixSize);
  if (got < *size) malformed("cut short: " + std::to_string(got) + " of " + std::to_string(*size) + " bytes");
  return parse_header(buf);
}

Header parse_prefix(ByteView bytes) {
  Header h = parse_header(bytes);
  h.stream_header = to_bytes(detail::stream_header_after(bytes.subspan(h.size())));
  return h;
}

Description describe(const RandomAccessSource& file) {
  Bytes prefix = file.read_bytes(0, static_cast<size_t>(std::min<uint64_t>(file.size(), kHeaderPrefixSize)));
  auto size = peek_header_size(prefix);
  if (!size || file.size() < *size)
    malformed("cut short: the file has " + std::to_string(file.size()) + " bytes" +
              (size ? ", the header alone " + std::to_string(*size) : std::string()));
  Description d{.header = parse_header(file.read_bytes(0, *size)), .suite = {}, .chunk_size = 0,
                .file_size = file.size(), .plaintext_size = 0};
  const uint64_t body = file.size() - *size;
  Bytes stream_head = file.read_bytes(*size, static_cast<size_t>(std::min<uint64_t>(body, kStreamHeaderSize)));
  d.header.stream_header = to_bytes(detail::stream_header_after(stream_head));
  auto geometry = shield::peek_stream_geometry(stream_head);
  d.suite = static_cast<shield::Suite>(stream_head[5]);
  d.chunk_size = geometry->chunk_size;
  const uint64_t records = body - geometry->header_size, record = geometry->record_size();
  const uint64_t full = records / record, rest = records % record;
  if ((rest == 0 && full == 0) || (rest != 0 && rest < shield::kTagSize))
    throw Error(Errc::kFormat, "sealed file: " + std::to_string(records) +
                                   " bytes of records, which no stream of this chunk size has (truncated?)");
  d.plaintext_size = full * d.chunk_size + (rest ? rest - shield::kTagSize : 0);
  return d;
}

namespace detail {

Bytes build_header(const std::string& key_id, ByteView blob, const EncryptionContext& context, ByteView data_key) {
  auto usage = [](const std::string& why) { throw Error(Errc::kUsage, "cannot seal: " + why); };
  if (key_id.empty() || key_id.size() > kMaxKeyIdSize || !printable_ascii(as_bytes(key_id)))
    usage("the key id must be 1 to " + std::to_string(kMaxKeyIdSize) + " printable ASCII characters");
  if (blob.empty() || blob.size() > kMaxCiphertextBlobSize)
    usage("the wrapped data key must be 1 to " + std::to_string(kMaxCiphertextBlobSize) + " bytes, got " +
          std::to_string(blob.size()));
  if (data_key.size() != kDataKeySize)
    usage("the data key must be " + std::to_string(kDataKeySize) + " bytes, got " + std::to_string(data_key.size()));
  if (context.size() > kMaxContextPairs) usage("more than " + std::to_string(kMaxContextPairs) + " context pairs");
  Bytes h(kMagic.begin(), kMagic.end());
  h.push_back(kVersion);
  put_u32be(h, 0);  // the size, once known
  put_u16be(h, static_cast<uint16_t>(key_id.size()));
  h.insert(h.end(), key_id.begin(), key_id.end());
  put_u16be(h, static_cast<uint16_t>(blob.size()));
  h.insert(h.end(), blob.begin(), blob.end());
  put_u16be(h, static_cast<uint16_t>(context.size()));
  size_t context_bytes = 0;
  for (const auto& [k, v] : context) {  // std::map: ascending bytewise, the canonical order
    context_bytes += k.size() + v.size();
    if (k.empty() || context_bytes > kMaxContextBytes || !utf8_text(as_bytes(k)) || !utf8_text(as_bytes(v)))
      usage("the encryption context must have non-empty keys, UTF-8 text without control characters, at most " +
            std::to_string(kMaxContextBytes) + " bytes in all");
    put_u16be(h, static_cast<uint16_t>(k.size()));
    h.insert(h.end(), k.begin(), k.end());
    put_u16be(h, static_cast<uint16_t>(v.size()));
    h.insert(h.end(), v.begin(), v.end());
  }
  const size_t total = h.size() + kHeaderTagSize;
  if (total > kMaxHeaderSize) usage("the header would be " + std::to_string(total) + " bytes, more than " + std::to_string(kMaxHeaderSize));
  const uint32_t be = static_cast<uint32_t>(total);
  Bytes size_field;
  put_u32be(size_field, be);
  std::memcpy(h.data() + 5, size_field.data(), 4);
  auto tag = header_tag(data_key, h);
  h.insert(h.end(), tag.begin(), tag.end());
  return h;
}

void check_header(const Header& header, ByteView data_key) {
  check_data_key(data_key);
  ByteView signed_part = ByteView(header.bytes).first(header.size() - kHeaderTagSize);
  auto tag = header_tag(data_key, signed_part);
  if (!ct_equal(tag, ByteView(header.bytes).last(kHeaderTagSize)))
    throw Error(Errc::kAuth, "sealed header: authentication failed: the header was altered, or the data key is not "
                             "this file's");
}

shield::Shield stream_shield(ByteView data_key, const Header& header, shield::Suite suite) {
  check_data_key(data_key);
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(header.bytes.data(), header.bytes.size(), digest);
  SecureBytes master = hkdf_sha256(data_key, {digest, sizeof digest}, as_bytes(kStreamKeyInfo), 32);
  return shield::Shield::with_key(shield::ShieldKey::from_bytes(master.view()),
                                  {.suite = suite, .max_age_ms = std::nullopt});
}

}  // namespace detail
}  // namespace shield_nitro::sealed
