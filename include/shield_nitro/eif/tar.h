// A bounded tar reader (ustar, pax and GNU long names) over a ByteSource: it reports headers
// and data offsets and never reads file bodies, so callers reference them in place.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/eif/fs_entry.h"
#include "shield_nitro/eif/source.h"

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

class TarReader {
 public:
  explicit TarReader(const ByteSource& src) : src_(src) {}
  // Next member, or false at the end-of-archive marker or end of input. Throws Error(kFormat)
  // on a bad checksum, a truncated member or an unknown extension.
  bool next(TarHeader& out);

 private:
  const ByteSource& src_;
  uint64_t pos_ = 0;
};

// A tar member as an FsEntry (name cleaned, body referenced in src). Throws Error(kFormat) for
// unsafe names and unsupported types (sockets, sparse files).
FsEntry tar_to_entry(const TarHeader& h, const std::shared_ptr<const ByteSource>& src);

// Every member of a flat filesystem tar (`docker export`), in stream order. Duplicate paths are
// refused. A gzip input is first inflated into scratch_dir.
std::vector<FsEntry> read_export_tar(const std::string& path, const std::string& scratch_dir);
std::vector<FsEntry> read_export_tar(std::shared_ptr<const ByteSource> src);

// Inflates a gzip stream into a new file in scratch_dir (removed with that folder) and returns
// it as a source; returns src unchanged when it is not gzip.
std::shared_ptr<const ByteSource> maybe_gunzip(std::shared_ptr<const ByteSource> src, const std::string& scratch_dir);

}  // namespace shield_nitro::eif
