// SecureBytes: a move-only buffer for secrets, zeroized (secure_wipe) when dropped.
//
// Keys, passwords and plaintext artifacts live in SecureBytes. It has no operator<< and no
// implicit conversion to Bytes, so a secret is not logged or copied by accident; use view()
// to hand it to a primitive. Buffers of 4 MiB and more (artifacts) get their own mapping,
// advised for transparent huge pages and kept out of core dumps.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro {

// Zeroes n bytes in a way the compiler may not elide (glibc's explicit_bzero: a vectorised
// memset behind a barrier, several times faster than OPENSSL_cleanse's byte loop on large
// buffers, which matters for multi-MiB plaintexts).
void secure_wipe(void* p, size_t n);

// Owns its storage alone (move-only); wiped on destruction, resize and clear. Not thread-safe
// except prefault() as noted.
class SecureBytes {
 public:
  SecureBytes() = default;
  // size zero bytes, or a copy of copy_from (the source is not wiped: the caller owns it).
  explicit SecureBytes(size_t size);
  explicit SecureBytes(ByteView copy_from);
  ~SecureBytes();

  SecureBytes(SecureBytes&& other) noexcept;
  SecureBytes& operator=(SecureBytes&& other) noexcept;
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;

  // An explicit deep copy, for the rare place that needs two owners.
  SecureBytes clone() const { return SecureBytes(view()); }

  // Access without copying; views and spans are valid until the next resize, append, clear,
  // move or destruction.
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  ByteView view() const { return {data_, size_}; }
  std::span<uint8_t> span() { return {data_, size_}; }

  // Grows or shrinks, keeping the prefix; the old storage is wiped. New bytes are zero.
  void resize(size_t size);
  // Like resize(), but new bytes are left unset: for a buffer the caller overwrites whole at
  // once (e.g. an AEAD's output), where zero-filling first would cost a memory pass.
  void resize_for_overwrite(size_t size);
  // Appends a copy of more (may reallocate: the old storage is wiped).
  void append(ByteView more);
  // Maps the pages under [offset, offset + len) now (Linux MADV_POPULATE_WRITE), so writes
  // there later take no page faults: lets another thread pay for a big buffer's first touch
  // while this one fills it. Changes no byte; safe while other threads write into the buffer;
  // false when the kernel cannot do it (then nothing happened, and nothing needs to).
  bool prefault(size_t offset, size_t len);
  // Wipes and empties.
  void clear();

 private:
  void reserve_exact(size_t capacity);
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace shield_nitro
