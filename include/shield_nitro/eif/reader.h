// EifReader: validates an EIF against its own section table and streams its sections.
//
// The hypervisor follows the offset table, while nitro-cli's reader walks sections back to back;
// a file on which they disagree is refused, so what we measure is what boots:
//   auto r = EifReader::open("app.eif");        // throws Error(kFormat) on a malformed file
//   Measurements m = r.scan().measurements;      // PCR0/1/2 (and PCR8 when signed)
// Nothing is loaded whole: kernel and ramdisks are read in chunks with pread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shield_nitro/eif/format.h"
#include "shield_nitro/eif/pcr.h"
#include "shield_nitro/core/byte_io.h"

namespace shield_nitro::eif {

struct SectionInfo {
  SectionType type = SectionType::kInvalid;
  uint64_t header_offset = 0;  // where the 12-byte section header starts
  uint64_t data_offset = 0;
  uint64_t size = 0;  // data bytes
};

// One pass over the file: measurements and the recomputed CRC together.
struct ScanResult {
  Measurements measurements;
  uint32_t computed_crc = 0;
  bool crc_ok = false;
};

class EifReader {
 public:
  // Validates header and section table; throws Error(kFormat) or Error(kUnsupported).
  explicit EifReader(std::shared_ptr<const RandomAccessSource> source);
  static EifReader open(const std::string& path);

  // The validated header and section table, and accessors for the sections boot uses;
  // kernel() and cmdline_section() throw Error(kFormat) when the image lacks them (the
  // constructor already refused such images), the optional ones are nullptr when absent.
  const Header& header() const { return header_; }
  Arch arch() const { return (header_.flags & 1) ? Arch::kAarch64 : Arch::kX86_64; }
  const std::vector<SectionInfo>& sections() const { return sections_; }
  const SectionInfo& kernel() const;
  const SectionInfo& cmdline_section() const;
  std::vector<SectionInfo> ramdisks() const;
  const SectionInfo* metadata_section() const;
  const SectionInfo* signature_section() const;
  bool is_signed() const { return signature_section() != nullptr; }

  // Small sections read whole (bounded by their caps): cmdline, metadata, signature.
  Bytes cmdline() const;
  std::optional<Bytes> metadata() const;
  std::optional<Bytes> signature() const;
  // Streams a section's data to fn in chunks.
  void stream_section(const SectionInfo& s, const std::function<void(ByteView)>& fn) const;

  // Reads every section once; PCR8 comes from the first certificate in the signature section.
  ScanResult scan() const;

  // The underlying input (shared, lives as long as the reader).
  const RandomAccessSource& source() const { return *source_; }

 private:
  void validate_table();
  std::shared_ptr<const RandomAccessSource> source_;
  Header header_;
  std::vector<SectionInfo> sections_;
};

// The measurements of the EIF at path, for the KMS policy generator and the simulator.
// Throws if the file is malformed; a CRC mismatch does not change the PCRs and is not checked.
Measurements measure(const std::string& path);

}  // namespace shield_nitro::eif
