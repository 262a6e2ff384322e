// Fuzzes the stream container decoders under a fixed key: the in-memory decrypt, the
// sequential pipeline, the incremental StreamDecryptor (fed in pieces whose size comes from
// the input), the random-access StreamReader and the parallel StreamAssembler (announced the
// input's size; 1-3 workers, copied and borrowed pieces, a tiny in-flight bound). They must
// agree: all refuse, or all return the same plaintext. Chunks are capped at 4 KiB so each input stays fast.
// Seeds: the key-mode vectors of docs/stream-format.md, which use this key.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "shield_nitro/core/error.h"
#include "shield_nitro/shield/stream.h"

using namespace shield_nitro;
using namespace shield_nitro::shield;

namespace {

constexpr uint32_t kMaxChunk = 4096;

const Shield& fuzz_shield() {
  static const Shield s = [] {
    Bytes key(32);
    for (int i = 0; i < 32; ++i) key[i] = static_cast<uint8_t>(i);
    return Shield::with_key(ShieldKey::from_bytes(key));
  }();
  return s;
}

template <typename F>
std::optional<Bytes> attempt(F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    if (e.code() == Errc::kInternal) __builtin_trap();
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Shield& s = fuzz_shield();
  ByteView input(data, size);
  StreamDecryptOptions opts{.threads = 1, .max_chunk_size = kMaxChunk};

  auto in_memory = attempt([&] { return to_bytes(decrypt_stream(s, input, opts).view()); });
  auto sequential = attempt([&] {
    MemorySource src(input);
    Bytes out;
    BytesSink sink(out);
    decrypt_stream(s, src, sink, opts);
    return out;
  });
  auto incremental = attempt([&] {
    StreamDecryptor d(s, opts);
    Bytes out;
    auto emit = [&](ByteView p) { out.insert(out.end(), p.begin(), p.end()); };
    const size_t piece = size ? 1 + data[size - 1] % 97 : 1;
    for (size_t off = 0; off < size; off += piece) d.push(input.subspan(off, std::min(piece, size - off)), emit);
    d.finish(emit);
    return out;
  });
  auto random_access = attempt([&] {
    MemorySource src(input);
    StreamReader r(s, src, kMaxChunk);
    Bytes out;
    for (uint64_t i = 0; i < r.chunk_count(); ++i) {
      SecureBytes c = r.read_chunk(i);
      out.insert(out.end(), c.view().begin(), c.view().end());
    }
    return out;
  });
  auto assembled = attempt([&] {
    const unsigned workers = size ? 1 + data[0] % 3 : 1;
    StreamAssembler a(s, size, ~uint64_t{0}, {.workers = workers, .max_in_flight_bytes = 1, .max_chunk_size = kMaxChunk});
    auto keep = std::make_shared<int>(0);  // the input outlives the assembler
    const size_t piece = size ? 1 + data[size - 1] % 211 : 1;
    for (size_t off = 0, i = 0; off < size; off += piece, ++i) {
      ByteView p = input.subspan(off, std::min(piece, size - off));
      if (i % 2) a.push(p, keep);
      else a.push(p);
    }
    return to_bytes(a.finish().view());
  });
  if (in_memory != sequential || in_memory != incremental || in_memory != random_access || in_memory != assembled)
    __builtin_trap();
  return 0;
}
