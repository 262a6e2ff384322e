#include "shield_nitro/supervisor/artifact.h"

#include <openssl/evp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/openssl_ptr.h"

namespace shield_nitro::supervisor {
namespace {

// SHA-256 on its own thread, so hashing (about 3x the cost of decrypting) overlaps receiving,
// decrypting and writing instead of following them. feed() copies into a bounded queue of
// blocks (the ciphertext is public; a copy is a tenth of the hash's cost) and blocks only when
// the hasher is kDepth blocks behind, which bounds memory to about (kDepth + 1) * kBlock (5 MiB).
class BackgroundSha256 {
 public:
  BackgroundSha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw_openssl("SHA-256 init");
    thread_ = std::thread([this] { run(); });
  }
  ~BackgroundSha256() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  BackgroundSha256(const BackgroundSha256&) = delete;
  BackgroundSha256& operator=(const BackgroundSha256&) = delete;

  void feed(const uint8_t* data, size_t n) {
    while (n > 0) {
      size_t take = std::min(n, kBlock);
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return queue_.size() < kDepth || error_; });
      if (error_) std::rethrow_exception(error_);
      Bytes block;
      if (!spare_.empty()) {
        block = std::move(spare_.back());
        spare_.pop_back();
      }
      lock.unlock();
      block.assign(data, data + take);
      lock.lock();
      queue_.push_back(std::move(block));
      lock.unlock();
      cv_.notify_all();
      data += take;
      n -= take;
    }
  }

  // Waits for the hasher to take in everything fed; the digest, lowercase hex.
  std::string finish() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    thread_.join();
    if (error_) std::rethrow_exception(error_);
    uint8_t md[32];
    unsigned len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) throw_openssl("SHA-256 final");
    return hex_encode(ByteView(md, len));
  }

 private:
  static constexpr size_t kBlock = size_t{1} << 20;
  static constexpr size_t kDepth = 4;

  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || closed_ || !queue_.empty(); });
      if (stop_) return;
      if (queue_.empty()) return;  // closed and drained
      Bytes block = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      cv_.notify_all();  // a slot is free
      bool ok = EVP_DigestUpdate(ctx_.get(), block.data(), block.size()) == 1;
      lock.lock();
      if (!ok) {
        try {
          throw_openssl("SHA-256 update");
        } catch (...) {
          error_ = std::current_exception();
        }
        cv_.notify_all();
        return;
      }
      if (spare_.size() < kDepth) spare_.push_back(std::move(block));
    }
  }

  ossl::Ptr<EVP_MD_CTX> ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Bytes> queue_;
  std::vector<Bytes> spare_;
  bool closed_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the rest exists
};

// Counts what passes and, for a whole-file pin, hands it to the hasher; refuses more than the
// limit as soon as it arrives.
class MeasuringSource final : public Source {
 public:
  MeasuringSource(Source& in, std::string name, uint64_t limit, bool hash)
      : in_(in), name_(std::move(name)), limit_(limit) {
    if (hash) hash_ = std::make_unique<BackgroundSha256>();
  }

  size_t read(uint8_t* buf, size_t n) override {
    size_t got = in_.read(buf, n);
    count_ += got;
    if (count_ > limit_)
      throw Error(Errc::kVerify, "artifact " + name_ + ": more than the " + std::to_string(limit_) + " bytes announced arrive");
    if (hash_) hash_->feed(buf, got);
    return got;
  }

  // Reads what the opener left (nothing, for a well-formed file), then the digest (empty when
  // not hashing).
  std::string finish() {
    std::vector<uint8_t> buf(65536);
    while (read(buf.data(), buf.size()) > 0) {
    }
    return hash_ ? hash_->finish() : std::string();
  }
  uint64_t count() const { return count_; }

 private:
  Source& in_;
  std::string name_;
  uint64_t limit_;
  uint64_t count_ = 0;
  std::unique_ptr<BackgroundSha256> hash_;
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
  const bool header_pin = !a.header_sha256.empty();
  if (header_pin == !a.sha256.empty())
    throw Error(Errc::kUsage, what + ": the runtime config must pin exactly one of header_sha256 and sha256");
  MeasuringSource measured(in, a.name, sealed_size, !header_pin);
  AtomicFileWriter out(a.path, 0400);
  CountingSink counted(out, a.name, options.max_plaintext);
  sealed::OpenOptions oo;
  oo.threads = options.threads;
  auto checked_release = [&](const sealed::Header& h) {
    // A prefix (sealed header + stream header) other than the pinned one never reaches KMS.
    if (header_pin) {
      const std::string got = h.prefix_digest_hex();
      if (got != a.header_sha256)
        throw Error(Errc::kVerify, what + ": the sealed file's header_sha256 is " + got + ", the runtime config pins " +
                                       a.header_sha256);
    }
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
  if (!header_pin && digest != a.sha256)
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
