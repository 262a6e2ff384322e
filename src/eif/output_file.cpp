#include "output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/random.h"

namespace shield_nitro::eif {
namespace {
[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw Error(Errc::kIo, what + " " + path + ": " + std::strerror(errno));
}
}  // namespace

OutputFile::OutputFile(const std::string& path, unsigned mode) : path_(path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  tmp_ = dir + "/." + path.substr(slash == std::string::npos ? 0 : slash + 1) + ".tmp-" + hex_encode(os_random().bytes(6));
  fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd_ < 0) fail("cannot create", path);
  ::fchmod(fd_, mode);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void OutputFile::write(ByteView data) {
  const uint8_t* p = data.data();
  size_t n = data.size();
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("cannot write", path_);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void OutputFile::write_at(uint64_t offset, ByteView data) {
  if (::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset)) != static_cast<ssize_t>(data.size()))
    fail("cannot write", path_);
}

void OutputFile::commit() {
  if (::fsync(fd_) != 0) fail("cannot fsync", path_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("cannot close", path_);
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename into", path_);
  committed_ = true;
}

}  // namespace shield_nitro::eif
