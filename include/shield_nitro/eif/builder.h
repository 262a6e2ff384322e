// EifBuilder: writes an EIF exactly as nitro-cli does (gap-free sections in the order
// kernel, cmdline, metadata, ramdisks, signature) and measures it in the same pass.
//
// Inputs are streamed in 1 MiB chunks through a small fixed pool: one thread extends PCR0
// (and snapshots PCR1), another PCR2 and the CRC, while the caller's thread reads and writes.
// Memory stays bounded (a few MiB) whatever the image size.
//   BuildInput in;  in.kernel_path = "bzImage";  in.cmdline = ...;  in.ramdisks = {...};
//   BuildResult r = build_eif(in, "app.eif");   // r.measurements.pcr0 ...
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/format.h"
#include "shield_nitro/eif/pcr.h"

namespace shield_nitro::eif {

// A ramdisk section: a prebuilt file taken as is, or cpio entries encoded while writing.
struct RamdiskInput {
  std::string path;
  std::vector<CpioEntry> entries;
};

struct SigningInput {
  Bytes certificate_pem;
  Bytes key_pem;
};

struct BuildInput {
  std::string kernel_path;
  Bytes cmdline;                       // the section bytes (already trimmed)
  std::vector<RamdiskInput> ramdisks;  // the first is the bootstrap ramdisk
  Arch arch = host_arch();
  Bytes metadata;  // the section bytes (see metadata.h)
  std::optional<SigningInput> signing;
  bool progress = true;  // a progress bar on a terminal
};

struct BuildResult {
  Measurements measurements;
  uint64_t file_size = 0;
  uint32_t crc32 = 0;
};

// Writes out_path atomically (nothing is left there on failure). Signing failures are fatal:
// an unsigned image is never produced when a signature was asked for (nitro-cli #756).
BuildResult build_eif(const BuildInput& input, const std::string& out_path);

}  // namespace shield_nitro::eif
