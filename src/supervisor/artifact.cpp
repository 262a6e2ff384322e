#include "shield_nitro/supervisor/artifact.h"

#include <openssl/evp.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/openssl_ptr.h"

namespace shield_nitro::supervisor {
namespace {

// Hashes and counts what passes; refuses more than the limit as soon as it arrives.
class MeasuringSource final : public Source {
 public:
  MeasuringSource(Source& in, std::string name, uint64_t limit)
      : in_(in), name_(std::move(name)), limit_(limit), ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw_openssl("SHA-256 init");
  }

  size_t read(uint8_t* buf, size_t n) override {
    size_t got = in_.read(buf, n);
    count_ += got;
    if (count_ > limit_)
      throw Error(Errc::kVerify, "artifact " + name_ + ": more than the " + std::to_string(limit_) + " bytes announced arrive");
    if (got && EVP_DigestUpdate(ctx_.get(), buf, got) != 1) throw_openssl("SHA-256 update");
    return got;
  }

  // Reads what the opener left (nothing, for a well-formed file), then the digest.
  std::string finish() {
    uint8_t buf[65536];
    while (read(buf, sizeof buf) > 0) {
    }
    uint8_t md[32];
    unsigned len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) throw_openssl("SHA-256 final");
    return hex_encode(ByteView(md, len));
  }
  uint64_t count() const { return count_; }

 private:
  Source& in_;
  std::string name_;
  uint64_t limit_;
  ossl::Ptr<EVP_MD_CTX> ctx_;
  uint64_t count_ = 0;
};

// Counts what the opener writes, and refuses a plaintext bigger than the storage.
class CountingSink final : public Sink {
 public:
  CountingSink(Sink& out, std::string name, uint64_t limit) : out_(out), name_(std::move(name)), limit_(limit) {}
  void write(ByteView data) override {
    count += data.size();
    if (count > limit_)
      throw Error(Errc::kPolicy, "artifact " + name_ + ": its plaintext is bigger than the " + std::to_string(limit_ >> 20) +
                                     " MiB storage");
    out_.write(data);
  }
  uint64_t count = 0;

 private:
  Sink& out_;
  std::string name_;
  uint64_t limit_;
};

}  // namespace

FdSource::FdSource(int fd, std::string what, int timeout_ms) : fd_(fd), what_(std::move(what)), timeout_ms_(timeout_ms) {}

size_t FdSource::read(uint8_t* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, timeout_ms_);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) throw Error(Errc::kTimeout, what_ + ": nothing arrived for " + std::to_string(timeout_ms_ / 1000) + " s");
    ssize_t r = ::read(fd_, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(Errc::kIo, what_ + ": " + std::strerror(errno));
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

InstallResult install_artifact(const runtime::ArtifactConfig& a, Source& in, uint64_t sealed_size,
                               const sealed::KeyRelease& release, const InstallOptions& options) {
  const std::string what = "artifact " + a.name;
  MeasuringSource measured(in, a.name, sealed_size);
  AtomicFileWriter out(a.path, 0400);
  CountingSink counted(out, a.name, options.max_plaintext);
  sealed::OpenOptions oo;
  oo.threads = options.threads;
  auto checked_release = [&](const sealed::Header& h) {
    if (h.context != a.encryption_context)
      throw Error(Errc::kPolicy, what + ": the sealed file's encryption context differs from the runtime config's");
    return release(h);
  };
  sealed::open(measured, counted, checked_release, oo);
  std::string digest = measured.finish();
  // Nothing is committed before the whole file is known to be the pinned one.
  if (measured.count() != sealed_size)
    throw Error(Errc::kVerify, what + ": " + std::to_string(sealed_size) + " bytes announced, " +
                                   std::to_string(measured.count()) + " arrived");
  if (digest != a.sha256)
    throw Error(Errc::kVerify, what + ": the sealed file's sha256 is " + digest + ", the runtime config pins " + a.sha256);
  out.commit();
  if (options.set_owner && ::chown(a.path.c_str(), options.uid, options.gid) != 0) {
    int err = errno;
    ::unlink(a.path.c_str());
    throw Error(Errc::kEnvironment, what + ": cannot give " + a.path + " to " + std::to_string(options.uid) + ":" +
                                        std::to_string(options.gid) + ": " + std::strerror(err));
  }
  return {measured.count(), counted.count};
}

}  // namespace shield_nitro::supervisor
