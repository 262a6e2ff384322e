// FsEntry: one file of a root filesystem as a `docker export` stream lists it, with its bytes
// referenced (not copied) so a multi-GiB image is described in a few MiB of memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/byte_io.h"

namespace shield_nitro::eif {

enum class FileType { kRegular, kDirectory, kSymlink, kHardlink, kCharDevice, kBlockDevice, kFifo };

// Where a regular file's bytes live: inline, a range of an open source, or a file by path
// (opened only while it is streamed, so a large folder never holds many descriptors).
struct DataRef {
  Bytes inline_data;
  std::shared_ptr<const RandomAccessSource> source;
  std::string path;
  uint64_t offset = 0;
};

struct FsEntry {
  std::string name;  // relative, clean: no leading "/" or "./", no "..", no trailing "/"
  FileType type = FileType::kRegular;
  uint32_t perm = 0644;  // mode & 07777
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime = 0;
  uint64_t size = 0;  // regular files only
  std::string link;   // symlink target, or the hard link's target path
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  DataRef data;
};

// Streams size bytes of ref to fn in chunks (a file by path is opened for the call).
void stream_data(const DataRef& ref, uint64_t size, const std::function<void(ByteView)>& fn);

// Cleans an archive member name; throws Error(kFormat) for absolute paths, "..", NUL or empty.
// "./a//b/" becomes "a/b"; "." and "./" become "" (the root, which callers skip).
std::string clean_member_path(const std::string& name);

}  // namespace shield_nitro::eif
