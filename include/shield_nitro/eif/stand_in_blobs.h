// Stand-ins for nitro-cli's kernel and bootstrap blobs, for machines without the
// aws-nitro-enclaves-cli package (which installs the real ones in kNitroBlobsDir). The simulator
// measures an EIF's kernel and bootstrap ramdisk but never runs them, so an EIF built from these
// runs there; its PCR0 and PCR1 differ from a build with the real blobs (PCR2, the app, does not).
// Every file says it is a stand-in, and the same arch always gives the same bytes.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/eif/format.h"

namespace shield_nitro::eif {

// Where the aws-nitro-enclaves-cli package installs nitro-cli's blobs.
inline constexpr const char* kNitroBlobsDir = "/usr/share/nitro_enclaves/blobs";

// The kernel's file name in a blobs folder: bzImage (x86_64) or Image (aarch64).
const char* kernel_blob_name(Arch arch);

struct BlobFile {
  std::string name;  // the file name in a blobs folder
  Bytes content;
};

// The kernel, its .config (for the metadata), cmdline, init and nsm.ko, in that order.
std::array<BlobFile, 5> stand_in_blobs(Arch arch);

// Writes stand_in_blobs(arch) into dir (created if missing), all or none. A file already there
// with other content is never replaced (it may be a real blob): Error(kUsage) naming it, and
// nothing is written. Returns the paths, in stand_in_blobs() order.
std::vector<std::string> write_stand_in_blobs(const std::string& dir, Arch arch);

}  // namespace shield_nitro::eif
