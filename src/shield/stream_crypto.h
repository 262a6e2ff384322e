// Per-stream keys and chunk sealing (docs/stream-format.md §3-4), shared by the sequential,
// parallel, incremental and random-access paths so they cannot drift apart.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "aead.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/shield/shield.h"
#include "shield_state.h"
#include "stream_header.h"

namespace shield_nitro::shield::detail {

class StreamCrypto {
 public:
  // A new header (fresh stream salt and nonce prefix) under the Shield's own master key.
  static std::unique_ptr<StreamCrypto> for_encrypt(const Shield& shield, uint32_t chunk_size, Random& rng);
  // Keys for a parsed header; throws kFormat if the header's key mode is not the Shield's.
  static std::unique_ptr<StreamCrypto> for_decrypt(const Shield& shield, StreamHeader header);

  const StreamHeader& header() const { return header_; }
  uint32_t chunk_size() const { return header_.chunk_size; }
  size_t record_size() const { return size_t{header_.chunk_size} + kTagSize; }

  // Writes plaintext.size() + 16 bytes to out.
  void seal(uint64_t index, bool last, ByteView plaintext, uint8_t* out) const;
  // Writes record.size() - 16 bytes to out; otherwise throws kAuth "stream chunk N:
  // authentication failed: WHY", WHY naming a truncation, a reordering or a bad tag.
  void open(uint64_t index, bool last, ByteView record, uint8_t* out) const;

 private:
  StreamCrypto(StreamHeader header, const KeyEntry& master_key);
  void nonce_for(uint64_t index, bool last, uint8_t* nonce) const;
  std::string diagnose(uint64_t index, bool last, ByteView record, uint8_t* scratch) const;
  void remember_key() const;

  StreamHeader header_;
  std::unique_ptr<AeadKey> key_;
  // Password mode: a master key derived for this header's salt, cached once a chunk verifies.
  std::shared_ptr<ShieldState> state_;
  std::shared_ptr<const KeyEntry> unconfirmed_;
  mutable std::atomic<bool> remembered_{true};
};

// Where each record sits in a container of known size.
struct StreamLayout {
  size_t header_size = 0;
  uint32_t chunk_size = 0;
  uint64_t count = 0;         // records, at least 1
  uint64_t last_record = 0;   // bytes in the final record (16..chunk+16)

  // Throws kAuth "stream chunk N: authentication failed: truncated ..." when no whole tag fits.
  static StreamLayout of_container(size_t header_size, uint32_t chunk_size, uint64_t total_size);
  static StreamLayout of_plaintext(size_t header_size, uint32_t chunk_size, uint64_t plaintext_size);
  uint64_t record_offset(uint64_t i) const { return header_size + i * (uint64_t{chunk_size} + kTagSize); }
  uint64_t record_size(uint64_t i) const { return i + 1 == count ? last_record : uint64_t{chunk_size} + kTagSize; }
  uint64_t plaintext_size() const { return (count - 1) * chunk_size + last_record - kTagSize; }
  uint64_t container_size() const { return record_offset(count - 1) + last_record; }
};

}  // namespace shield_nitro::shield::detail
