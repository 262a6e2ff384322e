// Placing one configured artifact: the sealed file's bytes (from a path in the image or the
// host agent's stream) are checked against the runtime config while they stream, the data key
// is released (the caller's KeyRelease: attested KMS Decrypt), and the plaintext is written to
// its configured path, mode 0400, owned by the app's user. (Measured on 2 vCPUs, sealed::open's
// stream beat decrypting on sealed::Assembler workers into a mapping of the file by about 30 %.)
//
// The measured runtime config pins the sealed file, so the host cannot give another one (not
// even one sealed under the same key), by one of two digests (runtime/config.h):
// header_sha256, the SHA-256 of the file's prefix (sealed header + stream header, the bytes
// before the first record), compared as soon as the prefix arrived and before KMS is asked (no
// per-byte hashing: the stream key is bound to both headers, every record to the key and the
// stream header, so it tells apart even files sealed under one data key), or sha256, the whole file's, hashed while it streams and compared at the end. A digest
// or size that differs is refused, and plaintext already written is removed before anything
// uses it. The header's encryption context must equal the config's (checked before KMS too).
#pragma once

#include <cstdint>
#include <string>

#include "shield_nitro/core/byte_io.h"
#include "shield_nitro/runtime/config.h"
#include "shield_nitro/sealed/sealed.h"

namespace shield_nitro::supervisor {

struct InstallOptions {
  bool set_owner = true;  // chown to uid:gid (needs root)
  uint32_t uid = 65534;
  uint32_t gid = 65534;
  unsigned threads = 0;   // decryption workers; 0 = every core
  uint64_t max_plaintext = uint64_t{256} << 20;  // a bigger plaintext is refused (the tmpfs's size)
};

struct InstallResult {
  uint64_t sealed_bytes = 0;
  uint64_t plaintext_bytes = 0;
};

// Reads the sealed file from `in` (`sealed_size` bytes: what the host announced, or the image
// file's size; checked to be exactly what arrives) while it streams through sealed::open (its
// decryption on `threads` workers) into an anonymous file that becomes artifact.path only once
// the AEAD, the size and the pin all checked. A whole-file pin hashes on a thread of its own
// (fed a copy of every piece; at most about 5 MiB queued). kUsage for a config with both or
// neither pin. Errors: kVerify for a size or digest other than announced or pinned, kPolicy
// for a header whose context differs or a plaintext past max_plaintext, sealed's kAuth/kFormat
// for a damaged file, and what release throws. On any error nothing is left at artifact.path.
InstallResult install_artifact(const runtime::ArtifactConfig& artifact, Source& in, uint64_t sealed_size,
                               const sealed::KeyRelease& release, const InstallOptions& options);

// A Source over a stream socket or pipe (reads until the peer closes); a read that waits more
// than timeout_ms is Error(kTimeout). Borrows fd.
class FdSource final : public Source {
 public:
  FdSource(int fd, std::string what, int timeout_ms);
  size_t read(uint8_t* buf, size_t n) override;

 private:
  int fd_;
  std::string what_;
  int timeout_ms_;
};

}  // namespace shield_nitro::supervisor
