#include "shield_nitro/core/file_io.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

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

namespace {

// Named temporaries that an interrupt must remove. The handler reads the slots without locks, so
// they are fixed-size: a slot is claimed, filled, then published by `used`.
constexpr int kTempSlots = 32;
struct TempSlot {
  std::atomic<bool> claimed{false};
  std::atomic<bool> used{false};
  char path[4096];
};
TempSlot g_temps[kTempSlots];
std::atomic<int> g_commits{0};
char g_interrupted_what[256] = "command";

int register_temp(const std::string& path) {
  if (path.size() >= sizeof(TempSlot::path)) return -1;
  for (int i = 0; i < kTempSlots; ++i) {
    bool expected = false;
    if (!g_temps[i].claimed.compare_exchange_strong(expected, true)) continue;
    std::memcpy(g_temps[i].path, path.c_str(), path.size() + 1);
    g_temps[i].used.store(true, std::memory_order_release);
    return i;
  }
  return -1;  // more than kTempSlots outputs at once: still removed by the destructor
}

void unregister_temp(int slot) {
  if (slot < 0) return;
  g_temps[slot].used.store(false, std::memory_order_release);
  g_temps[slot].claimed.store(false, std::memory_order_release);
}

void on_interrupt(int sig) {
  for (auto& t : g_temps)
    if (t.used.load(std::memory_order_acquire)) ::unlink(t.path);
  const char* name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
  const char* tail = g_commits.load() == 0 ? "; no output was written\n" : "; outputs completed before it were kept\n";
  for (const char* part : {"shield-nitro: ", static_cast<const char*>(g_interrupted_what), " interrupted by ", name, tail})
    if (::write(STDERR_FILENO, part, std::strlen(part)) < 0) break;
  ::_exit(128 + sig);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string hidden_temp_name(const std::string& path) {
  return dir_of(path) + "/." + base_of(path) + ".tmp-" + hex_encode(os_random().bytes(6));
}

}  // namespace

void exit_cleanly_on_interrupt(const std::string& what) {
  std::snprintf(g_interrupted_what, sizeof g_interrupted_what, "%s", what.c_str());
  g_commits.store(0);  // the command starts here: count only its own outputs
  struct sigaction sa{};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

AtomicFileWriter::AtomicFileWriter(const std::string& path, unsigned mode, Temp temp) : path_(path) {
  if (path == "-") {
    to_stdout_ = true;
    fd_ = STDOUT_FILENO;
    return;
  }
  if (temp == Temp::kAnonymous) {
    owned_.reset(::open(dir_of(path).c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, mode));
    // Filesystems without O_TMPFILE answer EOPNOTSUPP (old kernels EISDIR): use a named temporary.
    if (!owned_ && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) throw_errno("cannot create", path);
  }
  if (!owned_) {
    tmp_ = hidden_temp_name(path);
    registry_slot_ = register_temp(tmp_);
    owned_.reset(::open(tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!owned_) {
      int saved = errno;
      unregister_temp(registry_slot_);
      errno = saved;
      throw_errno("cannot create", path);
    }
  }
  fd_ = owned_.get();
  ::fchmod(fd_, mode);  // umask must not widen or narrow the requested mode
}

AtomicFileWriter::~AtomicFileWriter() {
  owned_.reset();
  if (!to_stdout_ && !committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  unregister_temp(registry_slot_);
}

void AtomicFileWriter::write(ByteView data) { write_all(fd_, data.data(), data.size(), path_); }

void AtomicFileWriter::write_at(uint64_t offset, ByteView data) {
  if (to_stdout_) throw Error(Errc::kUsage, "cannot write at an offset to standard output");
  const uint8_t* p = data.data();
  size_t n = data.size();
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw_errno("cannot write", path_);
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

// An anonymous file gets its name with linkat(); linkat never replaces, so an existing path is
// replaced by linking a hidden name and renaming it over (a name that exists only for that step).
void AtomicFileWriter::link_into_place() {
  if (!tmp_.empty()) {
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) throw_errno("cannot rename into", path_);
    return;
  }
  char proc[64];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd_);
  auto link_to = [&](const std::string& name) {
    if (::linkat(AT_FDCWD, proc, AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return true;
    if (errno != ENOENT) return false;
    // No /proc (a minimal root filesystem): AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH.
    return ::linkat(fd_, "", AT_FDCWD, name.c_str(), AT_EMPTY_PATH) == 0;
  };
  if (link_to(path_)) return;
  if (errno != EEXIST) throw_errno("cannot create", path_);
  std::string hidden = hidden_temp_name(path_);
  int slot = register_temp(hidden);
  if (!link_to(hidden)) {
    unregister_temp(slot);
    throw_errno("cannot create", path_);
  }
  if (::rename(hidden.c_str(), path_.c_str()) != 0) {
    int saved = errno;
    ::unlink(hidden.c_str());
    unregister_temp(slot);
    errno = saved;
    throw_errno("cannot rename into", path_);
  }
  unregister_temp(slot);
}

void AtomicFileWriter::commit() {
  if (to_stdout_) {
    committed_ = true;
    return;
  }
  if (::fsync(fd_) != 0) throw_errno("cannot fsync", path_);
  link_into_place();
  committed_ = true;
  g_commits.fetch_add(1);
  fd_ = -1;
  if (owned_.close() != 0) throw_errno("cannot close", path_);
  UniqueFd dir(::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir) ::fsync(dir.get());
}

void AtomicFileWriter::commit_all(std::initializer_list<AtomicFileWriter*> writers) {
  std::vector<AtomicFileWriter*> done;
  try {
    for (AtomicFileWriter* w : writers) {
      w->commit();
      done.push_back(w);
    }
  } catch (...) {
    for (AtomicFileWriter* w : done)
      if (!w->to_stdout_) ::unlink(w->path_.c_str());
    throw;
  }
}

FileReader::FileReader(const std::string& path) : path_(path) {
  if (path == "-") {
    fd_ = STDIN_FILENO;
  } else {
    owned_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!owned_) throw_errno("cannot open", path);
    fd_ = owned_.get();
  }
  struct stat st{};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) size_ = st.st_size;
  if (owned_ && ::fstat(fd_, &st) == 0 && S_ISDIR(st.st_mode))
    throw Error(Errc::kIo, "cannot read " + path + ": is a directory");
}

FileReader::~FileReader() = default;

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
