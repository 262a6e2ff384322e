// Decrypts an artifact while its ciphertext arrives in pieces: a stream container is
// decrypted chunk by chunk (never buffered whole); a v4 message, which is one AEAD block,
// is gathered up to the size limit and then opened.
//
// When the sender announced the container's size (load-artifact's "size"), a stream is
// decrypted by a StreamAssembler: the plaintext is allocated once at its exact size and each
// chunk lands in its place; a stream of another length is refused. Without it, the plaintext
// grows as chunks arrive (StreamDecryptor).
#pragma once

#include <memory>
#include <optional>

#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/shield/format.h"
#include "shield_nitro/shield/shield.h"
#include "shield_nitro/shield/stream.h"

namespace shield_nitro::enclave {

class ArtifactUpload {
 public:
  // announced_size: the sealed artifact's bytes as the sender announced them, if it did.
  ArtifactUpload(const shield::Shield& shield, uint64_t max_bytes, std::optional<uint64_t> announced_size = std::nullopt);

  void push(ByteView data);
  // The plaintext; throws Error(kAuth) for a wrong key / tampering / truncation,
  // Error(kFormat) when the bytes are neither format or not the announced size,
  // Error(kPolicy) over the size limit.
  SecureBytes finish();

 private:
  void start_if_detected();
  void append_plain(ByteView p);
  void count(size_t n);

  shield::Shield shield_;
  uint64_t max_;
  std::optional<uint64_t> announced_;
  uint64_t received_ = 0;
  shield::Format format_ = shield::Format::kUnknown;
  Bytes pending_;  // bytes before the format is known, or the whole v4 message
  std::unique_ptr<shield::StreamAssembler> assembler_;  // stream of announced size
  std::unique_ptr<shield::StreamDecryptor> stream_;     // stream of unknown size
  SecureBytes plaintext_;
};

}  // namespace shield_nitro::enclave
