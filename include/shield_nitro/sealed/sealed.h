// Sealed artifacts: one self-describing file that carries what is needed to get its key from
// KMS (the KMS key id, the wrapped data key = GenerateDataKey's CiphertextBlob, the encryption
// context) in a header, followed by a stream container (shield/stream.h) under that data key.
// Wire format and test vectors: docs/stream-format.md §8 "Sealed files".
//
// The header is authenticated with the stream: it ends with an HMAC under a key derived from
// the data key, and the stream's key is derived from the data key and the header's SHA-256, so
// a changed header byte fails before any plaintext is released. This module never calls KMS:
// the producer passes GenerateDataKey's answer to seal(), the consumer a callback that turns
// the header into the data key (KMS Decrypt, with a Recipient inside an enclave).
//
//   // producer
//   auto dk = kms.generate_data_key(key_id, 32, context);
//   FileReader in("model.bin");  AtomicFileWriter out("model.sealed");
//   sealed::seal(in, out, {dk.key_id, dk.ciphertext_blob, std::move(dk.plaintext)}, context);
//   out.commit();
//   // consumer (enclave)
//   FileReader in("model.sealed");  AtomicFileWriter out("/run/model.bin", 0400);
//   sealed::open(in, out, [&](const sealed::Header& h) {
//     return kms.decrypt(h.ciphertext_blob, h.context, h.key_id, &recipient).plaintext;
//   });
//   out.commit();
//
// Errors (shield_nitro::Error): kFormat "not a sealed file: ..." (saying what the bytes look
// like) or a malformed / oversized header field; kUnsupported for another version; kAuth for a
// tampered header, a wrong data key, or altered / truncated / extended data. Whatever the
// release callback throws passes through unchanged (e.g. KMS's refusal).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "shield_nitro/core/byte_io.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/stream.h"
#include "shield_nitro/shield/suite.h"

namespace shield_nitro::sealed {

// Data keys are AES-256 keys (GenerateDataKey KeySpec AES_256).
inline constexpr size_t kDataKeySize = 32;
// Header limits; a parser refuses (kFormat) anything bigger before allocating for it.
inline constexpr size_t kMaxKeyIdSize = 2048;           // KMS: key ids and ARNs up to 2048
inline constexpr size_t kMaxCiphertextBlobSize = 6144;  // KMS: CiphertextBlob up to 6144
inline constexpr size_t kMaxContextPairs = 64;
inline constexpr size_t kMaxContextBytes = 8192;  // keys plus values, as KMS's own limit
inline constexpr size_t kMaxHeaderSize = 16384;
// Bytes of the fixed start (magic, version, header size) that tell a header's full size.
inline constexpr size_t kHeaderPrefixSize = 9;
inline constexpr size_t kHeaderTagSize = 32;
// The stream container's header that follows the sealed header: always key mode (§2), with the
// stream's random salt and nonce prefix. Sealed header + stream header = the file's prefix
// before its first record, which every reader has whole before it calls KeyRelease.
inline constexpr size_t kStreamHeaderSize = 50;
inline constexpr size_t kMaxPrefixSize = kMaxHeaderSize + kStreamHeaderSize;

// KMS encryption context: sorted by key, which is also the header's canonical order.
using EncryptionContext = std::map<std::string, std::string>;

// What KMS GenerateDataKey answered; seal() uses it and never keeps the plaintext key.
// Reusing one for several files is safe for the pin: the sealed header is a function of the
// key id, blob and context alone, but the prefix pin (Header::prefix_digest_hex) also covers
// the stream header's random salt, which every record's key and AAD depend on.
struct DataKey {
  std::string key_id;      // KeyId from the answer (the key's ARN): what Decrypt is asked for
  Bytes ciphertext_blob;   // CiphertextBlob
  SecureBytes plaintext;   // Plaintext: exactly kDataKeySize bytes
};

// A parsed header. Until the data key has checked it (open*), every field is untrusted, but
// KMS binds the three that matter: a changed key id, blob or context gets no key from KMS.
struct Header {
  std::string key_id;
  Bytes ciphertext_blob;
  EncryptionContext context;
  Bytes bytes;  // the header exactly as in the file, tag included
  // The stream header that follows it (kStreamHeaderSize bytes): set by parse_prefix, describe
  // and every reader below before KeyRelease is called; empty from parse_header/read_header.
  Bytes stream_header;

  // Bytes of the header: where the stream container starts in the file.
  size_t size() const { return bytes.size(); }
  // Bytes before the file's first record: the sealed header and the stream header.
  size_t prefix_size() const { return bytes.size() + kStreamHeaderSize; }
  // SHA-256 of bytes, lowercase hex (what the stream key is bound to).
  std::string digest_hex() const;
  // SHA-256 of the file's prefix (bytes || stream_header), lowercase hex: the runtime config's
  // header_sha256 pin, what `shield-nitro seal` prints. Equal prefixes mean the same records can
  // follow: the stream key derives from the data key, the sealed header's digest and the
  // stream salt, and every record's nonce and AAD from the stream header, so records of another
  // file fail behind this prefix. Unlike digest_hex it tells apart files sealed under one data
  // key. kUsage when stream_header is not set (a Header from parse_header).
  std::string prefix_digest_hex() const;
};

struct SealOptions {
  uint32_t chunk_size = shield::kStreamDefaultChunkSize;  // [kStreamMinChunkSize, kStreamMaxChunkSize]
  shield::Suite suite = shield::Suite::kAes256Gcm;
  unsigned threads = 0;  // 0 = every core
  shield::ProgressFn on_progress{};
  Random* random = nullptr;  // test seam for the vectors (stream salt, nonce prefix); null = CSPRNG
};

struct OpenOptions {
  unsigned threads = 0;                                 // 0 = every core
  uint32_t max_chunk_size = shield::kStreamMaxChunkSize;  // refuse (kPolicy) bigger chunks
  shield::ProgressFn on_progress{};
};

// Turns a header into its 32-byte data key, e.g. by KMS Decrypt(blob, context, key id)
// with a Recipient. May refuse by throwing (a pinned key id or context that differs); its
// exception reaches the caller of open* unchanged. Called once per open, before any output.
using KeyRelease = std::function<SecureBytes(const Header& header)>;

// ---- writing ----

// Writes a sealed file to out: the header for key and context, then all of in as a stream
// container. Returns the header written, stream_header set (its prefix_digest_hex is the pin).
// kUsage when key.plaintext is not 32 bytes, the key id or blob is empty, or a field exceeds
// the limits above. Derived keys are wiped on return.
Header seal(Source& in, Sink& out, const DataKey& key, const EncryptionContext& context,
            const SealOptions& options = {});
// In memory.
Bytes seal(ByteView plaintext, const DataKey& key, const EncryptionContext& context, const SealOptions& options = {});

// ---- reading the header (untrusted bytes, no key) ----

// The header's total size from its first kHeaderPrefixSize bytes, so a receiver can frame it;
// nullopt when prefix is shorter. Throws as parse_header for a wrong magic, version or size.
std::optional<size_t> peek_header_size(ByteView prefix);
// Parses the header at the start of bytes (what follows it, the stream, is ignored). Strict:
// exact lengths, limits, canonical (sorted, unique) context, UTF-8 text, no trailing slack.
Header parse_header(ByteView bytes);
// Reads exactly the header's bytes from in (the stream follows) and parses them.
Header read_header(Source& in);
// Parses the header and the stream header after it (prefix_size() bytes; what follows is
// ignored) and sets stream_header. kFormat as parse_header, or "sealed file: ..." when the bytes
// end before the stream header does, or it is not a key-mode stream header of a known suite and
// chunk size.
Header parse_prefix(ByteView bytes);

// What `unseal --show` prints: the header plus the stream's geometry. Nothing is verified.
struct Description {
  Header header;
  shield::Suite suite;
  uint32_t chunk_size;
  uint64_t file_size;
  uint64_t plaintext_size;  // from the file size and the geometry
};
// kFormat when the file is not a well-formed sealed file (header, stream header, or a size
// no stream of that geometry can have).
Description describe(const RandomAccessSource& file);

// ---- opening (needs the data key) ----

// Reads the prefix (header and stream header) from in, calls release, checks the header against the key (kAuth "sealed
// header: authentication failed ..." when it was altered or the key is not this file's), then
// decrypts the stream into out. Returns the (now authenticated) header. As with
// shield::decrypt_stream, out holds verified chunks only, but the file is whole only when this
// returns: on an exception discard out (AtomicFileWriter does).
Header open(Source& in, Sink& out, const KeyRelease& release, const OpenOptions& options = {});
// In memory.
SecureBytes open(ByteView sealed_file, const KeyRelease& release, const OpenOptions& options = {});
// Decrypts into caller memory (e.g. a tmpfs mapping) on a shield::StreamAssembler's workers,
// each record straight into its place: dest.size() must equal describe(file).plaintext_size
// (else kUsage, before release is called). On any exception the assembler has wiped dest.
Header open_into(const RandomAccessSource& file, std::span<uint8_t> dest, const KeyRelease& release,
                 const OpenOptions& options = {});

// Opens a sealed file whose total size is known in advance (announced by the sender) while it
// arrives in order, e.g. streamed from the host agent into an enclave: push() buffers the
// prefix (at most kMaxPrefixSize bytes), calls release once it is complete and checks the
// header, then hands the stream to a shield::StreamAssembler that decrypts every record on its
// workers straight into destination (called once with the exact plaintext size) or, without
// one, into its own buffer that finish() returns. Errors as open() and StreamAssembler
// (kFormat for a file longer or shorter than announced, kPolicy over max_plaintext). On
// failure, or destruction before finish() returned, the destination is wiped.
//
//   sealed::Assembler a(size, max_plaintext, release, [&](uint64_t n) { return map_tmpfs(n); });
//   while (piece) a.push(piece);
//   a.finish();   // the destination now holds the verified plaintext
class Assembler {
 public:
  Assembler(uint64_t file_size, uint64_t max_plaintext, KeyRelease release,
            shield::PlaintextDestination destination = nullptr, const shield::AssemblerOptions& options = {});
  ~Assembler();
  Assembler(const Assembler&) = delete;
  Assembler& operator=(const Assembler&) = delete;

  // The next bytes of the file, in order (any split); copied before push() returns.
  void push(ByteView data);
  // The same without a copy of the stream's records: data stays valid while keepalive lives
  // (see StreamAssembler::push).
  void push(ByteView data, std::shared_ptr<const void> keepalive);
  // Once exactly file_size bytes arrived and every record verified: the plaintext (empty
  // when a destination was given). kFormat when the file ended inside its header.
  SecureBytes finish();
  // The checked header once release ran; null before.
  const Header* header() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Opens a sealed file that arrives in pieces (a socket): push() buffers the prefix (at most
// kMaxPrefixSize bytes), calls release once it is complete, then emits every stream chunk as
// soon as it verifies; finish() emits the last one and proves nothing was cut. Errors as open().
// Single-threaded; holds about one chunk.
class Opener {
 public:
  using Emit = shield::StreamDecryptor::Emit;
  explicit Opener(KeyRelease release, const OpenOptions& options = {});
  ~Opener();
  Opener(const Opener&) = delete;
  Opener& operator=(const Opener&) = delete;

  // The next bytes of the file (any split); emit gets each chunk once it verified (its view is
  // valid only during the call). Throws as open(); whatever release throws passes through.
  void push(ByteView data, const Emit& emit);
  // kFormat when the input ended inside the header; kAuth when the stream ended early.
  void finish(const Emit& emit);
  // The authenticated header once release ran and the header checked; null before.
  const Header* header() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace shield_nitro::sealed
