// Fuzzes the newc cpio reader used by `eif extract --unpack` and the simulator, and the path
// cleaning every unpacked name goes through.
#include <cstddef>
#include <cstdint>
#include <string>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/cpio.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  MemorySource src(ByteView(data, size));
  eif::CpioReader reader(src);
  eif::CpioRecord r;
  try {
    while (reader.next(r)) {
      if (r.data_offset + r.size > size) __builtin_trap();
      std::string clean = eif::clean_member_path(r.name);
      if (clean.empty()) continue;
      std::string framed = "/" + clean + "/";
      if (framed.find("/../") != std::string::npos || framed.find("//") != std::string::npos) __builtin_trap();
    }
  } catch (const Error&) {
  }
  return 0;
}
