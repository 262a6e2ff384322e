// Finds whether any 32-byte window of a secret occurs in recorded traffic, fast: every window
// of the recordings is indexed by a rolling hash (Rabin-Karp), each window of the secret is
// looked up in O(1), and a hash hit is confirmed byte for byte. Windows of fewer than 4
// distinct byte values (zero padding in an ELF file, with at most a small number in it) are
// skipped: the recordings legitimately hold such runs (an all-zero PCR followed by the next
// CBOR map key matched 31 zeros + 0x06 of the plugin), and they reveal nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"

namespace sn_test {

class WindowIndex {
 public:
  static constexpr size_t kWindow = 32;
  static constexpr size_t kMinDistinct = 4;  // byte values a window needs to be searched

  explicit WindowIndex(std::vector<shield_nitro::Bytes> recordings);

  // Offset in `secret` of the first informative window found in a recording, or nullopt.
  // A secret shorter than the window is looked up whole.
  std::optional<size_t> first_leak(shield_nitro::ByteView secret) const;
  // How many informative windows `secret` has (what first_leak checks).
  static size_t informative_windows(shield_nitro::ByteView secret);

  size_t recorded_bytes() const;

 private:
  bool confirm(shield_nitro::ByteView needle) const;
  std::vector<shield_nitro::Bytes> recordings_;
  std::vector<uint64_t> hashes_;  // sorted hashes of every window of every recording
};

// Every regular file under dir (the conn-<n>.up/.down captures), read whole.
std::vector<shield_nitro::Bytes> read_recordings(const std::string& dir);

}  // namespace sn_test
