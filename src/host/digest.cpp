#include "digest.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/host/agent.h"
#include "shield_nitro/net/fd.h"
#include "shield_nitro/sealed/sealed.h"

namespace shield_nitro::host {
namespace {

bool same_version(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
         a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

// SHA-256 of fd's first size bytes with pread; stops (kInternal) when cancel turns true.
std::string hash_fd(int fd, uint64_t size, const std::string& path, const std::atomic<bool>* cancel) {
  ossl::Ptr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw_openssl("SHA-256 init");
  std::vector<uint8_t> buf(1 << 20);
  uint64_t off = 0;
  while (off < size) {
    if (cancel && cancel->load()) throw Error(Errc::kInternal, "hashing " + path + " was cancelled");
    ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), size - off), static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(Errc::kIo, "reading " + path + " failed: " + std::strerror(errno));
    if (n == 0) throw Error(Errc::kIo, path + " shrank while being hashed");
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
  }
  uint8_t md[32];
  unsigned len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) throw_openssl("SHA-256 final");
  return hex_encode(ByteView(md, len));
}

// fd's stat, which must be a regular file's (Error(kIo) naming path otherwise).
struct stat regular_stat(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(Errc::kIo, "cannot stat " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(Errc::kIo, path + " is not a regular file");
  return st;
}

}  // namespace

std::string file_sha256(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) throw Error(Errc::kIo, "cannot read " + path + ": " + std::strerror(errno));
  return hash_fd(fd.get(), static_cast<uint64_t>(st.st_size), path, nullptr);
}

uint64_t file_size(int fd, const std::string& path) { return static_cast<uint64_t>(regular_stat(fd, path).st_size); }

std::string header_sha256(int fd, uint64_t size, const std::string& path) {
  Bytes head(static_cast<size_t>(std::min<uint64_t>(size, sealed::kMaxPrefixSize)));
  size_t got = 0;
  while (got < head.size()) {
    ssize_t n = ::pread(fd, head.data() + got, head.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(Errc::kIo, "reading " + path + " failed: " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  head.resize(got);
  try {
    return sealed::parse_prefix(head).prefix_digest_hex();
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
}

FileDigest DigestCache::digest(int fd) {
  const struct stat st = regular_stat(fd, path_);
  std::lock_guard lock(mu_);
  if (have_ && same_version(st, st_)) return digest_;
  FileDigest d{static_cast<uint64_t>(st.st_size), hash_fd(fd, static_cast<uint64_t>(st.st_size), path_, &cancel_)};
  // The file may have changed while it was read: remember the digest only for an unchanged version.
  struct stat after {};
  if (::fstat(fd, &after) == 0 && same_version(st, after)) {
    have_ = true;
    st_ = st;
    digest_ = d;
  }
  return d;
}

void DigestCache::warm() {
  join();
  cancel_ = false;
  warm_ = std::thread([this] {
    try {
      UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
      if (fd) digest(fd.get());
    } catch (const Error&) {  // reported when the enclave asks
    }
  });
}

void DigestCache::join() {
  cancel_ = true;
  if (warm_.joinable()) warm_.join();
  cancel_ = false;
}

uint64_t send_file(int sock, int file, uint64_t size, int stop_fd) {
  net::set_nonblocking(sock, true);
  // A bigger send buffer (best effort: capped by net.core.wmem_max) means fewer, longer
  // sendfile calls and fewer wake-ups on both sides: the 1 GiB stream alone took 0.15-0.16 s
  // instead of 0.25-0.34 s on simulated vsock (docs/performance.md "Runtime").
  const int sndbuf = 2 << 20;
  ::setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  off_t off = 0;
  std::vector<uint8_t> buf;  // only if sendfile(2) cannot serve this pair
  while (static_cast<uint64_t>(off) < size) {
    pollfd p[2] = {{sock, POLLOUT, 0}, {stop_fd, POLLIN, 0}};
    int r = ::poll(p, stop_fd >= 0 ? 2 : 1, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (stop_fd >= 0 && p[1].revents) || (p[0].revents & (POLLERR | POLLHUP))) break;
    size_t want = static_cast<size_t>(std::min<uint64_t>(size - static_cast<uint64_t>(off), 1 << 20));
    ssize_t n;
    if (buf.empty()) {
      n = ::sendfile(sock, file, &off, want);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
        buf.resize(1 << 16);
        continue;
      }
    } else {
      ssize_t got = ::pread(file, buf.data(), std::min(want, buf.size()), off);
      if (got <= 0) break;
      n = ::send(sock, buf.data(), static_cast<size_t>(got), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) off += n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n <= 0) break;
  }
  return static_cast<uint64_t>(off);
}

}  // namespace shield_nitro::host
