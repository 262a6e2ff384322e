// Fuzzes the strict CBOR decoder under both limit profiles, and checks that whatever
// decodes re-encodes to bytes that decode and re-encode identically, and that the borrowing
// decoder (decode_borrowed) accepts and refuses exactly the same inputs, with the same values.
#include <cstddef>
#include <cstdint>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  for (const cbor::Limits& limits : {cbor::Limits(), cbor::Limits::strict()}) {
    bool copied = false, borrowed = false;
    cbor::Value v, b;
    try {
      v = cbor::decode({data, size}, limits);
      copied = true;
      Bytes once = cbor::encode(v);
      if (cbor::encode(cbor::decode(once)) != once) __builtin_trap();
    } catch (const Error&) {
    }
    try {
      b = cbor::decode_borrowed({data, size}, nullptr, limits);
      borrowed = true;
    } catch (const Error&) {
    }
    // Encodings, not ==: a NaN is not equal to itself.
    if (copied != borrowed || (copied && cbor::encode(v) != cbor::encode(b))) __builtin_trap();
  }
  return 0;
}
