// PCR arithmetic as the Nitro hypervisor and nitro-cli do it (spec/eif.md §2): every PCR is a
// single extend of an all-zero SHA-384 register, PCR = SHA384(0^48 || SHA384(content)).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::eif {

using Digest48 = std::array<uint8_t, 48>;

// Incremental SHA-384 (OpenSSL EVP). Copyable, so a prefix state can be finalised twice
// (PCR1 is a prefix of PCR0's content).
class Sha384 {
 public:
  Sha384();
  ~Sha384();
  Sha384(const Sha384& other);
  Sha384& operator=(const Sha384& other);
  // Hashes data next (no copy kept); Error(kInternal) if OpenSSL fails.
  void update(ByteView data);
  Digest48 final();  // the object is reset afterwards

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// One-shot SHA-384.
Digest48 sha384(ByteView data);
// SHA384(0^48 || digest): the register value after one extend.
Digest48 pcr_extend_from_zero(const Digest48& content_digest);
// The PCR of arbitrary bytes, as `nitro-cli pcr --input`.
Digest48 pcr_of(ByteView content);
// PCR8: the extend of SHA-384 over the certificate's DER (PEM input, re-encoded as DER).
// Throws Error(kFormat) if the PEM holds no certificate.
Digest48 pcr8_of_certificate(ByteView cert_pem);

// The measurements of one EIF.
struct Measurements {
  Digest48 pcr0{};
  Digest48 pcr1{};
  Digest48 pcr2{};
  std::optional<Digest48> pcr8;  // signed images only
};

// nitro-cli prints the Rust Debug name of its hasher as HashAlgorithm; it changed with the
// sha2 crate. Both mean SHA-384.
enum class HashLabel { kCurrent, kLegacy };
const char* hash_label(HashLabel l);  // "Sha512_48 { .. }" (nitro-cli 1.5.0) | "Sha384 { ... }" (≤ 1.4)
HashLabel parse_hash_label(const std::string& s);  // "current" | "legacy"; throws kUsage

}  // namespace shield_nitro::eif
