// A bounded tar reader (ustar, pax and GNU long names) over a RandomAccessSource: it reports headers
// and data offsets and never reads file bodies, so callers reference them in place.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/eif/fs_entry.h"
#include "shield_nitro/core/byte_io.h"

namespace shield_nitro::eif {

struct TarHeader {
  std::string name;  // as stored (may end in "/")
  char type = '0';   // '0' file, '1' hard link, '2' symlink, '3' chr, '4' blk, '5' dir, '6' fifo
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0;
  uint64_t size = 0;
  std::string linkname;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t data_offset = 0;
};

// Walks the members of the tar in src (which must outlive the reader) in order.
class TarReader {
 public:
  explicit TarReader(const RandomAccessSource& src) : src_(src) {}
  // Next member, or false at the end-of-archive marker or end of input. Throws Error(kFormat)
  // on a bad checksum, a truncated member or an unknown extension.
  bool next(TarHeader& out);

 private:
  const RandomAccessSource& src_;
  uint64_t pos_ = 0;
};

// A tar member as an FsEntry (name cleaned, body referenced in src). Throws Error(kFormat) for
// unsafe names and unsupported types (sockets, sparse files).
FsEntry tar_to_entry(const TarHeader& h, const std::shared_ptr<const RandomAccessSource>& src);

// What one gzip'd layer or filesystem tar may inflate to unless the caller says otherwise
// (`eif build --max-layer-mib`): a 2 MiB gzip bomb expands to 2 GiB.
inline constexpr uint64_t kDefaultMaxInflated = uint64_t{1} << 30;

// Every member of a flat filesystem tar (`docker export`), in stream order. Duplicate paths are
// refused. A gzip input is first inflated into scratch_dir (at most max_inflated bytes).
std::vector<FsEntry> read_export_tar(const std::string& path, const std::string& scratch_dir,
                                     uint64_t max_inflated = kDefaultMaxInflated);
std::vector<FsEntry> read_export_tar(std::shared_ptr<const RandomAccessSource> src);

// Inflates a gzip stream into an unnamed scratch file in scratch_dir ("" = $TMPDIR; the CLI
// gives the output's folder) and returns it as a source; returns src unchanged when it is not
// gzip. Past max_inflated bytes it stops and throws Error(kPolicy), leaving nothing behind.
std::shared_ptr<const RandomAccessSource> maybe_gunzip(std::shared_ptr<const RandomAccessSource> src, const std::string& scratch_dir,
                                               uint64_t max_inflated = kDefaultMaxInflated);

}  // namespace shield_nitro::eif
