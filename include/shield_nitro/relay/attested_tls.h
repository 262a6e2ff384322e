// Attested TLS ingress (issue 15): the supervisor ends TLS 1.3 itself, with a key made in enclave
// memory, and binds that key into attestation documents a client fetches over the very connection.
//
//   relay::AttestedTlsOptions o;
//   o.attest = [&](ByteView nonce, ByteView user_data) {
//     return nsm.attestation({.user_data = Bytes(user_data.begin(), user_data.end()),
//                             .nonce = Bytes(nonce.begin(), nonce.end())});
//   };
//   relay::IngressForwarder fwd(relay::enclave_attested_tls_ingress(entry, o));
//
// Contract (docs/runtime.md "Attested TLS", shared with every client):
// - Per connection: TLS 1.3 handshake with the current certificate (self-signed, P-256 or P-384,
//   valid rotate_every + 1 h). If the first request is `GET /.well-known/shield-nitro/attestation`
//   with exactly `?nonce=HEX` (2-1024 hex digits), the answer is 200 application/cbor holding
//   attest(nonce, "sn-tls/1" || SHA-256(SPKI DER of this connection's certificate) || app_user_data),
//   `Connection: close`, and the connection ends. Any other request on that path: 400. Past the
//   token bucket (burst, per_s): 429. An attestation source that fails: 503.
// - Any other first request (or the app speaking first) is forwarded byte for byte to the target,
//   and the connection is a plain relay of plaintext from then on (half-close propagated). An
//   app not listening yet (target -1) does not stop attestation; its requests get a close.
// - No session tickets, no session cache: every handshake shows the certificate, and no resumption
//   secret outlives a rotation. The key is never written, logged or exported.
// - The handshake and the first request must arrive within first_request_timeout; stop_fd ends
//   a session at once. Bad input is an HTTP error or a close, never an exception out of serve().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/net/relay.h"
#include "shield_nitro/relay/ingress.h"
#include "shield_nitro/runtime/config.h"

namespace shield_nitro::relay {

inline constexpr std::string_view kAttestationPath = "/.well-known/shield-nitro/attestation";
inline constexpr std::string_view kTlsBindingTag = "sn-tls/1";  // first 8 bytes of user_data
inline constexpr size_t kMaxAppUserData = 472;                   // 512 - 8 - 32
inline constexpr size_t kMaxAttestationHead = 8192;              // request head bytes read, at most
// Tests only: with this variable naming a file, enclave_attested_tls_ingress rotates the key on
// the first connection after that file's size changed (an end-to-end test rotates exactly when
// it wants instead of after rotate_hours).
inline constexpr const char* kTestRotateFileEnv = "SHIELD_NITRO_TEST_TLS_ROTATE_FILE";

// Returns the attestation document for (nonce, user_data); throws on failure.
using AttestationSource = std::function<Bytes(ByteView nonce, ByteView user_data)>;

// What the bytes first read on a connection are, as far as they go.
enum class FirstRequest {
  kNeedMore,     // a prefix of "METHOD /.well-known/shield-nitro/attestation": read on
  kAttestation,  // a request for the attestation path (the supervisor answers it)
  kForward,      // anything else: for the app
};
// Decides from a connection's first bytes (any prefix; never throws). Once a prefix is decided,
// every longer one is decided the same way.
FirstRequest classify_first_request(std::string_view buffered);

// The answer to a request head (up to and including its blank line, or its first line) that
// classify_first_request called kAttestation: status 200 with the nonce, or 400 with why.
struct AttestationRequest {
  int status = 400;
  Bytes nonce;
  std::string error;  // one line, for the 400 body
};
// Parses "GET <path>?nonce=HEX HTTP/1.x\r\n..." strictly (untrusted bytes; never throws).
AttestationRequest parse_attestation_request(std::string_view head);

// "sn-tls/1" || spki_sha256 (32 bytes) || app_user_data.
Bytes tls_binding_user_data(ByteView spki_sha256, ByteView app_user_data);

struct AttestedTlsOptions {
  std::string name = "attested-tls";  // log prefix
  runtime::TlsKeyType key = runtime::TlsKeyType::kP256;
  std::chrono::seconds rotate_every{std::chrono::hours(24)};  // 0: a new key for every connection (tests)
  Bytes app_user_data;                                        // at most kMaxAppUserData
  AttestationSource attest;                                   // required
  uint32_t burst = 20;                                        // token bucket of documents, per ingress
  double per_s = 5;                                           // refill rate; 0: never refilled
  std::chrono::milliseconds first_request_timeout{std::chrono::seconds(10)};
  std::function<bool()> rotate_now;  // asked per connection: true → a new key now (tests: kTestRotateFileEnv)
};

struct AttestedTlsStats {
  uint64_t attestations = 0;   // documents served
  uint64_t rate_limited = 0;   // 429s
  uint64_t bad_requests = 0;   // 400s
  uint64_t failed_tls = 0;     // handshakes that failed or timed out
  uint64_t rotations = 0;      // keys made after the first
};

// One attested-TLS ingress: its current key and certificate, rate limit and counters, shared
// by all its connections (thread-safe).
class AttestedTls {
 public:
  // Makes the first key and certificate. Error(kUsage) without attest or with app_user_data too
  // long; Error(kInternal) if OpenSSL cannot make the key.
  explicit AttestedTls(AttestedTlsOptions options);
  ~AttestedTls();
  AttestedTls(const AttestedTls&) = delete;
  AttestedTls& operator=(const AttestedTls&) = delete;

  // One connection (an IngressSession): see the contract above. Owns neither descriptor; sets
  // both non-blocking. The handshake and the first request run on the calling thread; the relay
  // after them on one of the instance's loop threads (one per core, up to 4, started by the
  // constructor), while the calling thread waits. Every serve() must return before the
  // destructor runs.
  net::RelayResult serve(int client, int target, int stop_fd);
  // A new key and certificate now (what rotate_every does on the next connection).
  void rotate();
  // SHA-256 of the current certificate's SubjectPublicKeyInfo DER; the certificate in PEM.
  Bytes spki_sha256() const;
  std::string certificate_pem() const;
  AttestedTlsStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// enclave_ingress(entry) whose session is an AttestedTls built from the entry (key, rotate_hours,
// user_data) and `base` (attest, limits); the forwarder keeps it alive. Named
// "ingress <vsock_port> attested-tls".
IngressOptions enclave_attested_tls_ingress(const runtime::IngressConfig& entry, AttestedTlsOptions base);

}  // namespace shield_nitro::relay
