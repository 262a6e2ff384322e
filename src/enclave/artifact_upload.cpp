#include "artifact_upload.h"

#include "shield_nitro/core/error.h"

namespace shield_nitro::enclave {

void ArtifactUpload::append_plain(ByteView p) {
  if (plaintext_.size() + p.size() > max_)
    throw Error(Errc::kPolicy, "artifact exceeds the size limit of " + std::to_string(max_) + " bytes");
  plaintext_.append(p);
}

void ArtifactUpload::start_if_detected() {
  if (format_ != shield::Format::kUnknown || pending_.size() < shield::kDetectBytes) return;
  format_ = shield::detect_format(pending_);
  if (format_ == shield::Format::kUnknown)
    throw Error(Errc::kFormat, "artifact is neither a Shield stream container nor a Shield v4 message");
  if (format_ == shield::Format::kStream) {
    stream_ = std::make_unique<shield::StreamDecryptor>(shield_);
    stream_->push(pending_, [this](ByteView p) { append_plain(p); });
    pending_.clear();
  }
}

void ArtifactUpload::push(ByteView data) {
  if (stream_) {
    stream_->push(data, [this](ByteView p) { append_plain(p); });
    return;
  }
  // A v4 message carries at most 183 bytes of overhead beyond its plaintext.
  if (pending_.size() + data.size() > max_ + 256)
    throw Error(Errc::kPolicy, "artifact exceeds the size limit of " + std::to_string(max_) + " bytes");
  pending_.insert(pending_.end(), data.begin(), data.end());
  start_if_detected();
}

SecureBytes ArtifactUpload::finish() {
  if (format_ == shield::Format::kUnknown) {
    format_ = shield::detect_format(pending_);
    if (format_ == shield::Format::kUnknown || format_ == shield::Format::kStream)
      throw Error(Errc::kFormat, "artifact is empty or truncated before its format could be told");
  }
  if (stream_) {
    stream_->finish([this](ByteView p) { append_plain(p); });
    return std::move(plaintext_);
  }
  SecureBytes pt = shield_.decrypt(pending_);
  if (pt.size() > max_) throw Error(Errc::kPolicy, "artifact exceeds the size limit");
  return pt;
}

}  // namespace shield_nitro::enclave
