// The one root a Verifier trusts. There is deliberately no default and no way to hold two:
// a Verifier takes exactly one TrustAnchor, chosen explicitly by the caller.
//
//   Verifier v(TrustAnchor::aws());                          // production: AWS Nitro Root G1
//   Verifier v(TrustAnchor::from_pem(read_text_file(root))); // e.g. the simulator's root
//
// aws() is compiled in and checked against the pinned DER SHA-256 (attestation.md §4) when
// first used; the root copy inside a document's cabundle is never trusted, only compared.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::attest {

// SHA-256 of the DER of AWS Nitro Enclaves Root G1 (not the ZIP hash AWS publishes).
inline constexpr char kAwsRootG1Sha256Hex[] = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

namespace detail {
struct TrustAnchorAccess;  // src/attest: the chain check reads the OpenSSL objects
}  // namespace detail

// Immutable and cheap to copy (copies share the parsed root); safe to share between threads.
class TrustAnchor {
 public:
  // The pinned AWS Nitro Enclaves Root G1.
  static TrustAnchor aws();
  // A caller-chosen root: exactly one self-signed CA certificate. Throws Error(kFormat)
  // for anything else (no certificate, two certificates, not a CA, bad self-signature).
  static TrustAnchor from_pem(std::string_view pem);
  // The same from DER bytes; same errors.
  static TrustAnchor from_der(ByteView der);

  // The root's DER, its SHA-256 (lowercase hex), its subject (one line), and whether it is
  // the pinned AWS root.
  const Bytes& der() const;
  std::string sha256_hex() const;
  std::string subject() const;
  bool is_aws() const;

 private:
  struct State;  // OpenSSL objects, defined in src/attest
  friend struct detail::TrustAnchorAccess;
  explicit TrustAnchor(std::shared_ptr<const State> s) : state_(std::move(s)) {}
  std::shared_ptr<const State> state_;
};

}  // namespace shield_nitro::attest
