// File helpers. Outputs are written atomically: a temporary file in the destination's
// folder, fsync, rename, fsync of the folder. A failed write leaves nothing at the path.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro {

// "-" means standard input.  Throws Error(kIo) naming the path and errno text.
Bytes read_file(const std::string& path);
std::string read_text_file(const std::string& path);

// Writes all of data to path atomically with the given mode. "-" means standard output.
void write_file_atomic(const std::string& path, ByteView data, unsigned mode = 0644);

// Streaming atomic writer: write() many times, then commit(). If destroyed without commit()
// (an exception unwound past it), the temporary file is removed and the path is untouched.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path, unsigned mode = 0644);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(ByteView data);
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool to_stdout_ = false;
  bool committed_ = false;
};

// Sequential reader over a file or "-" (stdin) that fills caller buffers.
class FileReader {
 public:
  explicit FileReader(const std::string& path);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  // Reads up to n bytes; returns how many (0 at end of file). Retries short reads.
  size_t read(uint8_t* buf, size_t n);
  // Reads exactly n bytes or returns false at a clean end of file before any byte;
  // throws Error(kFormat) if the file ends mid-way.
  bool read_exact(uint8_t* buf, size_t n);
  // Size if a regular file, else -1.
  int64_t size() const { return size_; }
  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool owns_ = false;
  int64_t size_ = -1;
};

bool file_exists(const std::string& path);
// mkdir -p with the given mode on the created folders.
void make_dirs(const std::string& path, unsigned mode = 0755);

}  // namespace shield_nitro
