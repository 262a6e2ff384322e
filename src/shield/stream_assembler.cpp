// StreamAssembler: in-order decryption of a container of announced size into one buffer
// allocated once (see stream.h). StreamDecryptor is the fallback when the size is unknown.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/shield/stream.h"
#include "stream_crypto.h"
#include "stream_header.h"

namespace shield_nitro::shield {

using detail::StreamCrypto;
using detail::StreamLayout;

namespace {

// First-touching a big plaintext costs about as much as decrypting it (page faults and the
// kernel's zeroing; docs/performance.md), so a helper thread maps its pages while the caller
// decrypts: the two halves of the work run on two cores. It stays at most kAhead bytes ahead
// of the received data, so memory follows what the sender actually sent.
constexpr uint64_t kPrefaultFrom = uint64_t{16} << 20;
constexpr uint64_t kAhead = uint64_t{64} << 20;
constexpr uint64_t kStep = uint64_t{4} << 20;

class Prefaulter {
 public:
  explicit Prefaulter(SecureBytes& buf) : buf_(buf), thread_([this] { run(); }) {}
  ~Prefaulter() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  // Allows mapping up to `upto` bytes of the buffer.
  void allow(uint64_t upto) {
    {
      std::lock_guard lock(mu_);
      if (upto <= target_) return;
      target_ = upto;
    }
    cv_.notify_one();
  }

 private:
  void run() {
    uint64_t done = 0;
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || done < target_; });
      if (stop_) return;
      uint64_t end = std::min(target_, done + kStep);
      lock.unlock();
      bool ok = buf_.prefault(done, end - done);
      lock.lock();
      if (!ok) return;  // not supported here: the decrypting thread faults the pages itself
      done = end;
    }
  }

  SecureBytes& buf_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t target_ = 0;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace

struct StreamAssembler::State {
  State(const Shield& sh, uint64_t t, uint64_t max, const StreamDecryptOptions& o)
      : shield(sh), total(t), max_plaintext(max), options(o) {}

  Shield shield;
  uint64_t total;
  uint64_t max_plaintext;
  StreamDecryptOptions options;
  uint64_t received = 0;
  Bytes head;     // header bytes until it parses
  Bytes partial;  // a record split between pieces
  std::unique_ptr<StreamCrypto> crypto;
  StreamLayout layout;
  SecureBytes plaintext;
  std::unique_ptr<Prefaulter> prefaulter;  // declared after plaintext: stops before it is freed
  uint64_t next = 0;  // index of the next record to open

  // Header bytes still missing: up to the mode byte, then the rest of a 50/66-byte header.
  size_t header_wanted() const {
    if (head.size() <= detail::kStreamModeOffset) return detail::kStreamModeOffset + 1 - head.size();
    return detail::kStreamFixedHeader + (head[detail::kStreamModeOffset] == kVersionPassword ? 16 : 0) - head.size();
  }

  void start(detail::StreamHeader h) {
    // A size no stream with this header can have (its last record would be shorter than a
    // tag) is the sender's mistake, told as such rather than as a failed tag.
    const uint64_t record = uint64_t{h.chunk_size} + kTagSize;
    const uint64_t last = total < h.bytes.size() ? 0 : (total - h.bytes.size()) % record;  // 0: a full last record
    if (total < h.bytes.size() + kTagSize || (last != 0 && last < kTagSize))
      throw Error(Errc::kFormat, "announced size " + std::to_string(total) + " does not fit a stream of " +
                                     std::to_string(h.chunk_size) + "-byte chunks");
    StreamLayout l = StreamLayout::of_container(h.bytes.size(), h.chunk_size, total);
    if (l.plaintext_size() > max_plaintext)
      throw Error(Errc::kPolicy, "stream of " + std::to_string(l.plaintext_size()) + " plaintext bytes exceeds the limit of " +
                                     std::to_string(max_plaintext) + " bytes");
    crypto = StreamCrypto::for_decrypt(shield, std::move(h));
    layout = l;
    plaintext.resize_for_overwrite(l.plaintext_size());  // every chunk is written, or it is dropped
    if (plaintext.size() >= kPrefaultFrom) prefaulter = std::make_unique<Prefaulter>(plaintext);
  }

  // Lets the prefaulter map up to kAhead beyond the plaintext of the bytes received so far.
  void pace() {
    if (!prefaulter) return;
    const uint64_t body = received > layout.header_size ? received - layout.header_size : 0;
    prefaulter->allow(std::min<uint64_t>(plaintext.size(), body + kAhead));
  }

  void open(ByteView record) {
    uint8_t none = 0;  // an empty stream has no buffer to point into
    uint8_t* out = plaintext.empty() ? &none : plaintext.data() + next * layout.chunk_size;
    crypto->open(next, next + 1 == layout.count, record, out);
    ++next;
  }

  // Consumes header bytes; returns what follows the header.
  ByteView take_header(ByteView data) {
    while (!crypto && !data.empty()) {
      size_t n = std::min(header_wanted(), data.size());
      head.insert(head.end(), data.begin(), data.begin() + static_cast<long>(n));
      data = data.subspan(n);
      if (auto h = detail::parse_stream_header(head, options.max_chunk_size)) start(std::move(*h));
    }
    return data;
  }

  void take_records(ByteView data) {
    while (!data.empty()) {
      const size_t record = layout.record_size(next);
      if (partial.empty() && data.size() >= record) {  // whole record in this piece: no copy
        open(data.first(record));
        data = data.subspan(record);
        continue;
      }
      size_t n = std::min(record - partial.size(), data.size());
      partial.insert(partial.end(), data.begin(), data.begin() + static_cast<long>(n));
      data = data.subspan(n);
      if (partial.size() == record) {
        open(partial);
        partial.clear();
      }
    }
  }
};

StreamAssembler::StreamAssembler(const Shield& shield, uint64_t container_size, uint64_t max_plaintext,
                                 const StreamDecryptOptions& options)
    : s_(std::make_unique<State>(shield, container_size, max_plaintext, options)) {}

StreamAssembler::~StreamAssembler() = default;

void StreamAssembler::push(ByteView data) {
  State& s = *s_;
  if (data.size() > s.total - s.received)
    throw Error(Errc::kFormat, "stream is longer than its announced " + std::to_string(s.total) + " bytes");
  s.received += data.size();
  ByteView rest = s.take_header(data);
  s.pace();
  s.take_records(rest);
}

SecureBytes StreamAssembler::finish() {
  State& s = *s_;
  if (s.received != s.total)
    throw Error(Errc::kFormat, "stream ended after " + std::to_string(s.received) + " of its announced " +
                                   std::to_string(s.total) + " bytes");
  if (!s.crypto) throw Error(Errc::kFormat, "stream header truncated after " + std::to_string(s.received) + " bytes");
  if (s.next != s.layout.count)  // unreachable when the sizes agree; kept as a guard
    throw Error(Errc::kAuth, "stream chunk " + std::to_string(s.next) + ": authentication failed: truncated, the stream ends before it");
  s.prefaulter.reset();  // done: every page was written
  return std::move(s.plaintext);
}

uint64_t StreamAssembler::plaintext_size() const { return s_->crypto ? s_->layout.plaintext_size() : 0; }

std::optional<StreamGeometry> peek_stream_geometry(ByteView prefix) {
  if (prefix.size() < detail::kStreamModeOffset + 5) return std::nullopt;
  if (!std::equal(detail::kStreamMagic.begin(), detail::kStreamMagic.end(), prefix.begin())) return std::nullopt;
  const uint8_t mode = prefix[detail::kStreamModeOffset];
  if (mode != kVersionPassword && mode != kVersionKey) return std::nullopt;
  return StreamGeometry{detail::kStreamFixedHeader + (mode == kVersionPassword ? 16 : 0), get_u32be(prefix.data() + 7)};
}

}  // namespace shield_nitro::shield
