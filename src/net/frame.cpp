#include "shield_nitro/net/frame.h"

#include <cstring>

#include "shield_nitro/core/error.h"

namespace shield_nitro::net {

void append_frame(Bytes& out, ByteView payload) {
  if (payload.size() > 0xFFFFFFFFu) throw Error(Errc::kUsage, "frame: payload over 4 GiB cannot be framed");
  put_u32be(out, static_cast<uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
}

Bytes encode_frame(ByteView payload) {
  Bytes out;
  out.reserve(kFrameHeaderSize + payload.size());
  append_frame(out, payload);
  return out;
}

void FrameDecoder::feed(ByteView data) {
  if (data.empty()) return;
  // Compact once the consumed prefix dominates, so the buffer stays about one frame long.
  if (pos_ > 0 && (pos_ == size_ || pos_ >= buf_.size() / 2)) {
    std::memmove(buf_.data(), buf_.data() + pos_, size_ - pos_);
    size_ -= pos_;
    pos_ = 0;
  }
  if (buf_.size() < size_ + data.size()) buf_.resize(std::max(size_ + data.size(), buf_.size() * 2));
  std::memcpy(buf_.data() + size_, data.data(), data.size());
  size_ += data.size();
}

std::optional<Bytes> FrameDecoder::next() {
  size_t avail = size_ - pos_;
  if (avail < kFrameHeaderSize) return std::nullopt;
  size_t len = get_u32be(buf_.data() + pos_);
  if (len > max_frame_)
    throw Error(Errc::kFormat, "frame of " + std::to_string(len) + " bytes exceeds the limit of " +
                                   std::to_string(max_frame_) + " bytes");
  if (len == 0) throw Error(Errc::kFormat, "empty frame (a frame must carry one CBOR message)");
  if (avail - kFrameHeaderSize < len) return std::nullopt;
  const uint8_t* start = buf_.data() + pos_ + kFrameHeaderSize;
  Bytes frame(start, start + len);
  pos_ += kFrameHeaderSize + len;
  if (pos_ == size_) pos_ = size_ = 0;
  return frame;
}

}  // namespace shield_nitro::net
