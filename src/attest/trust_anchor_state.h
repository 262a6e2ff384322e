// Internal: what a TrustAnchor holds. The X509_STORE contains the anchor and nothing else,
// so OpenSSL can build a path only to it; both objects are read-only after construction and
// safe to share between threads.
#pragma once

#include <openssl/x509_vfy.h>

#include "shield_nitro/attest/trust_anchor.h"
#include "x509_util.h"

namespace shield_nitro::attest {

struct TrustAnchor::State {
  Bytes der;
  detail::X509Ptr cert;
  X509_STORE* store = nullptr;
  bool aws = false;
  CertificateSummary summary;  // reused for cabundle[0], which must be these exact bytes
  ~State() { X509_STORE_free(store); }
};

namespace detail {
// The way src/attest reaches what a TrustAnchor keeps private.
struct TrustAnchorAccess {
  using State = TrustAnchor::State;
  static const State& state(const TrustAnchor& a) { return *a.state_; }
};
}  // namespace detail

}  // namespace shield_nitro::attest
