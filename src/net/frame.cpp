#include "shield_nitro/net/frame.h"

#include <algorithm>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::net {
namespace {

constexpr size_t kMinArea = 64 * 1024;  // what one read() asks for
// A direct frame's buffer is zero-filled (std::vector) slice by slice just before it is
// received into, so untouched memory never grows beyond what the peer sent.
constexpr size_t kDirectSlice = 256 * 1024;

}  // namespace

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

void FrameDecoder::release_last() {
  last_ = {};
  if (last_direct_) {
    last_direct_ = false;
    Bytes().swap(direct_buf_);
  }
}

std::span<uint8_t> FrameDecoder::read_area() {
  release_last();
  if (direct_ && direct_fill_ < direct_len_) {
    size_t prepared = std::min(direct_len_, std::max(direct_buf_.size(), direct_fill_ + kDirectSlice));
    if (direct_buf_.size() < prepared) direct_buf_.resize(prepared);
    return {direct_buf_.data() + direct_fill_, direct_buf_.size() - direct_fill_};
  }
  // Compact once the consumed prefix dominates, so the buffer stays about one frame long.
  if (pos_ > 0 && (pos_ == size_ || pos_ >= buf_.size() / 2)) {
    std::memmove(buf_.data(), buf_.data() + pos_, size_ - pos_);
    size_ -= pos_;
    pos_ = 0;
  }
  if (buf_.size() < size_ + kMinArea) {
    // Grown by hand, not resize(): the old block is zeroed before it is freed, since it may
    // hold part of a frame that carries a secret (see wipe_consumed). Once per doubling.
    Bytes grown(std::max(size_ + kMinArea, buf_.size() * 2));
    if (size_ > 0) std::memcpy(grown.data(), buf_.data(), size_);  // never memcpy from null
    if (!buf_.empty()) secure_wipe(buf_.data(), buf_.size());
    buf_.swap(grown);
  }
  return {buf_.data() + size_, buf_.size() - size_};
}

void FrameDecoder::commit(size_t n) {
  if (direct_ && direct_fill_ < direct_len_) direct_fill_ += n;
  else size_ += n;
}

void FrameDecoder::feed(ByteView data) {
  while (!data.empty()) {
    std::span<uint8_t> area = read_area();
    size_t n = std::min(area.size(), data.size());
    std::memcpy(area.data(), data.data(), n);
    commit(n);
    data = data.subspan(n);
  }
}

// Moves the frame's payload received so far (all of buf_ after the header) into its own buffer.
void FrameDecoder::start_direct(size_t len) {
  const uint8_t* start = buf_.data() + pos_ + kFrameHeaderSize;
  const size_t have = size_ - pos_ - kFrameHeaderSize;
  direct_buf_ = Bytes();
  direct_buf_.reserve(len);
  direct_buf_.assign(start, start + have);
  direct_ = true;
  direct_len_ = len;
  direct_fill_ = have;
  pos_ = size_ = 0;
}

std::optional<ByteView> FrameDecoder::next_view() {
  release_last();
  if (direct_) {
    if (direct_fill_ < direct_len_) return std::nullopt;
    direct_ = false;
    direct_fill_ = direct_len_ = 0;
    last_direct_ = true;
    return last_ = ByteView(direct_buf_);
  }
  size_t avail = size_ - pos_;
  if (avail < kFrameHeaderSize) return std::nullopt;
  size_t len = get_u32be(buf_.data() + pos_);
  if (len > max_frame_)
    throw Error(Errc::kFormat, "frame of " + std::to_string(len) + " bytes exceeds the limit of " +
                                   std::to_string(max_frame_) + " bytes");
  if (len == 0) throw Error(Errc::kFormat, "empty frame (a frame must carry one CBOR message)");
  if (avail - kFrameHeaderSize < len) {
    if (len >= kDirectFrom) start_direct(len);
    return std::nullopt;
  }
  last_ = ByteView(buf_.data() + pos_ + kFrameHeaderSize, len);
  pos_ += kFrameHeaderSize + len;  // the bytes stay where they are until the next read_area()
  return last_;
}

std::shared_ptr<const Bytes> FrameDecoder::hold_last() {
  if (last_direct_) {
    last_direct_ = false;
    last_ = {};
    return std::make_shared<const Bytes>(std::move(direct_buf_));
  }
  return std::make_shared<const Bytes>(last_.begin(), last_.end());
}

void FrameDecoder::wipe_consumed() {
  last_ = {};
  secure_wipe(buf_.data(), pos_);
  secure_wipe(buf_.data() + size_, buf_.size() - size_);
}

std::optional<Bytes> FrameDecoder::next() {
  auto view = next_view();
  if (!view) return std::nullopt;
  if (last_direct_) {  // received in place: handed over
    last_direct_ = false;
    last_ = {};
    return std::move(direct_buf_);
  }
  return Bytes(view->begin(), view->end());
}

}  // namespace shield_nitro::net
