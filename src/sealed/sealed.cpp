// Sealing and opening: the header, then a stream container under a key bound to it.
#include "shield_nitro/sealed/sealed.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "header_codec.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::sealed {
namespace {

shield::StreamDecryptOptions stream_options(const OpenOptions& o) {
  return {.threads = o.threads, .max_chunk_size = o.max_chunk_size, .on_progress = o.on_progress};
}

// The released key, checked against the header: kAuth before anything is decrypted.
SecureBytes release_checked(const KeyRelease& release, const Header& h) {
  if (!release) throw Error(Errc::kUsage, "opening a sealed file needs a key release callback");
  SecureBytes key = release(h);
  detail::check_header(h, key.view());
  return key;
}

// Gathers the prefix (sealed header and stream header) that arrives in pieces: at most the
// header's declared size plus the stream header is buffered. The caller feeds the stream
// header to the stream reader before the rest.
struct HeaderBuffer {
  Bytes pending;
  std::optional<Header> header;  // parsed as soon as its bytes are in, so a bad one is refused without waiting
  // Takes what the prefix still needs from the front of data; the header once complete.
  std::optional<Header> take(ByteView& data) {
    auto fill = [&](size_t want) {
      size_t n = std::min(want - std::min(want, pending.size()), data.size());
      pending.insert(pending.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
      data = data.subspan(n);
    };
    if (!header) {
      fill(kHeaderPrefixSize);
      auto size = peek_header_size(pending);
      if (!size) return std::nullopt;
      fill(*size);
      if (pending.size() < *size) return std::nullopt;
      header = parse_header(pending);
    }
    const size_t size = header->size();
    fill(size + kStreamHeaderSize);
    if (pending.size() < size + kStreamHeaderSize) return std::nullopt;
    header->stream_header = to_bytes(detail::stream_header_after(ByteView(pending).subspan(size)));
    pending.clear();
    return std::exchange(header, std::nullopt);
  }
  // At the end of input without a complete prefix: why (empty, or how it is cut short).
  [[noreturn]] void incomplete() const {
    if (pending.empty()) throw Error(Errc::kFormat, "not a sealed file: the input is empty");
    parse_prefix(pending);
    throw Error(Errc::kInternal, "sealed header: complete yet not taken");
  }
};

// Reads the prefix from in; the stream that follows starts with h.stream_header.
Header read_prefix(Source& in) {
  Header h = read_header(in);
  Bytes stream_header(kStreamHeaderSize);
  stream_header.resize(in.read(stream_header.data(), stream_header.size()));
  h.stream_header = to_bytes(detail::stream_header_after(stream_header));
  return h;
}

// Passes everything on and keeps the first kStreamHeaderSize bytes (the stream header).
class StreamHeaderTap final : public Sink {
 public:
  StreamHeaderTap(Sink& to, Bytes& keep) : to_(to), keep_(keep) {}
  void write(ByteView data) override {
    size_t n = std::min(data.size(), kStreamHeaderSize - std::min(kStreamHeaderSize, keep_.size()));
    keep_.insert(keep_.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
    to_.write(data);
  }

 private:
  Sink& to_;
  Bytes& keep_;
};

// Every refusal of seal() comes before its first byte is written.
Header make_header(const DataKey& key, const EncryptionContext& context, const SealOptions& options) {
  if (options.chunk_size < shield::kStreamMinChunkSize || options.chunk_size > shield::kStreamMaxChunkSize)
    throw Error(Errc::kUsage, "cannot seal: chunk size " + std::to_string(options.chunk_size) + " is outside [" +
                                  std::to_string(shield::kStreamMinChunkSize) + ", " +
                                  std::to_string(shield::kStreamMaxChunkSize) + "]");
  return parse_header(detail::build_header(key.key_id, key.ciphertext_blob, context, key.plaintext.view()));
}

}  // namespace

Header seal(Source& in, Sink& out, const DataKey& key, const EncryptionContext& context, const SealOptions& options) {
  Header h = make_header(key, context, options);
  shield::Shield s = detail::stream_shield(key.plaintext.view(), h, options.suite);
  out.write(h.bytes);
  StreamHeaderTap tap(out, h.stream_header);
  shield::encrypt_stream(s, in, tap,
                         {.chunk_size = options.chunk_size, .threads = options.threads,
                          .on_progress = options.on_progress, .random = options.random});
  return h;
}

Bytes seal(ByteView plaintext, const DataKey& key, const EncryptionContext& context, const SealOptions& options) {
  Header h = make_header(key, context, options);
  shield::Shield s = detail::stream_shield(key.plaintext.view(), h, options.suite);
  Bytes stream = shield::encrypt_stream(s, plaintext,
                                        {.chunk_size = options.chunk_size, .threads = options.threads,
                                         .on_progress = options.on_progress, .random = options.random});
  Bytes out = std::move(h.bytes);
  out.insert(out.end(), stream.begin(), stream.end());
  return out;
}

Header open(Source& in, Sink& out, const KeyRelease& release, const OpenOptions& options) {
  Header h = read_prefix(in);
  SecureBytes key = release_checked(release, h);
  shield::Shield s = detail::stream_shield(key.view(), h, shield::Suite::kAes256Gcm);  // reading takes both suites
  key.clear();
  PrefixedSource stream(h.stream_header, in);
  shield::decrypt_stream(s, stream, out, stream_options(options));
  return h;
}

SecureBytes open(ByteView sealed_file, const KeyRelease& release, const OpenOptions& options) {
  Header h = parse_prefix(sealed_file);
  SecureBytes key = release_checked(release, h);
  shield::Shield s = detail::stream_shield(key.view(), h, shield::Suite::kAes256Gcm);
  key.clear();
  return shield::decrypt_stream(s, sealed_file.subspan(h.size()), stream_options(options));
}

Header open_into(const RandomAccessSource& file, std::span<uint8_t> dest, const KeyRelease& release,
                 const OpenOptions& options) {
  Description d = describe(file);
  if (dest.size() != d.plaintext_size)
    throw Error(Errc::kUsage, "open_into: the destination holds " + std::to_string(dest.size()) +
                                  " bytes, the sealed file's plaintext " + std::to_string(d.plaintext_size));
  shield::AssemblerOptions ao;
  ao.workers = options.threads;
  ao.max_chunk_size = options.max_chunk_size;
  Assembler a(file.size(), dest.size(), release, [dest](uint64_t) { return dest; }, ao);
  // Pieces read into buffers of their own, lent to the assembler (no second copy).
  constexpr uint64_t kPiece = 4u << 20;
  for (uint64_t off = 0; off < file.size();) {
    const size_t n = static_cast<size_t>(std::min(kPiece, file.size() - off));
    auto piece = std::make_shared<Bytes>(n);
    file.read_at(off, piece->data(), n);
    a.push(ByteView(*piece), piece);
    off += n;
    if (options.on_progress) options.on_progress(n);
  }
  a.finish();
  return *a.header();
}

// ---- Assembler ----

struct Assembler::State {
  uint64_t file_size, max_plaintext;
  KeyRelease release;
  shield::PlaintextDestination destination;
  shield::AssemblerOptions options;
  HeaderBuffer header_buffer;
  std::optional<Header> header;
  std::optional<shield::Shield> shield;
  std::unique_ptr<shield::StreamAssembler> stream;

  // Feeds the header; true once the stream assembler exists and takes the rest.
  bool header_done(ByteView& data) {
    if (stream) return true;
    auto h = header_buffer.take(data);
    if (!h) return false;
    if (file_size < h->prefix_size())
      throw Error(Errc::kFormat, "sealed file: the announced size " + std::to_string(file_size) +
                                     " is smaller than its headers (" + std::to_string(h->prefix_size()) + " bytes)");
    SecureBytes key = release_checked(release, *h);
    shield.emplace(detail::stream_shield(key.view(), *h, shield::Suite::kAes256Gcm));
    key.clear();
    stream = destination ? std::make_unique<shield::StreamAssembler>(*shield, file_size - h->size(), max_plaintext,
                                                                      std::move(destination), options)
                         : std::make_unique<shield::StreamAssembler>(*shield, file_size - h->size(), max_plaintext,
                                                                      options);
    stream->push(h->stream_header);
    header = std::move(h);
    return true;
  }
};

Assembler::Assembler(uint64_t file_size, uint64_t max_plaintext, KeyRelease release,
                     shield::PlaintextDestination destination, const shield::AssemblerOptions& options)
    : s_(std::make_unique<State>()) {
  s_->file_size = file_size;
  s_->max_plaintext = max_plaintext;
  s_->release = std::move(release);
  s_->destination = std::move(destination);
  s_->options = options;
}

Assembler::~Assembler() = default;

void Assembler::push(ByteView data) {
  if (s_->header_done(data) && !data.empty()) s_->stream->push(data);
}

void Assembler::push(ByteView data, std::shared_ptr<const void> keepalive) {
  if (s_->header_done(data) && !data.empty()) s_->stream->push(data, std::move(keepalive));
}

SecureBytes Assembler::finish() {
  if (!s_->stream) s_->header_buffer.incomplete();
  return s_->stream->finish();
}

const Header* Assembler::header() const { return s_->header ? &*s_->header : nullptr; }

// ---- Opener ----

struct Opener::State {
  KeyRelease release;
  OpenOptions options;
  HeaderBuffer header_buffer;
  std::optional<Header> header;
  std::optional<shield::Shield> shield;
  std::unique_ptr<shield::StreamDecryptor> decryptor;
};

Opener::Opener(KeyRelease release, const OpenOptions& options) : s_(std::make_unique<State>()) {
  s_->release = std::move(release);
  s_->options = options;
}

Opener::~Opener() = default;

void Opener::push(ByteView data, const Emit& emit) {
  if (!s_->decryptor) {
    auto h = s_->header_buffer.take(data);
    if (!h) return;
    SecureBytes key = release_checked(s_->release, *h);
    s_->shield.emplace(detail::stream_shield(key.view(), *h, shield::Suite::kAes256Gcm));
    s_->decryptor = std::make_unique<shield::StreamDecryptor>(*s_->shield, stream_options(s_->options));
    s_->decryptor->push(h->stream_header, emit);
    s_->header = std::move(h);
  }
  if (!data.empty()) s_->decryptor->push(data, emit);
}

void Opener::finish(const Emit& emit) {
  if (!s_->decryptor) s_->header_buffer.incomplete();
  s_->decryptor->finish(emit);
}

const Header* Opener::header() const { return s_->header ? &*s_->header : nullptr; }

}  // namespace shield_nitro::sealed
