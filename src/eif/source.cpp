#include "shield_nitro/eif/source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shield_nitro/core/error.h"

namespace shield_nitro::eif {

Bytes ByteSource::read_bytes(uint64_t offset, size_t n) const {
  Bytes out(n);
  if (n) read_at(offset, out.data(), n);
  return out;
}

FileSource::FileSource(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(Errc::kIo, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw Error(Errc::kIo, "cannot read " + path + ": not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSource::read_at(uint64_t offset, uint8_t* out, size_t n) const {
  if (!in_bounds(offset, n)) throw Error(Errc::kFormat, path_ + " is truncated");
  while (n > 0) {
    ssize_t r = ::pread(fd_, out, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(Errc::kIo, "cannot read " + path_ + ": " + std::strerror(errno));
    if (r == 0) throw Error(Errc::kFormat, path_ + " is truncated (it shrank while being read)");
    out += r;
    offset += static_cast<uint64_t>(r);
    n -= static_cast<size_t>(r);
  }
}

void MemorySource::read_at(uint64_t offset, uint8_t* out, size_t n) const {
  if (!in_bounds(offset, n)) throw Error(Errc::kFormat, "input is truncated");
  if (n) std::memcpy(out, data_.data() + offset, n);
}

SliceSource::SliceSource(std::shared_ptr<const ByteSource> base, uint64_t offset, uint64_t length)
    : base_(std::move(base)), offset_(offset), length_(length) {
  if (!base_->in_bounds(offset, length)) throw Error(Errc::kFormat, base_->name() + ": member passes the end of the file");
}

void SliceSource::read_at(uint64_t offset, uint8_t* out, size_t n) const {
  if (!in_bounds(offset, n)) throw Error(Errc::kFormat, base_->name() + ": member is truncated");
  base_->read_at(offset_ + offset, out, n);
}

}  // namespace shield_nitro::eif
