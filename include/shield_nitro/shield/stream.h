// The shield-nitro stream container: Shield-keyed encryption for artifacts of any size.
//
// The input is cut into fixed-size chunks; each is sealed with the Shield's AEAD suite under
// a per-stream key (HKDF of the Shield master key with a random salt) and the STREAM nonce
// prefix || chunk counter || last-chunk flag, with the whole header as associated data.
// So truncation, reordering, duplication, appending and cutting after a chunk all fail
// authentication, and memory stays at a few chunks per thread whatever the size.
// Wire format: docs/stream-format.md.
//
//   Shield s = Shield::with_key(key);
//   FileReader in("model.bin");  AtomicFileWriter out("model.snst");
//   encrypt_stream(s, in, out);  out.commit();   // a FileReader is a Source, the writer a Sink
//
// Streams carry no timestamp: the Shield's freshness window does not apply to them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/shield.h"
#include "shield_nitro/core/byte_io.h"

namespace shield_nitro::shield {

inline constexpr uint32_t kStreamMinChunkSize = 64;
inline constexpr uint32_t kStreamMaxChunkSize = 16u << 20;
inline constexpr uint32_t kStreamDefaultChunkSize = 1u << 20;

// Called with the number of input bytes processed since the previous call.
using ProgressFn = std::function<void(uint64_t bytes)>;

struct StreamEncryptOptions {
  uint32_t chunk_size = kStreamDefaultChunkSize;  // in [kStreamMinChunkSize, kStreamMaxChunkSize]
  unsigned threads = 0;                           // 0 = every core
  ProgressFn on_progress{};
  Random* random = nullptr;  // test seam for the vectors; null = CSPRNG
};

struct StreamDecryptOptions {
  unsigned threads = 0;  // 0 = every core
  // Refuse headers announcing bigger chunks (memory is a few chunks per thread).
  uint32_t max_chunk_size = kStreamMaxChunkSize;
  ProgressFn on_progress{};
};

// Encrypts all of in to out with the Shield's suite. Uses the Shield's master key (password
// mode: the key of its own salt, which the header carries).
void encrypt_stream(const Shield& shield, Source& in, Sink& out, const StreamEncryptOptions& options = {});

// Decrypts and authenticates in to out. Chunks reach out only once their own tag verified,
// but a stream is whole only when this returns: on an exception, discard what was written
// (AtomicFileWriter does). Throws kAuth "authentication failed" for a wrong key, tampering,
// truncation or extension; kFormat/kUnsupported for a malformed or unknown header.
void decrypt_stream(const Shield& shield, Source& in, Sink& out, const StreamDecryptOptions& options = {});

// In-memory conveniences (parallel, no extra copies).
Bytes encrypt_stream(const Shield& shield, ByteView plaintext, const StreamEncryptOptions& options = {});
SecureBytes decrypt_stream(const Shield& shield, ByteView container, const StreamDecryptOptions& options = {});

// Decrypts while the container arrives in pieces (e.g. from a socket into an enclave),
// holding at most about one chunk. push() emits each chunk as soon as it verifies; the last
// chunk is emitted by finish(), which also proves nothing was cut off. Single-threaded.
class StreamDecryptor {
 public:
  using Emit = std::function<void(ByteView plaintext)>;
  explicit StreamDecryptor(const Shield& shield, const StreamDecryptOptions& options = {});
  ~StreamDecryptor();
  StreamDecryptor(const StreamDecryptor&) = delete;
  StreamDecryptor& operator=(const StreamDecryptor&) = delete;

  // Takes the next bytes of the container (any split) and emits every chunk that verified;
  // throws as decrypt_stream (kFormat, kAuth...), and kUsage after finish(). emit's view is
  // valid only during the call.
  void push(ByteView data, const Emit& emit);
  // Throws kAuth if the stream ended early (no header, no last chunk).
  void finish(const Emit& emit);
  // Plaintext bytes emitted so far.
  uint64_t plaintext_bytes() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Decrypts a container whose total size is known in advance (announced by the sender) while
// it arrives in order, e.g. an artifact streamed into an enclave. The plaintext is allocated
// once, at its exact size, as soon as the header is in (no growth, no copies), and every chunk
// is decrypted straight into its place after its own tag verified; the final chunk is known by
// its position. A piece of input that holds whole records is decrypted where it lies; only a
// record split between pieces is gathered (one record of memory). Single-threaded.
//
//   StreamAssembler a(shield, container_size, max_plaintext);
//   while (piece) a.push(piece);
//   SecureBytes plaintext = a.finish();
//
// A stream longer or shorter than announced fails (kFormat): more bytes on push(), fewer on
// finish(). On any exception the partial plaintext is wiped with the assembler.
class StreamAssembler {
 public:
  // max_plaintext: refuse (Error(kPolicy), before allocating) a header and size that add up
  // to a bigger plaintext.
  StreamAssembler(const Shield& shield, uint64_t container_size, uint64_t max_plaintext,
                  const StreamDecryptOptions& options = {});
  ~StreamAssembler();
  StreamAssembler(const StreamAssembler&) = delete;
  StreamAssembler& operator=(const StreamAssembler&) = delete;

  // The next bytes of the container, in order (any split); errors as described above.
  void push(ByteView data);
  // The whole plaintext once exactly container_size bytes arrived and the last chunk verified.
  SecureBytes finish();
  // The plaintext size once the header arrived (0 before).
  uint64_t plaintext_size() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// What a sender needs to cut a container at record boundaries (one record per frame lets the
// receiver decrypt each frame where it lies). nullopt when prefix is not (or not yet, under
// 11 bytes) a stream header; no cryptography, no validation beyond the magic and mode.
struct StreamGeometry {
  size_t header_size;
  uint32_t chunk_size;
  // Bytes of one full chunk's record: ciphertext and tag.
  size_t record_size() const { return size_t{chunk_size} + kTagSize; }
};
// The geometry of the stream that prefix starts, or nullopt (see above). Never throws.
std::optional<StreamGeometry> peek_stream_geometry(ByteView prefix);

// Random access: authenticates the header and decrypts chunk N alone, e.g. to load one
// tensor of a model. Each chunk is checked against its own index and the file size, so a
// chunk from another position or stream is refused; a truncated file shows up as a failure
// of its (new) last chunk. Thread-safe.
class StreamReader {
 public:
  StreamReader(const Shield& shield, const RandomAccessSource& source,
               uint32_t max_chunk_size = kStreamMaxChunkSize);
  ~StreamReader();
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  // The geometry read from the authenticated header.
  uint32_t chunk_size() const;
  uint64_t chunk_count() const;
  uint64_t plaintext_size() const;
  // Chunk index's plaintext: Error(kNotFound) past the last chunk, kAuth when it does not verify.
  SecureBytes read_chunk(uint64_t index) const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace shield_nitro::shield
