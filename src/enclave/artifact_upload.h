// Decrypts an artifact while its ciphertext arrives in pieces: a stream container is
// decrypted chunk by chunk (never buffered whole); a v4 message, which is one AEAD block,
// is gathered up to the size limit and then opened. Both need the Shield of a loaded key.
// A sealed file (sealed/sealed.h) names its own KMS key instead: its data key is released
// from its header (KMS Decrypt with a Recipient) once the header is in, then its stream is
// decrypted as it arrives (sealed::Assembler on workers for an announced size, else
// sealed::Opener).
//
// When the sender announced the container's size (load-artifact's "size"), a stream is
// decrypted by a StreamAssembler: the plaintext is allocated once at its exact size and a pool
// of workers decrypts each chunk into its place while the parts keep arriving (a part's bytes
// are lent, not copied); a stream of another length is refused. Without it, the plaintext
// grows as chunks arrive (StreamDecryptor).
#pragma once

#include <memory>
#include <optional>

#include "shield_nitro/cbor/value.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/sealed/sealed.h"
#include "shield_nitro/shield/format.h"
#include "shield_nitro/shield/shield.h"
#include "shield_nitro/shield/stream.h"

namespace shield_nitro::enclave {

class ArtifactUpload {
 public:
  // announced_size: the sealed artifact's bytes as the sender announced them, if it did.
  // key: the Shield of the key handle the sender named, for a Shield container or v4 message;
  // without one the artifact must be a sealed file, and release turns its header into the
  // data key (called once, when the header is complete). With a key, a sealed file is refused
  // (kUsage), and without one anything else is. workers: decrypting threads of a stream of
  // announced size (0 = one per core).
  ArtifactUpload(std::optional<shield::Shield> key, sealed::KeyRelease release, uint64_t max_bytes,
                 std::optional<uint64_t> announced_size = std::nullopt, unsigned workers = 0);

  // The next bytes, copied if kept.
  void push(ByteView data);
  // A continuation part of load-artifact ({"data": bytes}, or no/null data): its bytes are
  // decrypted where they lie, the part kept alive until then. Error(kFormat) for other data.
  void push_part(cbor::Value part);
  // The plaintext; throws Error(kAuth) for a wrong key / tampering / truncation,
  // Error(kFormat) when the bytes are neither format or not the announced size,
  // Error(kPolicy) over the size limit.
  SecureBytes finish();

 private:
  void start_if_detected();
  void append_plain(ByteView p);
  void count(size_t n);

  std::optional<shield::Shield> shield_;
  sealed::KeyRelease release_;
  uint64_t max_;
  unsigned workers_;
  std::optional<uint64_t> announced_;
  uint64_t received_ = 0;
  shield::Format format_ = shield::Format::kUnknown;
  Bytes pending_;  // bytes before the format is known, or the whole v4 message
  std::unique_ptr<shield::StreamAssembler> assembler_;  // stream of announced size
  std::unique_ptr<shield::StreamDecryptor> stream_;     // stream of unknown size
  std::unique_ptr<sealed::Assembler> sealed_assembler_;  // a sealed file of announced size
  std::unique_ptr<sealed::Opener> sealed_;               // a sealed file of unknown size
  SecureBytes plaintext_;
};

}  // namespace shield_nitro::enclave
