// Attested TLS, client side (issue 15, docs/attested-tls.md): check that the TLS key of an
// enclave's ingress is held by an attested enclave, then pin that key for real connections.
//
//   attest::Policy policy;
//   policy.expect_pcr(0, pcr0);
//   policy.max_age_s = 300;
//   auto v = parent::verify_attested_tls("https://10.0.0.5:8443", policy, attest::TrustAnchor::aws());
//   // v.curl_pin == "sha256//BASE64(SHA-256(SPKI))": curl --pinnedpubkey v.curl_pin ...
//   auto ctx = parent::make_pinned_ssl_ctx(v.spki_sha256);   // OpenSSL: accepts only that key
//
//   parent::AttestedTlsClient client("https://10.0.0.5:8443", policy, anchor);
//   auto conn = client.connect();   // pinned; re-attests once when the certificate changed
//
// The contract: TLS without CA verification; the first request on that very connection is
// GET /.well-known/shield-nitro/attestation?nonce=HEX (a fresh random nonce); the answer's body
// is the raw document, which must verify (chain to the one root, ES384, the caller's policy
// plus this nonce) and carry user_data = "sn-tls/1" || SHA-256(SPKI DER of the certificate
// this connection saw) || the app's own user_data (0..472 bytes). Anything else is refused
// with Error: kVerify (binding, pin), kPolicy/kExpired/kVerify/kFormat (document), kFormat
// (malformed answer), kRemote (a non-200 answer), kIo/kTimeout (network), kUsage (bad URL).
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "shield_nitro/attest/policy.h"
#include "shield_nitro/attest/trust_anchor.h"
#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro::parent {

inline constexpr char kAttestedTlsPath[] = "/.well-known/shield-nitro/attestation";
inline constexpr char kAttestedTlsTag[] = "sn-tls/1";  // the 8 ASCII bytes opening user_data
inline constexpr size_t kAttestedTlsBindingSize = 8 + 32;
inline constexpr size_t kAttestedTlsMaxAppUserData = 472;
// The largest answer read (headers + a document of at most 16384 + 1024 bytes).
inline constexpr size_t kAttestedTlsMaxResponse = 32 * 1024;

// Where the enclave's TLS ingress listens.
struct TlsTarget {
  std::string host;  // a name or an IP literal (brackets removed)
  uint16_t port = 0;
};
// "https://HOST:PORT[/path]" or "HOST:PORT" (an IPv6 host in brackets). The port is required
// (an enclave ingress has no default). Throws Error(kUsage) naming what is wrong.
TlsTarget parse_tls_target(std::string_view url);
// "HOST:PORT", an IPv6 host in brackets: the URL authority, the Host header, error texts.
std::string tls_authority(const TlsTarget& target);

struct AttestedTlsOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};  // connect + handshake + answer
  size_t nonce_size = 32;                                        // 1..512 bytes
  const Clock* clock = nullptr;  // "now" for the document check; nullptr = the system clock
};

struct AttestedTlsResult {
  Bytes spki_sha256;               // 32 bytes: SHA-256 of the certificate's SubjectPublicKeyInfo DER
  std::string spki_sha256_hex;     // lowercase
  std::string spki_sha256_base64;  // standard, padded
  std::string curl_pin;            // "sha256//" + base64, for curl --pinnedpubkey
  Bytes certificate_der;           // the certificate the attested connection saw
  Bytes app_user_data;             // user_data after the 40-byte binding (often empty)
  Bytes document;                  // the verified document, as received
  attest::Claims claims;           // its verified claims
};

// The full client procedure against one endpoint. Returns only when everything verified.
AttestedTlsResult verify_attested_tls(std::string_view url, const attest::Policy& policy,
                                      const attest::TrustAnchor& root, const AttestedTlsOptions& options = {});

// The pieces, exposed for tests and fuzzing (all take untrusted bytes and never crash):
// SHA-256 of a certificate's SPKI DER; Error(kFormat) when der is not one certificate.
Bytes spki_sha256_of_certificate(ByteView der);
// The answer to the attestation request: "HTTP/1.x 200" with a body (Content-Length or until
// close) → the body; a non-200 status → Error(kRemote) with the status line; anything
// malformed (no status line, bad or conflicting Content-Length, chunked, short body, larger
// than kAttestedTlsMaxResponse) → Error(kFormat).
Bytes parse_attestation_response(ByteView response);
// Checks a verified document's user_data against the key seen; returns the app's own bytes.
// Error(kVerify) when user_data is absent/null, shorter than 40 bytes, longer than 512, lacks
// the "sn-tls/1" tag, or names another key.
Bytes check_tls_binding(const attest::OptionalBytes& user_data, ByteView spki_sha256);

// Frees an SSL_CTX (the deleter of PinnedSslCtx).
struct SslCtxFree {
  void operator()(SSL_CTX* p) const;
};
using PinnedSslCtx = std::unique_ptr<SSL_CTX, SslCtxFree>;
// OpenSSL, pinned: a client SSL_CTX (TLS 1.2+) whose certificate check accepts exactly the
// peer key whose SPKI SHA-256 is spki_sha256 (any CA, any name, any validity: the attestation
// is what vouches for it). A handshake with any other key fails; pin_refused() tells that
// failure (the certificate changed, e.g. key rotation: re-attest) from network errors.
// Error(kUsage) unless spki_sha256 is 32 bytes.
PinnedSslCtx make_pinned_ssl_ctx(ByteView spki_sha256);
// True when ssl's handshake failed because the peer's key is not the pinned one.
bool pin_refused(const SSL* ssl);

// One pinned TLS connection (blocking I/O with the options' timeout per call).
class PinnedConnection {
 public:
  PinnedConnection(PinnedConnection&&) noexcept;
  PinnedConnection& operator=(PinnedConnection&&) noexcept;
  ~PinnedConnection();
  // Sends all of data; Error(kIo/kTimeout).
  void write_all(std::string_view data);
  // Reads until the peer closes (at most max bytes, else Error(kFormat)).
  std::string read_to_end(size_t max = 16 << 20);
  // One read of what has arrived: 1..size bytes, or 0 once the peer closed (with or without
  // close_notify). Error(kTimeout) when nothing came in time, Error(kIo) otherwise.
  size_t read_some(char* buf, size_t size);
  SSL* ssl() const;
  int fd() const;

 private:
  struct State;  // socket, context, session (src/parent)
  explicit PinnedConnection(std::unique_ptr<State> s);
  friend PinnedConnection connect_pinned(const TlsTarget&, ByteView, std::chrono::milliseconds);
  std::unique_ptr<State> s_;
};

// Connects to target with a pinned context. Error(kVerify) mentioning "pinned" when the peer's
// key is another one (see AttestedTlsClient for the re-attesting variant).
PinnedConnection connect_pinned(const TlsTarget& target, ByteView spki_sha256,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Verify-then-pin with re-verification on rotation: connect() uses the pinned key; when the
// peer presents another key it runs the procedure again (same policy and root, a fresh nonce)
// and, if that passes, pins the new key and connects. Concurrent connect()s that meet the new
// key share one re-attestation. Its verifier caches the enclave's certificate chain, so a
// re-attestation costs about one ES384 check. Thread-safe.
class AttestedTlsClient {
 public:
  AttestedTlsClient(std::string url, attest::Policy policy, attest::TrustAnchor root, AttestedTlsOptions options = {});
  ~AttestedTlsClient();
  // A connection to a verified key; the first call verifies. Errors as verify_attested_tls().
  PinnedConnection connect();
  // The current verification (verifies first if none yet).
  AttestedTlsResult current();
  // How many times the endpoint was attested (1 after the first connect, +1 per rotation).
  uint64_t verifications() const;

 private:
  std::string url_;
  TlsTarget target_;
  attest::Policy policy_;
  std::unique_ptr<attest::Verifier> verifier_;  // with its chain cache
  AttestedTlsOptions options_;
  mutable std::mutex mu_;
  std::mutex reattest_mu_;  // one re-attestation at a time; held while it runs
  std::shared_ptr<const AttestedTlsResult> current_;
  uint64_t verifications_ = 0;
};

}  // namespace shield_nitro::parent
