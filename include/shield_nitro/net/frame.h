// Framing: every message on the wire is a 4-byte big-endian length followed by that many
// bytes of CBOR (docs/protocol.md). The length counts the payload only, never itself.
//
//   Bytes wire = encode_frame(payload);
//   FrameDecoder dec(kDefaultMaxFrame);
//   dec.feed(chunk);                       // any split of the stream, byte by byte if need be
//   while (auto frame = dec.next()) handle(*frame);
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::net {

inline constexpr size_t kFrameHeaderSize = 4;
// Largest payload accepted by default; both sides may configure their own limit.
inline constexpr size_t kDefaultMaxFrame = size_t{64} << 20;

// header || payload. Throws Error(kUsage) if payload exceeds 2^32 - 1 bytes.
Bytes encode_frame(ByteView payload);
void append_frame(Bytes& out, ByteView payload);

// Incremental decoder of a byte stream into frames. Checks the announced length against the
// limit as soon as the header is complete, before buffering any of the payload, so a peer
// cannot make us allocate more than max_frame + what it actually sent (a large frame reserves
// its address space at once, but memory is touched only as its bytes arrive).
//
// A reader can skip the copy of feed(): read() straight into read_area(), then commit() what
// arrived. Once a large frame's header is in, read_area() is the rest of that frame's own
// buffer, so its payload is received in place and next() hands it over without a copy.
class FrameDecoder {
 public:
  // Frames from this size on are received into their own buffer.
  static constexpr size_t kDirectFrom = size_t{256} << 10;

  explicit FrameDecoder(size_t max_frame = kDefaultMaxFrame) : max_frame_(max_frame) {}

  // Appends received bytes (copied); then call next() until nullopt.
  void feed(ByteView data);
  // Space to receive into (never empty), valid until the next call on the decoder; then
  // commit(n) with the n <= size bytes written. Call next() until nullopt after each commit.
  std::span<uint8_t> read_area();
  void commit(size_t n);
  // The next complete payload, or nullopt when more bytes are needed. Throws Error(kFormat)
  // naming both sizes when a frame announces more than max_frame (the stream is then
  // unusable: the caller must close it) or an empty payload.
  std::optional<Bytes> next();
  // next() without the copy: the payload in the decoder's buffer, valid until the next call on
  // the decoder. Same checks and errors as next().
  std::optional<ByteView> next_view();
  // The payload next_view() returned last, in a buffer of its own that outlives the decoder's:
  // a frame received in place is handed over (same address, no copy), a small one is copied.
  // Call it before any other call on the decoder.
  std::shared_ptr<const Bytes> hold_last();
  // Zeroes every byte of the buffer that holds no unread data: the frames already returned
  // (next_view()'s last one included, so call it once that one is copied or done with) and
  // the space left over from earlier frames. For a frame that carried a secret in clear.
  void wipe_consumed();

  // True while bytes of an unfinished frame are buffered (used for read timeouts).
  bool partial() const { return size_ > pos_ || direct_; }
  size_t buffered() const { return size_ - pos_ + direct_fill_; }
  size_t max_frame() const { return max_frame_; }

 private:
  void start_direct(size_t len);
  void release_last();
  size_t max_frame_;
  Bytes buf_;
  size_t pos_ = 0;   // start of the first unconsumed byte
  size_t size_ = 0;  // bytes in buf_ that hold data
  // A large frame being received in place: direct_ (capacity = its length), its first
  // direct_fill_ bytes received; frames after it queue in buf_.
  bool direct_ = false;
  Bytes direct_buf_;
  size_t direct_len_ = 0;
  size_t direct_fill_ = 0;
  ByteView last_;             // what next_view() returned last
  bool last_direct_ = false;  // ... and it is direct_buf_, complete (freed at the next call)
};

}  // namespace shield_nitro::net
