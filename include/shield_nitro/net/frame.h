// Framing: every message on the wire is a 4-byte big-endian length followed by that many
// bytes of CBOR (docs/protocol.md). The length counts the payload only, never itself.
//
//   Bytes wire = encode_frame(payload);
//   FrameDecoder dec(kDefaultMaxFrame);
//   dec.feed(chunk);                       // any split of the stream, byte by byte if need be
//   while (auto frame = dec.next()) handle(*frame);
#pragma once

#include <cstddef>
#include <optional>

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
// cannot make us allocate more than max_frame + what it actually sent.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame = kDefaultMaxFrame) : max_frame_(max_frame) {}

  void feed(ByteView data);
  // The next complete payload, or nullopt when more bytes are needed. Throws Error(kFormat)
  // naming both sizes when a frame announces more than max_frame (the stream is then
  // unusable: the caller must close it) or an empty payload.
  std::optional<Bytes> next();

  // True while bytes of an unfinished frame are buffered (used for read timeouts).
  bool partial() const { return size_ > pos_; }
  size_t buffered() const { return size_ - pos_; }
  size_t max_frame() const { return max_frame_; }

 private:
  size_t max_frame_;
  Bytes buf_;
  size_t pos_ = 0;   // start of the first unconsumed byte
  size_t size_ = 0;  // bytes in buf_ that hold data
};

}  // namespace shield_nitro::net
