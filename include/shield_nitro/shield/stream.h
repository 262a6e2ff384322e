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
#include <span>

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

// Tuning of a StreamAssembler.
struct AssemblerOptions {
  // Threads that decrypt records while push() keeps receiving; 0 = one per core
  // (std::thread::hardware_concurrency). Exactly this many threads run the AEAD; the thread
  // calling push() only parses, hands out and (for a borrowed push) copies.
  unsigned workers = 0;
  // Received records not yet decrypted, in bytes (copies, or borrowed pieces kept alive):
  // push() blocks while the next record would go past it. At least workers + 1 records are
  // always allowed, so a stream of 16 MiB chunks still keeps every worker busy.
  uint64_t max_in_flight_bytes = uint64_t{4} << 20;
  // Refuse headers announcing bigger chunks.
  uint32_t max_chunk_size = kStreamMaxChunkSize;
};

// Where a StreamAssembler writes the plaintext (e.g. a file in a tmpfs, mmap'd). Called once,
// from the push() that completes the header and after the sizes were checked (never for a
// refused stream), with the exact plaintext size; returns writable memory of exactly that many
// bytes (any other size is Error(kUsage)), which must stay valid and unread until finish()
// returns or the assembler is destroyed. It may throw: push() passes the exception on and the
// assembler is failed. For an empty plaintext it is called with 0 and may return an empty span.
using PlaintextDestination = std::function<std::span<uint8_t>(uint64_t plaintext_size)>;

// Decrypts a container whose total size is known in advance (announced by the sender) while
// it arrives in order, e.g. an artifact streamed into an enclave, on a small pool of worker
// threads. The plaintext's place is fixed as soon as the header is in (an own SecureBytes
// allocated once at its exact size, or the caller's PlaintextDestination), and each record is
// decrypted by a worker straight into its offset there while the receiving thread keeps
// reading. A record's position is the order in which push() received it, so records cannot be
// reordered, and the final chunk is known by its position.
//
// Copies: push(data, keepalive) decrypts the whole records lying in data where they lie (no
// copy) and releases keepalive once they are done; push(data) copies them first (one copy).
// Only a record split between pieces is gathered. Memory: the plaintext plus at most
// max_in_flight_bytes of received records (plus one record being gathered).
//
//   StreamAssembler a(shield, container_size, max_plaintext);
//   while (piece) a.push(piece);
//   SecureBytes plaintext = a.finish();
//
// Until finish() returns, the destination may hold plaintext of chunks whose tag failed or of
// a stream that later fails: never use it before. Every failure fails the whole load: a bad
// tag in any record (kAuth, naming the chunk), a stream longer or shorter than announced
// (kFormat: more bytes on push(), fewer on finish()), a malformed header (kFormat /
// kUnsupported), over max_plaintext (kPolicy, before anything is allocated). A worker's
// failure is thrown by the next push() or by finish(); after any failure every call throws
// the same error again. On failure, and on destruction before a successful finish(), the
// workers are stopped and every byte of the destination they may have written is wiped.
// push()/finish() are for one thread at a time; the destructor joins the workers.
class StreamAssembler {
 public:
  // Decrypts into an own SecureBytes (huge pages from 4 MiB), returned by finish().
  // max_plaintext: refuse (Error(kPolicy), before allocating) a header and size that add up
  // to a bigger plaintext.
  StreamAssembler(const Shield& shield, uint64_t container_size, uint64_t max_plaintext,
                  const AssemblerOptions& options = {});
  // Decrypts into the memory destination returns (see PlaintextDestination); finish() then
  // returns an empty SecureBytes.
  StreamAssembler(const Shield& shield, uint64_t container_size, uint64_t max_plaintext,
                  PlaintextDestination destination, const AssemblerOptions& options = {});
  ~StreamAssembler();
  StreamAssembler(const StreamAssembler&) = delete;
  StreamAssembler& operator=(const StreamAssembler&) = delete;

  // The next bytes of the container, in order (any split), copied before push() returns.
  void push(ByteView data);
  // The same without a copy: data must stay valid while keepalive (its owner, e.g. the
  // received frame) lives; the assembler holds keepalive until every record in data was
  // decrypted, and drops it at the latest when finish() returns or the assembler is destroyed.
  void push(ByteView data, std::shared_ptr<const void> keepalive);
  // Waits for the workers. Own buffer: the whole plaintext; with a destination: an empty
  // SecureBytes, every destination byte written and verified. Throws as described above.
  SecureBytes finish();
  // The plaintext size once the header arrived (0 before).
  uint64_t plaintext_size() const;
  // The worker count this assembler uses (options.workers, or the core count for 0).
  unsigned workers() const;

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
