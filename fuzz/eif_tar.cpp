// Fuzzes the tar reader and what consumes it: the export-stream flattening, the docker save /
// OCI image reader (layers, whiteouts, manifests) and the linuxkit cpio transform.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/image.h"
#include "shield_nitro/eif/ramdisk.h"
#include "shield_nitro/eif/tar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  using namespace shield_nitro::eif;
  auto src = std::make_shared<MemorySource>(ByteView(data, size));
  uint64_t total = 0;
  auto sink = [&](ByteView b) { total += b.size(); };
  try {
    auto stream = read_export_tar(src);
    auto entries = customer_ramdisk(stream, {"/bin/sh"}, {"A=1"});
    write_cpio(entries, sink);
    if (total != cpio_size(entries)) __builtin_trap();
  } catch (const Error&) {
  }
  try {
    Image img = load_image_tar(src, Arch::kX86_64, "");
    write_cpio(customer_ramdisk(img.export_stream, {"/x"}, {}), sink);
  } catch (const Error&) {
  }
  return 0;
}
