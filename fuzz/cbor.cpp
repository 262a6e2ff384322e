// Fuzzes the strict CBOR decoder under both limit profiles, and checks that whatever
// decodes re-encodes to bytes that decode and re-encode identically.
#include <cstddef>
#include <cstdint>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  for (const cbor::Limits& limits : {cbor::Limits(), cbor::Limits::strict()}) {
    try {
      cbor::Value v = cbor::decode({data, size}, limits);
      Bytes once = cbor::encode(v);
      if (cbor::encode(cbor::decode(once)) != once) __builtin_trap();
    } catch (const Error&) {
    }
  }
  return 0;
}
