#include "shield_nitro/eif/format.h"

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"

namespace shield_nitro::eif {

const char* section_type_name(SectionType t) {
  switch (t) {
    case SectionType::kKernel: return "kernel";
    case SectionType::kCmdline: return "cmdline";
    case SectionType::kRamdisk: return "ramdisk";
    case SectionType::kSignature: return "signature";
    case SectionType::kMetadata: return "metadata";
    default: return "invalid";
  }
}

Arch parse_arch(const std::string& name) {
  if (name == "x86_64") return Arch::kX86_64;
  if (name == "aarch64") return Arch::kAarch64;
  throw Error(Errc::kUsage, "unknown architecture '" + name + "' (use x86_64 or aarch64)");
}

const char* arch_name(Arch a) { return a == Arch::kAarch64 ? "aarch64" : "x86_64"; }

Arch host_arch() {
#if defined(__aarch64__)
  return Arch::kAarch64;
#else
  return Arch::kX86_64;
#endif
}

Bytes serialize_header(const Header& h) {
  Bytes out;
  out.reserve(kHeaderSize);
  put_u32be(out, kMagic);
  put_u16be(out, h.version);
  put_u16be(out, h.flags);
  put_u64be(out, h.default_mem);
  put_u64be(out, h.default_cpus);
  put_u16be(out, 0);
  put_u16be(out, h.num_sections);
  for (uint64_t o : h.section_offsets) put_u64be(out, o);
  for (uint64_t s : h.section_sizes) put_u64be(out, s);
  put_u32be(out, h.unused);
  put_u32be(out, h.crc32);
  return out;
}

Header parse_header(ByteView bytes) {
  ByteReader r(bytes);
  uint32_t magic = 0;
  uint16_t reserved = 0;
  Header h;
  if (!r.u32be(magic) || magic != kMagic) throw Error(Errc::kFormat, "not an EIF: bad magic (expected '.eif')");
  if (!r.u16be(h.version) || !r.u16be(h.flags) || !r.u64be(h.default_mem) || !r.u64be(h.default_cpus) ||
      !r.u16be(reserved) || !r.u16be(h.num_sections))
    throw Error(Errc::kFormat, "EIF header truncated");
  for (auto& o : h.section_offsets)
    if (!r.u64be(o)) throw Error(Errc::kFormat, "EIF header truncated");
  for (auto& s : h.section_sizes)
    if (!r.u64be(s)) throw Error(Errc::kFormat, "EIF header truncated");
  if (!r.u32be(h.unused) || !r.u32be(h.crc32)) throw Error(Errc::kFormat, "EIF header truncated");
  return h;
}

Bytes serialize_section_header(SectionType type, uint64_t size) {
  Bytes out;
  put_u16be(out, static_cast<uint16_t>(type));
  put_u16be(out, 0);
  put_u64be(out, size);
  return out;
}

}  // namespace shield_nitro::eif
