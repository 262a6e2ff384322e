// Sealing and opening: the header, then a stream container under a key bound to it.
#include "shield_nitro/sealed/sealed.h"

#include <algorithm>
#include <cstring>

#include "header_codec.h"
#include "pipeline.h"  // src/shield: the stream's own parallel_for (lowest failing chunk wins)
#include "shield_nitro/core/error.h"

namespace shield_nitro::sealed {
namespace detail_parallel = shield::detail;
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

Header make_header(const DataKey& key, const EncryptionContext& context) {
  return parse_header(detail::build_header(key.key_id, key.ciphertext_blob, context, key.plaintext.view()));
}

}  // namespace

Header seal(Source& in, Sink& out, const DataKey& key, const EncryptionContext& context, const SealOptions& options) {
  Header h = make_header(key, context);
  shield::Shield s = detail::stream_shield(key.plaintext.view(), h, options.suite);
  out.write(h.bytes);
  shield::encrypt_stream(s, in, out,
                         {.chunk_size = options.chunk_size, .threads = options.threads,
                          .on_progress = options.on_progress, .random = options.random});
  return h;
}

Bytes seal(ByteView plaintext, const DataKey& key, const EncryptionContext& context, const SealOptions& options) {
  Header h = make_header(key, context);
  shield::Shield s = detail::stream_shield(key.plaintext.view(), h, options.suite);
  Bytes stream = shield::encrypt_stream(s, plaintext,
                                        {.chunk_size = options.chunk_size, .threads = options.threads,
                                         .on_progress = options.on_progress, .random = options.random});
  Bytes out = std::move(h.bytes);
  out.insert(out.end(), stream.begin(), stream.end());
  return out;
}

Header open(Source& in, Sink& out, const KeyRelease& release, const OpenOptions& options) {
  Header h = read_header(in);
  SecureBytes key = release_checked(release, h);
  shield::Shield s = detail::stream_shield(key.view(), h, shield::Suite::kAes256Gcm);  // reading takes both suites
  key.clear();
  shield::decrypt_stream(s, in, out, stream_options(options));
  return h;
}

SecureBytes open(ByteView sealed_file, const KeyRelease& release, const OpenOptions& options) {
  Header h = parse_header(sealed_file);
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
  SecureBytes key = release_checked(release, d.header);
  shield::Shield s = detail::stream_shield(key.view(), d.header, shield::Suite::kAes256Gcm);
  key.clear();
  // The stream after the header; the caller's source outlives this call, so it is not owned.
  auto base = std::shared_ptr<const RandomAccessSource>(&file, [](const RandomAccessSource*) {});
  SliceSource stream(base, d.header.size(), file.size() - d.header.size());
  shield::StreamReader reader(s, stream, options.max_chunk_size);
  const uint64_t chunks = reader.chunk_count();
  const uint64_t chunk_size = reader.chunk_size();
  detail_parallel::parallel_for(chunks, options.threads, [&](uint64_t i) {
    SecureBytes pt = reader.read_chunk(i);
    std::memcpy(dest.data() + i * chunk_size, pt.data(), pt.size());
    if (options.on_progress) options.on_progress(pt.size() + shield::kTagSize);
  });
  return d.header;
}

// ---- Opener ----

struct Opener::State {
  KeyRelease release;
  OpenOptions options;
  Bytes pending;  // the header, until it is complete
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
    auto take = [&](size_t want) {
      size_t n = std::min(want - std::min(want, s_->pending.size()), data.size());
      s_->pending.insert(s_->pending.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
      data = data.subspan(n);
    };
    take(kHeaderPrefixSize);
    auto size = peek_header_size(s_->pending);
    if (!size) return;
    take(*size);
    if (s_->pending.size() < *size) return;
    Header h = parse_header(s_->pending);
    SecureBytes key = release_checked(s_->release, h);
    s_->shield.emplace(detail::stream_shield(key.view(), h, shield::Suite::kAes256Gcm));
    s_->decryptor = std::make_unique<shield::StreamDecryptor>(*s_->shield, stream_options(s_->options));
    s_->header = std::move(h);
    s_->pending.clear();
  }
  if (!data.empty()) s_->decryptor->push(data, emit);
}

void Opener::finish(const Emit& emit) {
  if (!s_->decryptor) {
    if (s_->pending.empty()) throw Error(Errc::kFormat, "not a sealed file: the input is empty");
    parse_header(s_->pending);  // says how it is cut short
  }
  s_->decryptor->finish(emit);
}

const Header* Opener::header() const { return s_->header ? &*s_->header : nullptr; }

}  // namespace shield_nitro::sealed
