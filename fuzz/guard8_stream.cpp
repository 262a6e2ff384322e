// Fuzzes the Guard8 StreamCipher reader (docs/stream-format.md, "Migrating from Guard8
// files") under a fixed raw key: any input is refused with a format, auth or policy error or
// decrypted, never a crash or an internal error; a decrypted file's size accounts for every
// byte (header 20, 36 per chunk, end marker 36). Chunks are capped at 4 KiB to keep it fast.
// Seed: tests/shield/data/guard8/keyed.bin.enc, which Guard8 wrote under this key.
#include <cstddef>
#include <cstdint>

#include "shield_nitro/core/error.h"
#include "shield_nitro/shield/guard8_stream.h"

using namespace shield_nitro;
using namespace shield_nitro::shield;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Bytes key = [] {
    Bytes k(32);
    for (int i = 0; i < 32; ++i) k[i] = static_cast<uint8_t>(i);
    return k;
  }();
  MemorySource src({data, size});
  Bytes out;
  BytesSink sink(out);
  try {
    uint64_t chunks = decrypt_guard8_stream(key, src, sink, {.max_chunk_size = 4096});
    if (out.size() + kGuard8HeaderSize + 36 + chunks * (4 + kGuard8RecordOverhead) != size) __builtin_trap();
  } catch (const Error& e) {
    if (e.code() != Errc::kFormat && e.code() != Errc::kAuth && e.code() != Errc::kPolicy) __builtin_trap();
  }
  return 0;
}
