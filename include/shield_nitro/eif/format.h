// EIF v4 on-disk layout (spec/eif.md §1): a 548-byte header with a table of up to 32
// sections, each a 12-byte section header followed by its data. Every integer is big-endian.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::eif {

inline constexpr uint32_t kMagic = 0x2e656966;  // ".eif"
inline constexpr uint16_t kVersion = 4;
inline constexpr size_t kHeaderSize = 548;
inline constexpr size_t kCrcOffset = 544;  // the CRC covers the header bytes before it
inline constexpr size_t kSectionHeaderSize = 12;
inline constexpr size_t kMaxSections = 32;
inline constexpr uint64_t kDefaultMem = 1073741824;
inline constexpr uint64_t kDefaultCpus = 2;

enum class SectionType : uint16_t { kInvalid = 0, kKernel = 1, kCmdline = 2, kRamdisk = 3, kSignature = 4, kMetadata = 5 };
// "kernel", "cmdline", "ramdisk", "signature", "metadata" or "invalid".
const char* section_type_name(SectionType t);

// Bit 0 of the header flags: the CPU architecture the image boots on.
enum class Arch { kX86_64, kAarch64 };
Arch parse_arch(const std::string& name);  // "x86_64" | "aarch64"; throws kUsage
const char* arch_name(Arch a);
Arch host_arch();

struct Header {
  uint16_t version = kVersion;
  uint16_t flags = 0;
  uint64_t default_mem = kDefaultMem;
  uint64_t default_cpus = kDefaultCpus;
  uint16_t num_sections = 0;
  std::array<uint64_t, kMaxSections> section_offsets{};
  std::array<uint64_t, kMaxSections> section_sizes{};
  uint32_t unused = 0;
  uint32_t crc32 = 0;
};

// Exactly kHeaderSize bytes.
Bytes serialize_header(const Header& h);
// Checks magic and size only; the reader validates the rest against the file.
Header parse_header(ByteView bytes);

// The 12-byte section header: type, flags (0), data size.
Bytes serialize_section_header(SectionType type, uint64_t size);

}  // namespace shield_nitro::eif
