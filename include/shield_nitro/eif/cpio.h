// newc cpio, byte for byte as linuxkit's gocpio writes initramfs images (spec/eif.md §6.5),
// and a bounded reader that unpacks one without ever writing outside the target folder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "shield_nitro/eif/fs_entry.h"
#include "shield_nitro/core/byte_io.h"

namespace shield_nitro::eif {

struct CpioEntry {
  std::string name;
  uint32_t mode = 0;  // file type bits | permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime = 0;
  uint64_t size = 0;
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;
  DataRef data;  // regular files; symlinks carry their target inline
};

inline constexpr int64_t kLinuxkitMtime = 1492533000;  // 2017-04-18T16:30:00Z
inline constexpr uint32_t kModeDir = 0040000, kModeReg = 0100000, kModeLink = 0120000, kModeChr = 0020000,
                          kModeBlk = 0060000, kModeFifo = 0010000, kModeTypeMask = 0170000;

// Exact archive size: headers, names, data, padding, trailer and the final 512 alignment.
uint64_t cpio_size(const std::vector<CpioEntry>& entries);
// Writes the archive to sink in pieces (header and name bytes, then each file's data).
void write_cpio(const std::vector<CpioEntry>& entries, const std::function<void(ByteView)>& sink);
// The same, handing each file body to data_sink instead, so a caller can read it straight
// into its own buffers (the EIF builder does, saving a copy).
using DataSink = std::function<void(const DataRef& data, uint64_t size)>;
void write_cpio(const std::vector<CpioEntry>& entries, const std::function<void(ByteView)>& sink, const DataSink& data_sink);

struct CpioRecord {
  std::string name;
  uint32_t mode = 0, uid = 0, gid = 0, nlink = 0;
  uint64_t mtime = 0, size = 0;
  uint32_t rdev_major = 0, rdev_minor = 0;
  uint64_t data_offset = 0;
};

// Reads newc records ("070701"/"070702") up to TRAILER!!!; throws Error(kFormat) on anything
// malformed or truncated.
class CpioReader {
 public:
  explicit CpioReader(const RandomAccessSource& src) : src_(src) {}
  bool next(CpioRecord& out);  // false after the trailer

 private:
  const RandomAccessSource& src_;
  uint64_t pos_ = 0;
  bool done_ = false;
};

// Expands the archive into dir (created if missing). Every path is resolved component by
// component with O_NOFOLLOW, so neither "../" nor a symlink planted by an earlier entry can
// redirect a write outside dir. Later duplicates replace earlier files, like the kernel's
// initramfs unpacker. Device nodes need root; without it they are skipped with a warning.
void unpack_cpio(const RandomAccessSource& src, const std::string& dir);

}  // namespace shield_nitro::eif
