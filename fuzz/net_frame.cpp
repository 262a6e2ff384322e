// Frame + message decoding: arbitrary bytes as a stream of frames, each decoded both as a
// request and as a response. Nothing may crash; a decoded message must re-encode to bytes that
// decode and re-encode identically; next_view() sees the frames next() does, and a request
// decoded in place (decode_request_borrowed, as the server does) encodes like the copy.
#include <cstddef>
#include <cstdint>
#include <algorithm>

#include "shield_nitro/core/error.h"
#include "shield_nitro/net/frame.h"
#include "shield_nitro/net/message.h"

using namespace shield_nitro;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  net::FrameDecoder dec(1 << 16), viewer(1 << 16);
  // Feed in uneven pieces so partial headers and payloads are exercised.
  size_t off = 0, step = 1;
  try {
    while (off < size) {
      size_t n = std::min(step, size - off);
      dec.feed({data + off, n});
      viewer.feed({data + off, n});
      off += n;
      step = step * 3 % 17 + 1;
      while (auto frame = dec.next()) {
        auto view = viewer.next_view();
        if (!view || !std::equal(view->begin(), view->end(), frame->begin(), frame->end())) __builtin_trap();
        bool copied = false;
        Bytes copy_enc;
        try {
          copy_enc = net::encode_request(net::decode_request(*frame));
          copied = true;
        } catch (const Error&) {
        }
        try {
          Bytes in_place = net::encode_request(net::decode_request_borrowed(*view));
          if (!copied || in_place != copy_enc) __builtin_trap();
        } catch (const Error&) {
          if (copied) __builtin_trap();
        }
        try {
          net::Request r = net::decode_request(*frame);
          Bytes once = net::encode_request(r);
          if (net::encode_request(net::decode_request(once)) != once) __builtin_trap();
        } catch (const Error&) {
        }
        try {
          net::Response r = net::decode_response(*frame);
          Bytes once = net::encode_response(r);
          if (net::encode_response(net::decode_response(once)) != once) __builtin_trap();
        } catch (const Error&) {
        }
      }
    }
  } catch (const Error&) {  // oversize or empty frame: the stream ends here
  }
  return 0;
}
