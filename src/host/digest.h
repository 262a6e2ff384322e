// The sealed files the host agent serves: their SHA-256 for a whole-file pin (computed once per
// file version, so a multi-GB model is hashed at start, not on every request), their header's
// for a header pin (a few KiB read per request), and streaming them to the enclave.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace shield_nitro::host {

struct FileDigest {
  uint64_t size = 0;
  std::string sha256;  // lowercase hex
};

// One path's digest, remembered for the file version (device, inode, size, mtime, ctime) it was
// computed on; a replaced or rewritten file is hashed again.
class DigestCache {
 public:
  explicit DigestCache(std::string path) : path_(std::move(path)) {}
  ~DigestCache() { join(); }
  // The digest of the open file fd (which must be path's). Error(kIo) when it cannot be read.
  FileDigest digest(int fd);
  // Starts hashing path in the background (errors are left for digest() to report).
  void warm();
  // Stops a background hash early and waits for it.
  void join();

 private:
  std::string path_;
  std::mutex mu_;
  bool have_ = false;
  struct stat st_ {};
  FileDigest digest_;
  std::thread warm_;
  std::atomic<bool> cancel_{false};
};

// The regular file fd's size (Error(kIo) naming path when it is not one).
uint64_t file_size(int fd, const std::string& path);
// SHA-256 of the sealed file's prefix at the start of fd (size bytes long): the sealed header and
// the stream header, sealed::Header::prefix_digest_hex, lowercase hex: what a `header_sha256` pin
// is compared with. Reads at most sealed::kMaxPrefixSize bytes. Error(kFormat) when fd does not
// start with a well-formed prefix, kIo when it cannot be read.
std::string header_sha256(int fd, uint64_t size, const std::string& path);

// Sends `size` bytes of file (from offset 0) to the socket; returns how many went out before the
// peer went away or stop_fd became readable. Makes sock non-blocking.
uint64_t send_file(int sock, int file, uint64_t size, int stop_fd);

}  // namespace shield_nitro::host
