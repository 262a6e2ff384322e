// File helpers. Outputs are written atomically: an anonymous file in the destination's folder,
// fsync, linked into place, fsync of the folder. A failed or interrupted write leaves nothing.
#pragma once

#include <cstdio>
#include <initializer_list>
#include <memory>
#include <string>

#include "shield_nitro/core/byte_io.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro {

// "-" means standard input.  Throws Error(kIo) naming the path and errno text.
Bytes read_file(const std::string& path);
std::string read_text_file(const std::string& path);

// Writes all of data to path atomically with the given mode. "-" means standard output.
void write_file_atomic(const std::string& path, ByteView data, unsigned mode = 0644);

// Streaming atomic writer: write() many times, then commit(). No name exists at the path (or
// beside it) until commit(): the data goes to an anonymous file (O_TMPFILE) that commit() links
// into place, so an exception, a signal, SIGKILL or a power cut leaves nothing behind. On
// filesystems without O_TMPFILE it falls back to a hidden named temporary beside the path, which
// the destructor and the interrupt handler (exit_cleanly_on_interrupt) remove. If destroyed without
// commit(), the path is untouched.
class AtomicFileWriter final : public Sink {
 public:
  enum class Temp { kAnonymous, kNamed };  // kNamed forces the fallback (tests)
  explicit AtomicFileWriter(const std::string& path, unsigned mode = 0644, Temp temp = Temp::kAnonymous);
  ~AtomicFileWriter() override;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(ByteView data) override;
  // Writes at an absolute offset (headers known only at the end). Not for standard output.
  void write_at(uint64_t offset, ByteView data);
  // fsync, link into place (replacing what was there), fsync of the folder. Throws kIo.
  void commit();
  // Commits several outputs as a unit: if one fails, those already committed are removed, so a
  // command that promises two files never leaves one of them.
  static void commit_all(std::initializer_list<AtomicFileWriter*> writers);
  const std::string& path() const { return path_; }
  bool anonymous() const { return tmp_.empty() && !to_stdout_; }

 private:
  void link_into_place();
  std::string path_;
  std::string tmp_;  // the named fallback; empty for an anonymous file
  UniqueFd owned_;   // empty for standard output
  int fd_ = -1;
  int registry_slot_ = -1;
  bool to_stdout_ = false;
  bool committed_ = false;
};

// Installs SIGINT/SIGTERM handlers for a command that writes files: they remove unfinished named
// temporaries, print one line ("<what> interrupted by SIGINT; no output was written") and exit
// with 128 + the signal (130, 143). Servers that sigwait() block these signals and are unaffected.
void exit_cleanly_on_interrupt(const std::string& what);

// Sequential reader over a file or "-" (stdin) that fills caller buffers; a pipe works too.
class FileReader final : public Source {
 public:
  explicit FileReader(const std::string& path);
  ~FileReader() override;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  // Reads up to n bytes; returns how many (0 at end of file). Retries short reads.
  size_t read(uint8_t* buf, size_t n) override;
  // Reads exactly n bytes or returns false at a clean end of file before any byte;
  // throws Error(kFormat) if the file ends mid-way.
  bool read_exact(uint8_t* buf, size_t n);
  // Size if a regular file, else -1.
  int64_t size() const { return size_; }
  int fd() const { return fd_; }

 private:
  std::string path_;
  UniqueFd owned_;  // empty for standard input
  int fd_ = -1;
  int64_t size_ = -1;
};

// Whether path names an existing file system entry (stat succeeds); never throws.
bool file_exists(const std::string& path);
// mkdir -p with the given mode on the created folders.
void make_dirs(const std::string& path, unsigned mode = 0755);

}  // namespace shield_nitro
