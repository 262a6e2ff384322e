// Fuzzes the sealed-file parsers and openers under a fixed data key: parse_header,
// peek_header_size, read_header, parse_prefix and describe must agree on the header (and the
// last two on the stream header); the in-memory open, the
// sequential open, the incremental Opener (fed in pieces whose size comes from the input),
// open_into and the Assembler (announced size) must all refuse or all return the same
// plaintext. Chunks are capped at 4 KiB.
// Seeds: the vectors of docs/stream-format.md §8.4 (the first one uses this key) and headers.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "shield_nitro/core/error.h"
#include "shield_nitro/sealed/sealed.h"

using namespace shield_nitro;
using namespace shield_nitro::sealed;

namespace {

constexpr uint32_t kMaxChunk = 4096;

SecureBytes fuzz_key(const Header&) {
  Bytes key(kDataKeySize);
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  return SecureBytes(key);
}

template <typename F>
auto attempt(F&& f) -> std::optional<decltype(f())> {
  try {
    return f();
  } catch (const Error& e) {
    if (e.code() == Errc::kInternal) __builtin_trap();
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView input(data, size);
  OpenOptions opts{.threads = 1, .max_chunk_size = kMaxChunk};

  auto parsed = attempt([&] { return parse_header(input); });
  auto read = attempt([&] {
    MemorySource src(input);
    Header h = read_header(src);
    if (src.remaining().size() != size - h.size()) __builtin_trap();
    return h;
  });
  if (parsed.has_value() != read.has_value() || (parsed && parsed->bytes != read->bytes)) __builtin_trap();
  if (parsed) {
    auto peeked = attempt([&] { return peek_header_size(input); });
    if (!peeked || *peeked != std::optional<size_t>(parsed->size())) __builtin_trap();
    if (parsed->key_id.empty() || parsed->ciphertext_blob.empty() || parsed->size() > kMaxHeaderSize) __builtin_trap();
  }
  auto described = attempt([&] {
    MemorySource src(input);
    return describe(src);
  });
  if (described && (!parsed || described->header.bytes != parsed->bytes)) __builtin_trap();
  // The prefix (header + stream header, the artifact pin's bytes) is what describe read.
  auto prefixed = attempt([&] { return parse_prefix(input); });
  if (prefixed && (!parsed || prefixed->bytes != parsed->bytes || prefixed->stream_header.size() != kStreamHeaderSize ||
                   !std::equal(prefixed->stream_header.begin(), prefixed->stream_header.end(), data + parsed->size())))
    __builtin_trap();
  if (described && (!prefixed || described->header.stream_header != prefixed->stream_header)) __builtin_trap();

  auto in_memory = attempt([&] { return to_bytes(open(input, fuzz_key, opts).view()); });
  auto sequential = attempt([&] {
    MemorySource src(input);
    Bytes out;
    BytesSink sink(out);
    open(src, sink, fuzz_key, opts);
    return out;
  });
  auto incremental = attempt([&] {
    Opener o(fuzz_key, opts);
    Bytes out;
    auto emit = [&](ByteView p) { out.insert(out.end(), p.begin(), p.end()); };
    const size_t piece = size ? 1 + data[size - 1] % 97 : 1;
    for (size_t off = 0; off < size; off += piece) o.push(input.subspan(off, std::min(piece, size - off)), emit);
    o.finish(emit);
    return out;
  });
  auto into = attempt([&] {
    MemorySource src(input);
    Bytes out(describe(src).plaintext_size);
    open_into(src, out, fuzz_key, opts);
    return out;
  });
  auto assembled = attempt([&] {
    Assembler a(size, 1 << 20, fuzz_key, nullptr, {.workers = 1, .max_chunk_size = kMaxChunk});
    const size_t piece = size ? 1 + data[0] % 89 : 1;
    for (size_t off = 0; off < size; off += piece) a.push(input.subspan(off, std::min(piece, size - off)));
    return to_bytes(a.finish().view());
  });
  if (in_memory != sequential || in_memory != incremental || in_memory != into || in_memory != assembled)
    __builtin_trap();
  if (in_memory && (!described || !prefixed)) __builtin_trap();
  return 0;
}
