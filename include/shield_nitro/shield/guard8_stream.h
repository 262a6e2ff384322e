// Read-only reader for Guard8 StreamCipher files (what Guard8's `shield encrypt` CLI writes),
// so users can migrate them. shield-nitro never writes this format. Wire format and key
// derivation: docs/stream-format.md, "Migrating from Guard8 files".
//
//   SecureBytes key = guard8_password_key(pw.view(), "report.pdf");  // the original base name
//   FileReader in("report.pdf.enc");  AtomicFileWriter out("report.pdf", 0600);
//   decrypt_guard8_stream(key.view(), in, out);  out.commit();
//
// Each chunk reaches out only after its own HMAC tag verified, but the file is complete and
// authentic only once the end tag verified, i.e. when this returns: on an exception discard
// what was written (AtomicFileWriter does).
#pragma once

#include <cstdint>
#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/kdf.h"
#include "shield_nitro/shield/stream.h"
#include "shield_nitro/core/byte_io.h"

namespace shield_nitro::shield {

inline constexpr size_t kGuard8HeaderSize = 20;      // u32le chunk_size || 16-byte stream salt
inline constexpr size_t kGuard8RecordOverhead = 32;  // 16-byte nonce + 16-byte truncated HMAC
// Guard8's CLI writes 64 KiB chunks; its in-memory API can write one chunk of any size.
inline constexpr uint32_t kGuard8DefaultMaxChunk = 16u << 20;

// The key Guard8's CLI derives: PBKDF2-HMAC-SHA256(password, salt = base name of the file
// that was encrypted, iterations, 32). Throws kUsage for an empty name or iterations < 1.
SecureBytes guard8_password_key(ByteView password, std::string_view original_name,
                                int iterations = kPbkdf2Iterations);

struct Guard8DecryptOptions {
  // Refuse (kPolicy) a chunk whose plaintext is larger: memory holds one chunk.
  uint32_t max_chunk_size = kGuard8DefaultMaxChunk;
  ProgressFn on_progress{};
};

// Decrypts a Guard8 StreamCipher file from in to out under key (the StreamCipher's key: the
// password key above, or a raw key). Throws Error naming the chunk and the reason:
//   kFormat  header, length field, record or end tag cut short; a record shorter than 32
//            bytes; bytes after the end tag
//   kAuth    a chunk's HMAC tag (wrong key or name, tampered, reordered) or the end tag
//            (chunks removed or appended) does not verify
//   kPolicy  a chunk larger than max_chunk_size
// Returns the number of chunks.
uint64_t decrypt_guard8_stream(ByteView key, Source& in, Sink& out, const Guard8DecryptOptions& options = {});

}  // namespace shield_nitro::shield
