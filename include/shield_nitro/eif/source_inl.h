// Template body of for_each_chunk (see source.h).
#pragma once

#include <algorithm>
#include <vector>

namespace shield_nitro::eif {

template <typename Fn>
void for_each_chunk(const ByteSource& src, uint64_t offset, uint64_t length, Fn&& fn, size_t chunk) {
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(chunk, std::max<uint64_t>(length, 1))));
  while (length > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, buf.size()));
    src.read_at(offset, buf.data(), n);
    fn(ByteView(buf.data(), n));
    offset += n;
    length -= n;
  }
}

}  // namespace shield_nitro::eif
