// ByteReader: a cursor over untrusted bytes that cannot overrun (after BoringSSL's CBS).
//
// Every getter returns false, and consumes nothing, when fewer bytes remain than asked.
//   ByteReader r(buf);
//   uint8_t version; ByteView nonce;
//   if (!r.u8(version) || !r.take(12, nonce)) throw Error(Errc::kFormat, "message truncated");
#pragma once

#include <cstddef>
#include <cstdint>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro {

class ByteReader {
 public:
  // Reads data, which must outlive the reader and every view it hands out.
  explicit ByteReader(ByteView data) : data_(data) {}

  // Position: bytes left, bytes consumed, whether none are left, and a view of what is left.
  size_t remaining() const { return data_.size() - pos_; }
  size_t offset() const { return pos_; }
  bool empty() const { return remaining() == 0; }
  ByteView rest() const { return data_.subspan(pos_); }

  // Fixed-size integers, big- or little-endian; false (nothing consumed) when too few bytes.
  bool u8(uint8_t& out);
  bool u16be(uint16_t& out);
  bool u32be(uint32_t& out);
  bool u64be(uint64_t& out);
  bool u16le(uint16_t& out);
  bool u32le(uint32_t& out);
  bool u64le(uint64_t& out);
  // A view of the next n bytes (valid while the underlying buffer lives).
  bool take(size_t n, ByteView& out);
  // Consumes n bytes; false (nothing consumed) when fewer remain.
  bool skip(size_t n);
  // The next byte without consuming it; false at the end.
  bool peek_u8(uint8_t& out) const;

 private:
  ByteView data_;
  size_t pos_ = 0;
};

}  // namespace shield_nitro
