// OutputFile: like core's AtomicFileWriter (temporary file beside the target, fsync, rename),
// plus pwrite, because the EIF header (section table and CRC) is only known at the end.
#pragma once

#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::eif {

class OutputFile {
 public:
  explicit OutputFile(const std::string& path, unsigned mode = 0644);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  void write(ByteView data);
  void write_at(uint64_t offset, ByteView data);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace shield_nitro::eif
