// The sealed files the host agent serves: their SHA-256 (computed once per file version, so a
// multi-GB model is hashed at start, not on every request) and streaming them to the enclave.
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

// Sends `size` bytes of file (from offset 0) to the socket; returns how many went out before the
// peer went away or stop_fd became readable. Makes sock non-blocking.
uint64_t send_file(int sock, int file, uint64_t size, int stop_fd);

}  // namespace shield_nitro::host
