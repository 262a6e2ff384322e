#include "artifact_upload.h"

#include "shield_nitro/core/error.h"

namespace shield_nitro::enclave {
namespace {

// A v4 message carries at most 183 bytes of overhead beyond its plaintext.
constexpr uint64_t kV4Overhead = 256;

std::string too_big(uint64_t max) { return "artifact exceeds the size limit of " + std::to_string(max) + " bytes"; }

// Whether prefix (at least 4 bytes) starts a sealed file: its magic.
bool is_sealed(ByteView prefix) {
  try {
    (void)sealed::peek_header_size(prefix.first(shield::kDetectBytes));
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

ArtifactUpload::ArtifactUpload(std::optional<shield::Shield> key, sealed::KeyRelease release, uint64_t max_bytes,
                               std::optional<uint64_t> announced_size, unsigned workers)
    : shield_(std::move(key)), release_(std::move(release)), max_(max_bytes), workers_(workers), announced_(announced_size) {}

void ArtifactUpload::append_plain(ByteView p) {
  if (plaintext_.size() + p.size() > max_) throw Error(Errc::kPolicy, too_big(max_));
  plaintext_.append(p);
}

// Refuses bytes beyond the announced size as soon as they arrive.
void ArtifactUpload::count(size_t n) {
  received_ += n;
  if (announced_ && received_ > *announced_)
    throw Error(Errc::kFormat, "artifact is longer than its announced " + std::to_string(*announced_) + " bytes");
}

void ArtifactUpload::start_if_detected() {
  if (format_ != shield::Format::kUnknown || sealed_ || sealed_assembler_ || pending_.size() < shield::kDetectBytes) return;
  if (is_sealed(pending_)) {
    if (shield_) throw Error(Errc::kUsage, "a sealed file names its own KMS key: send load-artifact without 'key'");
    if (announced_) {  // decrypted on workers into one allocation, as a stream of announced size
      sealed_assembler_ = std::make_unique<sealed::Assembler>(*announced_, max_, release_, nullptr,
                                                              shield::AssemblerOptions{.workers = workers_});
      sealed_assembler_->push(pending_);
    } else {
      sealed_ = std::make_unique<sealed::Opener>(release_);
      sealed_->push(pending_, [this](ByteView p) { append_plain(p); });
    }
    pending_.clear();
    return;
  }
  format_ = shield::detect_format(pending_);
  if (format_ == shield::Format::kUnknown)
    throw Error(Errc::kFormat, "artifact is neither a sealed file, a Shield stream container nor a Shield v4 message");
  if (!shield_)
    throw Error(Errc::kUsage, std::string("load-artifact without 'key' takes a sealed file; this artifact is a Shield ") +
                                  (format_ == shield::Format::kStream ? "stream container" : "v4 message") +
                                  ": name the loaded key that sealed it");
  if (format_ != shield::Format::kStream) {
    if (announced_) {
      if (*announced_ > max_ + kV4Overhead) throw Error(Errc::kPolicy, too_big(max_));
      pending_.reserve(*announced_);
    }
    return;
  }
  if (announced_) {
    assembler_ = std::make_unique<shield::StreamAssembler>(*shield_, *announced_, max_, shield::AssemblerOptions{.workers = workers_});
    assembler_->push(pending_);
  } else {
    stream_ = std::make_unique<shield::StreamDecryptor>(*shield_);
    stream_->push(pending_, [this](ByteView p) { append_plain(p); });
  }
  pending_.clear();
}

void ArtifactUpload::push(ByteView data) {
  count(data.size());
  if (assembler_) return assembler_->push(data);
  if (stream_) return stream_->push(data, [this](ByteView p) { append_plain(p); });
  if (sealed_assembler_) return sealed_assembler_->push(data);
  if (sealed_) return sealed_->push(data, [this](ByteView p) { append_plain(p); });
  if (pending_.size() + data.size() > max_ + kV4Overhead) throw Error(Errc::kPolicy, too_big(max_));
  pending_.insert(pending_.end(), data.begin(), data.end());
  start_if_detected();
}

void ArtifactUpload::push_part(cbor::Value part) {
  const cbor::Value* d = part.find("data");
  if (!d || d->is_null()) return;
  if (!d->is(cbor::Type::kBytes)) throw Error(Errc::kFormat, "field 'data' must be a byte string");
  if (!assembler_ && !sealed_assembler_) return push(d->bytes_view());
  auto kept = std::make_shared<const cbor::Value>(std::move(part));  // moving keeps the bytes where they are
  ByteView data = kept->find("data")->bytes_view();  // owned or borrowed from the frame, which kept holds
  count(data.size());
  if (assembler_) return assembler_->push(data, std::move(kept));
  sealed_assembler_->push(data, std::move(kept));
}

SecureBytes ArtifactUpload::finish() {
  if (announced_ && received_ != *announced_)
    throw Error(Errc::kFormat, "artifact ended after " + std::to_string(received_) + " of its announced " +
                                   std::to_string(*announced_) + " bytes");
  if (sealed_assembler_) return sealed_assembler_->finish();
  if (sealed_) {
    sealed_->finish([this](ByteView p) { append_plain(p); });
    return std::move(plaintext_);
  }
  if (format_ == shield::Format::kUnknown) {
    format_ = shield::detect_format(pending_);
    if (format_ == shield::Format::kUnknown || format_ == shield::Format::kStream)
      throw Error(Errc::kFormat, "artifact is empty or truncated before its format could be told");
    if (!shield_) throw Error(Errc::kUsage, "load-artifact without 'key' takes a sealed file; this artifact is a Shield v4 message");
  }
  if (assembler_) return assembler_->finish();
  if (stream_) {
    stream_->finish([this](ByteView p) { append_plain(p); });
    return std::move(plaintext_);
  }
  SecureBytes pt = shield_->decrypt(pending_);
  if (pt.size() > max_) throw Error(Errc::kPolicy, too_big(max_));
  return pt;
}

}  // namespace shield_nitro::enclave
