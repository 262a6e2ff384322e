#include "shield_nitro/shield/stream_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <istream>
#include <ostream>

#include "shield_nitro/core/error.h"

namespace shield_nitro::shield {

size_t MemorySource::read(uint8_t* buf, size_t n) {
  n = std::min(n, data_.size() - pos_);
  if (n) std::memcpy(buf, data_.data() + pos_, n);
  pos_ += n;
  return n;
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

void MemoryRandomSource::read_at(uint64_t offset, std::span<uint8_t> out) const {
  if (offset > data_.size() || out.size() > data_.size() - offset)
    throw Error(Errc::kFormat, "read past the end of the container");
  if (!out.empty()) std::memcpy(out.data(), data_.data() + offset, out.size());
}

FileRandomSource::FileRandomSource(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(Errc::kIo, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw Error(Errc::kIo, "cannot read " + path + " at random offsets: not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

FileRandomSource::~FileRandomSource() {
  if (fd_ >= 0) ::close(fd_);
}

void FileRandomSource::read_at(uint64_t offset, std::span<uint8_t> out) const {
  size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::pread(fd_, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(Errc::kIo, "cannot read " + path_ + ": " + std::strerror(errno));
    if (r == 0) throw Error(Errc::kFormat, path_ + " shrank while being read");
    got += static_cast<size_t>(r);
  }
}

}  // namespace shield_nitro::shield
