// Fuzzes the EIF reader: table validation, the measuring scan, the signature section and
// describe (metadata JSON, certificate) on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/describe.h"
#include "shield_nitro/eif/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  try {
    eif::EifReader reader(std::make_shared<MemorySource>(ByteView(data, size)));
    eif::describe_json(reader, eif::HashLabel::kCurrent);
  } catch (const Error&) {
  }
  return 0;
}
