#include "shield_nitro/shield/stream.h"

#include <algorithm>
#include <cstring>

#include "pipeline.h"
#include "shield_nitro/core/error.h"
#include "stream_crypto.h"
#include "stream_header.h"

namespace shield_nitro::shield {
namespace {

using detail::StreamCrypto;
using detail::StreamLayout;

void check_chunk_size(uint32_t chunk) {
  if (chunk < kStreamMinChunkSize || chunk > kStreamMaxChunkSize)
    throw Error(Errc::kUsage, "chunk size " + std::to_string(chunk) + " not in [" + std::to_string(kStreamMinChunkSize) +
                                  ", " + std::to_string(kStreamMaxChunkSize) + "]");
}

std::unique_ptr<StreamCrypto> start_encrypt(const Shield& shield, const StreamEncryptOptions& o) {
  check_chunk_size(o.chunk_size);
  return StreamCrypto::for_encrypt(shield, o.chunk_size, o.random ? *o.random : os_random());
}

// Reads the header from a sequential source, one field group at a time.
detail::StreamHeader read_header(Source& in, uint32_t max_chunk) {
  Bytes buf(detail::kStreamFixedHeader + 16);
  size_t have = 0;
  for (size_t want = detail::kStreamModeOffset + 1;;) {
    size_t got = in.read(buf.data() + have, want - have);
    have += got;
    if (auto h = detail::parse_stream_header({buf.data(), have}, max_chunk)) return *h;
    if (have < want) throw Error(Errc::kFormat, "stream header truncated after " + std::to_string(have) + " bytes");
    want = detail::kStreamFixedHeader + (buf[detail::kStreamModeOffset] == kVersionPassword ? 16 : 0);
  }
}

std::unique_ptr<StreamCrypto> start_decrypt(const Shield& shield, ByteView container, uint32_t max_chunk) {
  auto h = detail::parse_stream_header(container, max_chunk);
  if (!h) throw Error(Errc::kFormat, "stream header truncated after " + std::to_string(container.size()) + " bytes");
  return StreamCrypto::for_decrypt(shield, std::move(*h));
}

}  // namespace

void encrypt_stream(const Shield& shield, Source& in, Sink& out, const StreamEncryptOptions& options) {
  auto crypto = start_encrypt(shield, options);
  out.write(crypto->header().bytes);
  detail::RecordJob job{crypto->chunk_size(), crypto->record_size(),
                        [&](uint64_t i, bool last, ByteView pt, uint8_t* o) {
                          crypto->seal(i, last, pt, o);
                          return pt.size() + kTagSize;
                        }};
  detail::run_records(in, out, job, options.threads, options.on_progress);
}

void decrypt_stream(const Shield& shield, Source& in, Sink& out, const StreamDecryptOptions& options) {
  auto crypto = StreamCrypto::for_decrypt(shield, read_header(in, options.max_chunk_size));
  detail::RecordJob job{crypto->record_size(), crypto->chunk_size(),
                        [&](uint64_t i, bool last, ByteView record, uint8_t* o) {
                          crypto->open(i, last, record, o);
                          return record.size() - kTagSize;
                        }};
  detail::run_records(in, out, job, options.threads, options.on_progress);
}

Bytes encrypt_stream(const Shield& shield, ByteView plaintext, const StreamEncryptOptions& options) {
  auto crypto = start_encrypt(shield, options);
  const auto& header = crypto->header().bytes;
  auto layout = StreamLayout::of_plaintext(header.size(), crypto->chunk_size(), plaintext.size());
  Bytes out(layout.container_size());
  std::memcpy(out.data(), header.data(), header.size());
  detail::parallel_for(layout.count, options.threads, [&](uint64_t i) {
    ByteView pt = plaintext.subspan(i * layout.chunk_size, layout.record_size(i) - kTagSize);
    crypto->seal(i, i + 1 == layout.count, pt, out.data() + layout.record_offset(i));
    if (options.on_progress) options.on_progress(pt.size());
  });
  return out;
}

SecureBytes decrypt_stream(const Shield& shield, ByteView container, const StreamDecryptOptions& options) {
  auto crypto = start_decrypt(shield, container, options.max_chunk_size);
  auto layout = StreamLayout::of_container(crypto->header().bytes.size(), crypto->chunk_size(), container.size());
  SecureBytes out;
  out.resize_for_overwrite(layout.plaintext_size());  // every chunk is written, or out is dropped
  detail::parallel_for(layout.count, options.threads, [&](uint64_t i) {
    ByteView record = container.subspan(layout.record_offset(i), layout.record_size(i));
    crypto->open(i, i + 1 == layout.count, record, out.data() + i * layout.chunk_size);
    if (options.on_progress) options.on_progress(record.size());
  });
  return out;
}

// ---- incremental decryption ----

struct StreamDecryptor::State {
  Shield shield;
  StreamDecryptOptions options;
  Bytes pending;       // received, not yet decrypted
  size_t consumed = 0;  // bytes of pending already decrypted
  std::unique_ptr<StreamCrypto> crypto;
  SecureBytes plaintext;
  uint64_t next_index = 0;
  uint64_t bytes_out = 0;
  bool finished = false;

  ByteView unread() const { return ByteView(pending).subspan(consumed); }
  void open_record(size_t len, bool last, const Emit& emit) {
    crypto->open(next_index++, last, unread().first(len), plaintext.data());
    consumed += len;
    bytes_out += len - kTagSize;
    emit({plaintext.data(), len - kTagSize});
  }
  void compact() {
    if (consumed == 0) return;
    pending.erase(pending.begin(), pending.begin() + static_cast<long>(consumed));
    consumed = 0;
  }
};

StreamDecryptor::StreamDecryptor(const Shield& shield, const StreamDecryptOptions& options)
    : s_(new State{shield, options, {}, 0, nullptr, {}, 0, 0, false}) {}

StreamDecryptor::~StreamDecryptor() = default;

void StreamDecryptor::push(ByteView data, const Emit& emit) {
  State& s = *s_;
  if (s.finished) throw Error(Errc::kUsage, "StreamDecryptor::push after finish");
  s.pending.insert(s.pending.end(), data.begin(), data.end());
  if (!s.crypto) {
    auto h = detail::parse_stream_header(s.pending, s.options.max_chunk_size);
    if (!h) return;
    s.consumed = h->bytes.size();
    s.crypto = StreamCrypto::for_decrypt(s.shield, std::move(*h));
    s.plaintext = SecureBytes(s.crypto->chunk_size());
  }
  // A full record is known not to be the last once at least one more byte follows it.
  const size_t record = s.crypto->record_size();
  while (s.unread().size() > record) s.open_record(record, false, emit);
  s.compact();
}

void StreamDecryptor::finish(const Emit& emit) {
  State& s = *s_;
  if (s.finished) return;
  s.finished = true;
  if (!s.crypto) throw Error(Errc::kFormat, "stream header truncated after " + std::to_string(s.pending.size()) + " bytes");
  // A final record shorter than a tag is reported by open(), with its index.
  s.open_record(s.unread().size(), true, emit);
  s.compact();
}

uint64_t StreamDecryptor::plaintext_bytes() const { return s_->bytes_out; }

// ---- random access ----

struct StreamReader::State {
  const RandomAccessSource& source;
  std::unique_ptr<StreamCrypto> crypto;
  StreamLayout layout;
};

StreamReader::StreamReader(const Shield& shield, const RandomAccessSource& source, uint32_t max_chunk_size) {
  Bytes head(std::min<uint64_t>(source.size(), detail::kStreamFixedHeader + 16));
  source.read_at(0, head.data(), head.size());
  auto crypto = start_decrypt(shield, head, max_chunk_size);
  auto layout = StreamLayout::of_container(crypto->header().bytes.size(), crypto->chunk_size(), source.size());
  s_.reset(new State{source, std::move(crypto), layout});
}

StreamReader::~StreamReader() = default;

uint32_t StreamReader::chunk_size() const { return s_->layout.chunk_size; }
uint64_t StreamReader::chunk_count() const { return s_->layout.count; }
uint64_t StreamReader::plaintext_size() const { return s_->layout.plaintext_size(); }

SecureBytes StreamReader::read_chunk(uint64_t index) const {
  const StreamLayout& l = s_->layout;
  if (index >= l.count)
    throw Error(Errc::kNotFound, "chunk " + std::to_string(index) + " out of range (stream has " +
                                     std::to_string(l.count) + ")");
  Bytes record(l.record_size(index));
  s_->source.read_at(l.record_offset(index), record.data(), record.size());
  SecureBytes out;
  out.resize_for_overwrite(record.size() - kTagSize);
  s_->crypto->open(index, index + 1 == l.count, record, out.data());
  return out;
}

}  // namespace shield_nitro::shield
