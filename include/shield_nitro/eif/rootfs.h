// Minimal root filesystems for a program: the binary, the shared libraries its ELF dynamic
// section names (recursively) and the ELF interpreter, so a C++ enclave app is packaged
// without a base image.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shield_nitro/core/byte_io.h"

namespace shield_nitro::eif {

struct ElfInfo {
  uint16_t machine = 0;      // 62 x86_64, 183 aarch64
  std::string interpreter;   // PT_INTERP, empty for static binaries
  std::vector<std::string> needed;   // DT_NEEDED, in order
  std::vector<std::string> runpath;  // DT_RUNPATH, else DT_RPATH, split on ':'
};

// Parses an ELF64 little-endian file; throws Error(kFormat) / Error(kUnsupported).
ElfInfo parse_elf(const RandomAccessSource& src);

// (source path on this host, absolute destination in the rootfs) for the binary and every
// library it needs, found in DT_RUNPATH/DT_RPATH ($ORIGIN expanded) and then the standard
// folders for its machine. Throws Error(kNotFound) naming a library that cannot be found.
std::vector<std::pair<std::string, std::string>> binary_closure(const std::string& binary, const std::string& dest);

// The bytes of an ELF program as packed into an image: `objcopy --strip-all` (binutils) drops
// its debug sections and static symbol table (.dynsym stays: it runs the same). The same input
// gives the same bytes. Throws kEnvironment when objcopy cannot run, kFormat when it refuses.
Bytes stripped_copy(const std::string& binary);

// Writes the rootfs into out_dir (which must not exist or be empty), all at once: it is built
// beside it and renamed into place, so a failure leaves nothing. extra holds SRC:DST pairs.
// The binary is packed stripped (stripped_copy); its libraries and the extra files verbatim.
void make_rootfs(const std::string& binary, const std::string& dest,
                 const std::vector<std::pair<std::string, std::string>>& extra, const std::string& out_dir);

}  // namespace shield_nitro::eif
