// Decrypts an artifact while its ciphertext arrives in pieces: a stream container is
// decrypted chunk by chunk (never buffered whole); a v4 message, which is one AEAD block,
// is gathered up to the size limit and then opened.
#pragma once

#include <memory>

#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/format.h"
#include "shield_nitro/shield/shield.h"
#include "shield_nitro/shield/stream.h"

namespace shield_nitro::enclave {

class ArtifactUpload {
 public:
  ArtifactUpload(const shield::Shield& shield, uint64_t max_bytes) : shield_(shield), max_(max_bytes) {}

  void push(ByteView data);
  // The plaintext; throws Error(kAuth) for a wrong key / tampering / truncation,
  // Error(kFormat) when the bytes are neither format, Error(kPolicy) over the size limit.
  SecureBytes finish();

 private:
  void start_if_detected();
  void append_plain(ByteView p);

  shield::Shield shield_;
  uint64_t max_;
  shield::Format format_ = shield::Format::kUnknown;
  Bytes pending_;  // bytes before the format is known, or the whole v4 message
  std::unique_ptr<shield::StreamDecryptor> stream_;
  SecureBytes plaintext_;
};

}  // namespace shield_nitro::enclave
