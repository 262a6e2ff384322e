#include "shield_nitro/core/byte_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <istream>
#include <ostream>

#include "shield_nitro/core/error.h"

namespace shield_nitro {

Bytes RandomAccessSource::read_bytes(uint64_t offset, size_t n) const {
  Bytes out(n);
  if (n) read_at(offset, out.data(), n);
  return out;
}

size_t MemorySource::read(uint8_t* buf, size_t n) {
  n = std::min(n, data_.size() - pos_);
  if (n) std::memcpy(buf, data_.data() + pos_, n);
  pos_ += n;
  return n;
}

void MemorySource::read_at(uint64_t offset, uint8_t* out, size_t n) const {
  if (!in_bounds(offset, n)) throw Error(Errc::kFormat, "input is truncated");
  if (n) std::memcpy(out, data_.data() + offset, n);
}

FileSource::FileSource(const std::string& path) : path_(path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw Error(Errc::kIo, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(Errc::kIo, "cannot read " + path + ": not a regular file");
  size_ = static_cast<uint64_t>(st.st_size);
  fd_ = std::move(fd);
}

void FileSource::read_at(uint64_t offset, uint8_t* out, size_t n) const {
  if (!in_bounds(offset, n)) throw Error(Errc::kFormat, path_ + " is truncated");
  while (n > 0) {
    ssize_t r = ::pread(fd_.get(), out, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(Errc::kIo, "cannot read " + path_ + ": " + std::strerror(errno));
    if (r == 0) throw Error(Errc::kFormat, path_ + " is truncated (it shrank while being read)");
    out += r;
    offset += static_cast<uint64_t>(r);
    n -= static_cast<size_t>(r);
  }
}

SliceSource::SliceSource(std::shared_ptr<const RandomAccessSource> base, uint64_t offset, uint64_t length)
    : base_(std::move(base)), offset_(offset), length_(length) {
  if (!base_->in_bounds(offset, length)) throw Error(Errc::kFormat, base_->name() + ": member passes the end of the file");
}

void SliceSource::read_at(uint64_t offset, uint8_t* out, size_t n) const {
  if (!in_bounds(offset, n)) throw Error(Errc::kFormat, base_->name() + ": member is truncated");
  base_->read_at(offset_ + offset, out, n);
}

size_t PrefixedSource::read(uint8_t* buf, size_t n) {
  size_t from_prefix = std::min(n, prefix_.size() - pos_);
  if (from_prefix) std::memcpy(buf, prefix_.data() + pos_, from_prefix);
  pos_ += from_prefix;
  return from_prefix + (n > from_prefix ? rest_.read(buf + from_prefix, n - from_prefix) : 0);
}

size_t IstreamSource::read(uint8_t* buf, size_t n) {
  in_.read(reinterpret_cast<char*>(buf), static_cast<std::streamsize>(n));
  if (in_.bad()) throw Error(Errc::kIo, "cannot read input stream");
  return static_cast<size_t>(in_.gcount());
}

void OstreamSink::write(ByteView data) {
  out_.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out_) throw Error(Errc::kIo, "cannot write output stream");
}

}  // namespace shield_nitro
