#include "shield_nitro/core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/random.h"

namespace shield_nitro {
namespace {

[[noreturn]] void throw_errno(const std::string& what, const std::string& path) {
  throw Error(Errc::kIo, what + " " + path + ": " + std::strerror(errno));
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write", path);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Bytes read_file(const std::string& path) {
  FileReader r(path);
  Bytes out;
  if (r.size() > 0) out.reserve(static_cast<size_t>(r.size()));
  uint8_t buf[65536];
  for (;;) {
    size_t n = r.read(buf, sizeof buf);
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

std::string read_text_file(const std::string& path) { return to_string(read_file(path)); }

void write_file_atomic(const std::string& path, ByteView data, unsigned mode) {
  AtomicFileWriter w(path, mode);
  w.write(data);
  w.commit();
}

AtomicFileWriter::AtomicFileWriter(const std::string& path, unsigned mode) : path_(path) {
  if (path == "-") {
    to_stdout_ = true;
    fd_ = STDOUT_FILENO;
    return;
  }
  std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  tmp_ = dir_of(path) + "/." + base + ".tmp-" + hex_encode(os_random().bytes(6));
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd_ < 0) throw_errno("cannot create", path);
  ::fchmod(fd_, mode);  // umask must not widen or narrow the requested mode
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!to_stdout_ && fd_ >= 0) ::close(fd_);
  if (!to_stdout_ && !committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFileWriter::write(ByteView data) { write_all(fd_, data.data(), data.size(), path_); }

void AtomicFileWriter::commit() {
  if (to_stdout_) {
    committed_ = true;
    return;
  }
  if (::fsync(fd_) != 0) throw_errno("cannot fsync", path_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw_errno("cannot close", path_);
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) throw_errno("cannot rename into", path_);
  committed_ = true;
  int dfd = ::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

FileReader::FileReader(const std::string& path) : path_(path) {
  if (path == "-") {
    fd_ = STDIN_FILENO;
  } else {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw_errno("cannot open", path);
    owns_ = true;
  }
  struct stat st{};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) size_ = st.st_size;
  if (owns_ && ::fstat(fd_, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    throw Error(Errc::kIo, "cannot read " + path + ": is a directory");
  }
}

FileReader::~FileReader() {
  if (owns_ && fd_ >= 0) ::close(fd_);
}

size_t FileReader::read(uint8_t* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd_, buf + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read", path_);
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

bool FileReader::read_exact(uint8_t* buf, size_t n) {
  size_t got = read(buf, n);
  if (got == 0 && n > 0) return false;
  if (got != n) throw Error(Errc::kFormat, path_ + " is truncated");
  return true;
}

bool file_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

void make_dirs(const std::string& path, unsigned mode) {
  if (path.empty()) return;
  std::string cur;
  size_t i = 0;
  while (i <= path.size()) {
    size_t next = path.find('/', i);
    if (next == std::string::npos) next = path.size();
    cur = path.substr(0, next);
    if (!cur.empty() && ::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) throw_errno("cannot create folder", cur);
    i = next + 1;
  }
}

}  // namespace shield_nitro
