#include "shield_nitro/eif/reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "fanout.h"

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/eif/signature.h"

namespace shield_nitro::eif {
namespace {

constexpr uint64_t kMaxCmdline = 64 * 1024;
constexpr uint64_t kMaxMetadata = 1 << 20;

[[noreturn]] void bad(const std::string& what) { throw Error(Errc::kFormat, "malformed EIF: " + what); }

std::string idx(size_t i) { return "section " + std::to_string(i); }

SectionInfo read_section_header(const RandomAccessSource& src, const Header& h, size_t i) {
  uint64_t off = h.section_offsets[i], size = h.section_sizes[i];
  if (off < kHeaderSize) bad(idx(i) + " offset " + std::to_string(off) + " lies inside the EIF header");
  if (!src.in_bounds(off, kSectionHeaderSize) || !src.in_bounds(off + kSectionHeaderSize, size))
    bad(idx(i) + " (offset " + std::to_string(off) + ", " + std::to_string(size) + " bytes) passes the end of the file (" +
        std::to_string(src.size()) + " bytes)");
  Bytes raw = src.read_bytes(off, kSectionHeaderSize);
  ByteReader r(raw);
  uint16_t type = 0, flags = 0;
  uint64_t header_size = 0;
  r.u16be(type);
  r.u16be(flags);
  r.u64be(header_size);
  if (type == 0 || type > 5) bad(idx(i) + " has invalid type " + std::to_string(type));
  if (header_size != size)
    bad(idx(i) + " header says " + std::to_string(header_size) + " bytes but the table says " + std::to_string(size));
  return {static_cast<SectionType>(type), off, off + kSectionHeaderSize, size};
}

void check_counts(const std::vector<SectionInfo>& s, uint16_t version) {
  size_t kernels = 0, cmdlines = 0, ramdisks = 0, sigs = 0, metas = 0;
  for (const auto& x : s) {
    kernels += x.type == SectionType::kKernel;
    cmdlines += x.type == SectionType::kCmdline;
    ramdisks += x.type == SectionType::kRamdisk;
    sigs += x.type == SectionType::kSignature;
    metas += x.type == SectionType::kMetadata;
  }
  if (s.front().type != SectionType::kKernel) bad("the first section must be the kernel");
  if (kernels != 1 || cmdlines != 1) bad("needs exactly one kernel and one cmdline section");
  if (ramdisks == 0) bad("no ramdisk section");
  if (sigs > 1 || metas > 1) bad("more than one signature or metadata section");
  if (version >= 4 && metas == 0) bad("EIF v4 without the mandatory metadata section");
}

}  // namespace

EifReader::EifReader(std::shared_ptr<const RandomAccessSource> source) : source_(std::move(source)) {
  if (source_->size() < kHeaderSize)
    bad("file is truncated (" + std::to_string(source_->size()) + " bytes, the header alone is 548)");
  header_ = parse_header(source_->read_bytes(0, kHeaderSize));
  if (header_.version < 2 || header_.version > 4)
    throw Error(Errc::kUnsupported, "unsupported EIF version " + std::to_string(header_.version) + " (supported: 2 to 4)");
  validate_table();
}

EifReader EifReader::open(const std::string& path) { return EifReader(std::make_shared<FileSource>(path)); }

void EifReader::validate_table() {
  const Header& h = header_;
  if (h.num_sections < 2 || h.num_sections > kMaxSections)
    bad("num_sections is " + std::to_string(h.num_sections) + " (valid: 2 to 32)");
  for (size_t i = h.num_sections; i < kMaxSections; ++i)
    if (h.section_offsets[i] || h.section_sizes[i])
      bad("section table has entries beyond num_sections (" + std::to_string(h.num_sections) + ")");
  uint64_t expected = kHeaderSize;  // sections are back to back, as nitro-cli's sequential reader needs
  for (size_t i = 0; i < h.num_sections; ++i) {
    SectionInfo s = read_section_header(*source_, h, i);
    if (s.header_offset < expected) bad(idx(i) + " overlaps the previous section");
    if (s.header_offset > expected)
      bad("gap of " + std::to_string(s.header_offset - expected) + " bytes before " + idx(i));
    expected = s.data_offset + s.size;
    sections_.push_back(s);
  }
  if (expected != source_->size())
    bad(std::to_string(source_->size() - expected) + " unexpected bytes after the last section");
  check_counts(sections_, h.version);
  for (const auto& s : sections_) {
    if (s.type == SectionType::kCmdline && s.size > kMaxCmdline) bad("cmdline section larger than 64 KiB");
    if (s.type == SectionType::kMetadata && s.size > kMaxMetadata) bad("metadata section larger than 1 MiB");
    if (s.type == SectionType::kSignature && s.size > kMaxSignatureSection) bad("signature section larger than 32768 bytes");
  }
}

const SectionInfo& EifReader::kernel() const { return sections_.front(); }

const SectionInfo& EifReader::cmdline_section() const {
  for (const auto& s : sections_)
    if (s.type == SectionType::kCmdline) return s;
  bad("no cmdline section");
}

std::vector<SectionInfo> EifReader::ramdisks() const {
  std::vector<SectionInfo> out;
  for (const auto& s : sections_)
    if (s.type == SectionType::kRamdisk) out.push_back(s);
  return out;
}

const SectionInfo* EifReader::metadata_section() const {
  for (const auto& s : sections_)
    if (s.type == SectionType::kMetadata) return &s;
  return nullptr;
}

const SectionInfo* EifReader::signature_section() const {
  for (const auto& s : sections_)
    if (s.type == SectionType::kSignature) return &s;
  return nullptr;
}

Bytes EifReader::cmdline() const {
  const auto& s = cmdline_section();
  return source_->read_bytes(s.data_offset, static_cast<size_t>(s.size));
}

std::optional<Bytes> EifReader::metadata() const {
  const SectionInfo* s = metadata_section();
  if (!s) return std::nullopt;
  return source_->read_bytes(s->data_offset, static_cast<size_t>(s->size));
}

std::optional<Bytes> EifReader::signature() const {
  const SectionInfo* s = signature_section();
  if (!s) return std::nullopt;
  return source_->read_bytes(s->data_offset, static_cast<size_t>(s->size));
}

void EifReader::stream_section(const SectionInfo& s, const std::function<void(ByteView)>& fn) const {
  for_each_chunk(*source_, s.data_offset, s.size, fn);
}

ScanResult EifReader::scan() const {
  // Same split as the builder: one thread extends PCR0 (snapshotting PCR1), another PCR2 and
  // the CRC, while this one reads.
  enum : unsigned { kMeasured = 1, kInPcr2 = 2, kPcr1Mark = 4 };
  Bytes head = source_->read_bytes(0, kCrcOffset);
  uLong crc = crc32(0L, head.data(), static_cast<uInt>(head.size()));
  Sha384 pcr0, pcr1, pcr2;
  {
    ChunkFanOut fan({[&](const Chunk& c) {
                       if (c.flags & kMeasured) pcr0.update(c.view());
                       if (c.flags & kPcr1Mark) pcr1 = pcr0;
                     },
                     [&](const Chunk& c) {
                       if (c.flags & kInPcr2) pcr2.update(c.view());
                       crc = crc32(crc, c.buf.data(), static_cast<uInt>(c.len));
                     }},
                    4, 1 << 20);
    auto send = [&](ByteView b, unsigned flags) {
      Chunk& c = fan.acquire();
      if (!b.empty()) std::memcpy(c.buf.data(), b.data(), b.size());
      c.len = b.size();
      c.flags = flags;
      fan.publish(c);
    };
    size_t ramdisk_index = 0;
    for (const auto& s : sections_) {
      bool measured = s.type == SectionType::kKernel || s.type == SectionType::kCmdline || s.type == SectionType::kRamdisk;
      bool in_pcr2 = s.type == SectionType::kRamdisk && ramdisk_index > 0;
      send(serialize_section_header(s.type, s.size), 0);
      uint64_t off = s.data_offset, left = s.size;
      while (left > 0) {
        Chunk& c = fan.acquire();
        c.len = static_cast<size_t>(std::min<uint64_t>(left, c.buf.size()));
        source_->read_at(off, c.buf.data(), c.len);
        c.flags = (measured ? kMeasured : 0) | (in_pcr2 ? kInPcr2 : 0);
        fan.publish(c);
        off += c.len;
        left -= c.len;
      }
      if (s.type == SectionType::kRamdisk && ramdisk_index++ == 0) send({}, kPcr1Mark);
    }
    fan.finish();
  }
  ScanResult out;
  out.measurements.pcr0 = pcr_extend_from_zero(pcr0.final());
  out.measurements.pcr1 = pcr_extend_from_zero(pcr1.final());
  out.measurements.pcr2 = pcr_extend_from_zero(pcr2.final());
  if (auto sig = signature()) {
    auto entries = decode_signature_section(*sig);
    out.measurements.pcr8 = pcr8_of_certificate(entries.front().certificate_pem);
  }
  out.computed_crc = static_cast<uint32_t>(crc);
  out.crc_ok = out.computed_crc == header_.crc32;
  return out;
}

Measurements measure(const std::string& path) { return EifReader::open(path).scan().measurements; }

}  // namespace shield_nitro::eif
