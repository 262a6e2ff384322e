// Attested TLS, client side (include/shield_nitro/parent/attested_tls.h, docs/attested-tls.md).
#include "shield_nitro/parent/attested_tls.h"

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/sigpipe.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/net/endpoint.h"

namespace shield_nitro::parent {
namespace {

std::string ssl_error_text() {
  std::string last;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    last = buf;
  }
  return last.empty() ? "the connection was closed" : last;
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The pin (a Bytes*) lives in the SSL_CTX's ex_data, freed with it.
void free_pin(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<Bytes*>(ptr); }

int pin_ex_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_pin);
  return index;
}

// Replaces chain verification: the peer's leaf key must be the pinned one, nothing else counts.
int check_pin(X509_STORE_CTX* store, void* arg) {
  const auto* pin = static_cast<const Bytes*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (leaf && pin) {
    unsigned char* der = nullptr;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &der);
    if (n > 0) {
      unsigned char digest[SHA256_DIGEST_LENGTH];
      SHA256(der, static_cast<size_t>(n), digest);
      OPENSSL_free(der);
      if (ct_equal(ByteView(digest, sizeof digest), *pin)) {
        X509_STORE_CTX_set_error(store, X509_V_OK);
        return 1;
      }
    }
  }
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

[[noreturn]] void throw_io(SSL* ssl, int rc, const std::string& what) {
  int saved = errno;
  int err = SSL_get_error(ssl, rc);
  errno = saved;
  // Blocking sockets: "want read/write" only happens when SO_RCVTIMEO / SO_SNDTIMEO expired.
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
      (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)))
    throw Error(Errc::kTimeout, what + ": no answer in time");
  if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
    throw Error(Errc::kIo, what + ": " + (rc == 0 || errno == 0 ? std::string("the connection was closed") : std::strerror(errno)));
  throw Error(Errc::kIo, what + ": " + ssl_error_text());
}

// A blocking TCP connection to target with an SSL on it, ready for SSL_connect (SNI for a name,
// none for an IP literal). fd owns the socket; it must outlive the SSL.
SslPtr open_ssl(SSL_CTX* ctx, const TlsTarget& target, std::chrono::milliseconds timeout, UniqueFd& fd) {
  fd = net::connect(net::Endpoint::tcp(target.host, target.port), timeout);
  set_timeouts(fd.get(), timeout);
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1) throw_openssl("SSL_new");
  bool name = target.host.find_first_not_of("0123456789.") != std::string::npos && target.host.find(':') == std::string::npos;
  if (name) SSL_set_tlsext_host_name(ssl.get(), target.host.c_str());
  return ssl;
}

}  // namespace

std::string tls_authority(const TlsTarget& t) {
  return (t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
}

void SslCtxFree::operator()(SSL_CTX* p) const { SSL_CTX_free(p); }

// ---- parsing ----

TlsTarget parse_tls_target(std::string_view url) {
  const std::string original(url);
  std::string_view rest = url;
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos) {
    if (lower(rest.substr(0, scheme)) != "https")
      throw Error(Errc::kUsage, "attested TLS needs an https:// URL or HOST:PORT, got '" + original + "'");
    rest.remove_prefix(scheme + 3);
  }
  if (auto slash = rest.find_first_of("/?#"); slash != std::string_view::npos) rest = rest.substr(0, slash);
  if (rest.find('@') != std::string_view::npos) throw Error(Errc::kUsage, "a user name in '" + original + "' is not supported");
  TlsTarget t;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      throw Error(Errc::kUsage, "expected [IPv6]:PORT in '" + original + "'");
    t.host = std::string(rest.substr(1, close - 1));
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos)
      throw Error(Errc::kUsage, "'" + original + "' has no port (an attested-TLS ingress has no default port)");
    t.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
    if (t.host.find(':') != std::string::npos) throw Error(Errc::kUsage, "an IPv6 host must be in brackets in '" + original + "'");
  }
  unsigned value = 0;
  if (t.host.empty()) throw Error(Errc::kUsage, "'" + original + "' has no host");
  if (!is_digits(port) || port.size() > 5 || std::from_chars(port.data(), port.data() + port.size(), value).ec != std::errc{} ||
      value == 0 || value > 65535)
    throw Error(Errc::kUsage, "bad port '" + std::string(port) + "' in '" + original + "'");
  t.port = static_cast<uint16_t>(value);
  return t;
}

Bytes spki_sha256_of_certificate(ByteView der) {
  const unsigned char* p = der.data();
  ossl::Ptr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!cert || p != der.data() + der.size()) throw Error(Errc::kFormat, "the peer's TLS certificate is not one DER certificate");
  unsigned char* spki = nullptr;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &spki);
  if (n <= 0) throw Error(Errc::kFormat, "the peer's TLS certificate has no encodable public key");
  Bytes digest(SHA256_DIGEST_LENGTH);
  SHA256(spki, static_cast<size_t>(n), digest.data());
  OPENSSL_free(spki);
  return digest;
}

Bytes parse_attestation_response(ByteView response) {
  if (response.size() > kAttestedTlsMaxResponse)
    throw Error(Errc::kFormat, "attestation answer larger than " + std::to_string(kAttestedTlsMaxResponse) + " bytes");
  std::string_view text(reinterpret_cast<const char*>(response.data()), response.size());
  auto head_end = text.find("\r\n\r\n");
  if (head_end == std::string_view::npos) throw Error(Errc::kFormat, "attestation answer: no complete HTTP header");
  std::string_view head = text.substr(0, head_end);
  std::string_view body = text.substr(head_end + 4);
  auto line_end = head.find("\r\n");
  std::string_view status = head.substr(0, line_end);
  if (status.size() < 12 || (status.substr(0, 9) != "HTTP/1.1 " && status.substr(0, 9) != "HTTP/1.0 ") ||
      !is_digits(status.substr(9, 3)) || (status.size() > 12 && status[12] != ' '))
    throw Error(Errc::kFormat, "attestation answer: not an HTTP/1.x status line");
  std::string shown(status.substr(0, std::min<size_t>(status.size(), 80)));
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  if (status.substr(9, 3) != "200") throw Error(Errc::kRemote, "the attestation endpoint answered '" + shown + "'");
  std::optional<size_t> length;
  std::string_view fields = line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
  while (!fields.empty()) {
    auto eol = fields.find("\r\n");
    std::string_view line = fields.substr(0, eol);
    fields = eol == std::string_view::npos ? std::string_view{} : fields.substr(eol + 2);
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) throw Error(Errc::kFormat, "attestation answer: malformed header line");
    std::string name = lower(line.substr(0, colon));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (name == "transfer-encoding") throw Error(Errc::kFormat, "attestation answer: Transfer-Encoding is not accepted");
    if (name == "content-length") {
      size_t n = 0;
      if (!is_digits(value) || value.size() > 6 || std::from_chars(value.data(), value.data() + value.size(), n).ec != std::errc{})
        throw Error(Errc::kFormat, "attestation answer: bad Content-Length");
      if (length && *length != n) throw Error(Errc::kFormat, "attestation answer: conflicting Content-Length headers");
      length = n;
    }
  }
  if (length) {
    if (body.size() < *length) throw Error(Errc::kFormat, "attestation answer: body shorter than its Content-Length");
    if (body.size() > *length) throw Error(Errc::kFormat, "attestation answer: bytes after the body");
  }
  if (body.empty()) throw Error(Errc::kFormat, "attestation answer: empty body");
  return Bytes(body.begin(), body.end());
}

Bytes check_tls_binding(const attest::OptionalBytes& user_data, ByteView spki_sha256) {
  if (!user_data.has_value())
    throw Error(Errc::kVerify, std::string("attested TLS: the document's user_data is ") + attest::presence_name(user_data.presence) +
                                   ", not the sn-tls/1 key binding");
  const Bytes& u = user_data.value;
  if (u.size() < kAttestedTlsBindingSize || u.size() > kAttestedTlsBindingSize + kAttestedTlsMaxAppUserData)
    throw Error(Errc::kVerify, "attested TLS: user_data of " + std::to_string(u.size()) + " bytes is not an sn-tls/1 key binding");
  if (std::memcmp(u.data(), kAttestedTlsTag, 8) != 0)
    throw Error(Errc::kVerify, "attested TLS: user_data does not start with \"sn-tls/1\"");
  if (spki_sha256.size() != 32 || !ct_equal(ByteView(u.data() + 8, 32), spki_sha256))
    throw Error(Errc::kVerify, "attested TLS: the document binds key " + hex_encode(ByteView(u.data() + 8, 32)) +
                                   ", not the key of this TLS connection " + hex_encode(spki_sha256) +
                                   " (a relay with its own certificate?)");
  return Bytes(u.begin() + kAttestedTlsBindingSize, u.end());
}

// ---- pinned OpenSSL ----

PinnedSslCtx make_pinned_ssl_ctx(ByteView spki_sha256) {
  if (spki_sha256.size() != 32) throw Error(Errc::kUsage, "a pinned SPKI hash is 32 bytes, got " + std::to_string(spki_sha256.size()));
  PinnedSslCtx ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw_openssl("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  auto* pin = new Bytes(spki_sha256.begin(), spki_sha256.end());
  if (SSL_CTX_set_ex_data(ctx.get(), pin_ex_index(), pin) != 1) {
    delete pin;
    throw_openssl("SSL_CTX_set_ex_data");
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx.get(), check_pin, pin);
  return ctx;
}

bool pin_refused(const SSL* ssl) {
  return ssl && SSL_get_verify_result(ssl) == X509_V_ERR_APPLICATION_VERIFICATION;
}

// ---- connections ----

struct PinnedConnection::State {
  UniqueFd fd;
  PinnedSslCtx ctx;
  SslPtr ssl;
};

PinnedConnection::PinnedConnection(std::unique_ptr<State> s) : s_(std::move(s)) {}
PinnedConnection::PinnedConnection(PinnedConnection&&) noexcept = default;
PinnedConnection& PinnedConnection::operator=(PinnedConnection&&) noexcept = default;
PinnedConnection::~PinnedConnection() {
  if (!s_ || !s_->ssl) return;
  SigpipeBlock quiet;  // OpenSSL writes with write(2): a closed peer must not kill the caller
  SSL_shutdown(s_->ssl.get());
  ERR_clear_error();
}
SSL* PinnedConnection::ssl() const { return s_->ssl.get(); }
int PinnedConnection::fd() const { return s_->fd.get(); }

namespace {

void ssl_write_all(SSL* ssl, std::string_view data) {
  SigpipeBlock quiet;
  while (!data.empty()) {
    size_t n = 0;
    ERR_clear_error();
    int rc = SSL_write_ex(ssl, data.data(), data.size(), &n);
    if (rc != 1) throw_io(ssl, rc, "sending");
    data.remove_prefix(n);
  }
}

// One read: 1..size bytes, or 0 once the peer closed.
size_t ssl_read_some(SSL* ssl, char* buf, size_t size) {
  size_t n = 0;
  ERR_clear_error();
  int rc = SSL_read_ex(ssl, buf, size, &n);
  if (rc == 1) return n;
  int err = SSL_get_error(ssl, rc);
  if (err == SSL_ERROR_ZERO_RETURN) return 0;
  // A close without close_notify still ends a Connection: close answer; the caller checks lengths.
  if ((err == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK) ||
      (err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    ERR_clear_error();
    return 0;
  }
  throw_io(ssl, rc, "reading");
}

std::string ssl_read_to_end(SSL* ssl, size_t max) {
  std::string out;
  char buf[16384];
  while (size_t n = ssl_read_some(ssl, buf, sizeof buf)) {
    if (out.size() + n > max) throw Error(Errc::kFormat, "answer larger than " + std::to_string(max) + " bytes");
    out.append(buf, n);
  }
  return out;
}

}  // namespace

void PinnedConnection::write_all(std::string_view data) { ssl_write_all(s_->ssl.get(), data); }

std::string PinnedConnection::read_to_end(size_t max) { return ssl_read_to_end(s_->ssl.get(), max); }

size_t PinnedConnection::read_some(char* buf, size_t size) { return ssl_read_some(s_->ssl.get(), buf, size); }

PinnedConnection connect_pinned(const TlsTarget& target, ByteView spki_sha256, std::chrono::milliseconds timeout) {
  auto s = std::make_unique<PinnedConnection::State>();
  s->ctx = make_pinned_ssl_ctx(spki_sha256);
  s->ssl = open_ssl(s->ctx.get(), target, timeout, s->fd);
  ERR_clear_error();
  SigpipeBlock quiet;
  int rc = SSL_connect(s->ssl.get());
  if (rc != 1) {
    if (pin_refused(s->ssl.get()))
      throw Error(Errc::kVerify, "attested TLS: " + tls_authority(target) +
                                     " presented a key other than the pinned one (rotated or intercepted): re-attest");
    throw_io(s->ssl.get(), rc, "TLS handshake with " + tls_authority(target));
  }
  return PinnedConnection(std::move(s));
}

namespace {
AttestedTlsResult verify_with(std::string_view url, const attest::Policy& policy, const attest::Verifier& verifier,
                              const AttestedTlsOptions& options);
}  // namespace

AttestedTlsResult verify_attested_tls(std::string_view url, const attest::Policy& policy, const attest::TrustAnchor& root,
                                      const AttestedTlsOptions& options) {
  attest::Verifier verifier(root, {.chain_cache = false, .clock = options.clock});
  return verify_with(url, policy, verifier, options);
}

namespace {

AttestedTlsResult verify_with(std::string_view url, const attest::Policy& policy, const attest::Verifier& verifier,
                              const AttestedTlsOptions& options) {
  TlsTarget target = parse_tls_target(url);
  if (options.nonce_size < 1 || options.nonce_size > 512) throw Error(Errc::kUsage, "the attestation nonce is 1..512 bytes");

  // No CA, no name: what the certificate claims is irrelevant until the document vouches for its key.
  PinnedSslCtx ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw_openssl("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  UniqueFd fd;
  SslPtr ssl = open_ssl(ctx.get(), target, options.timeout, fd);
  ERR_clear_error();
  SigpipeBlock quiet;
  if (int rc = SSL_connect(ssl.get()); rc != 1) throw_io(ssl.get(), rc, "TLS handshake with " + tls_authority(target));

  AttestedTlsResult r;
  {
    ossl::Ptr<X509> peer(SSL_get1_peer_certificate(ssl.get()));
    if (!peer) throw Error(Errc::kVerify, "attested TLS: " + tls_authority(target) + " sent no certificate");
    unsigned char* der = nullptr;
    int n = i2d_X509(peer.get(), &der);
    if (n <= 0) throw_openssl("i2d_X509");
    r.certificate_der.assign(der, der + n);
    OPENSSL_free(der);
  }
  r.spki_sha256 = spki_sha256_of_certificate(r.certificate_der);

  Bytes nonce = os_random().bytes(options.nonce_size);
  std::string request = std::string("GET ") + kAttestedTlsPath + "?nonce=" + hex_encode(nonce) + " HTTP/1.1\r\nHost: " +
                        tls_authority(target) + "\r\nAccept: application/cbor\r\nConnection: close\r\n\r\n";
  std::string answer;
  {
    ssl_write_all(ssl.get(), request);
    answer = ssl_read_to_end(ssl.get(), kAttestedTlsMaxResponse + 1);
    SSL_shutdown(ssl.get());  // SIGPIPE still held by `quiet`
    ERR_clear_error();
  }
  r.document = parse_attestation_response(as_bytes(answer));

  attest::Policy p = policy;
  p.nonce = nonce;
  r.claims = verifier.verify(r.document, p);
  r.app_user_data = check_tls_binding(r.claims.user_data, r.spki_sha256);
  r.spki_sha256_hex = hex_encode(r.spki_sha256);
  r.spki_sha256_base64 = base64_encode(r.spki_sha256);
  r.curl_pin = "sha256//" + r.spki_sha256_base64;
  return r;
}

}  // namespace

// ---- verify, pin, re-verify on rotation ----

AttestedTlsClient::AttestedTlsClient(std::string url, attest::Policy policy, attest::TrustAnchor root, AttestedTlsOptions options)
    : url_(std::move(url)),
      target_(parse_tls_target(url_)),
      policy_(std::move(policy)),
      // Re-attestations of one enclave share its chain: verified once, then cached.
      verifier_(std::make_unique<attest::Verifier>(std::move(root), attest::VerifierOptions{.clock = options.clock})),
      options_(options) {}

AttestedTlsClient::~AttestedTlsClient() = default;

AttestedTlsResult AttestedTlsClient::current() {
  std::lock_guard lock(mu_);
  if (!current_) {
    current_ = std::make_shared<AttestedTlsResult>(verify_with(url_, policy_, *verifier_, options_));
    ++verifications_;
  }
  return *current_;
}

uint64_t AttestedTlsClient::verifications() const {
  std::lock_guard lock(mu_);
  return verifications_;
}

PinnedConnection AttestedTlsClient::connect() {
  Bytes pin = current().spki_sha256;
  try {
    return connect_pinned(target_, pin, options_.timeout);
  } catch (const Error& e) {
    if (e.code() != Errc::kVerify) throw;
  }
  // The peer's key changed: attest the new one; connect only if it is the key now pinned. A
  // connection that waited while another re-attested takes that result instead.
  Bytes fresh_pin;
  {
    std::lock_guard reattesting(reattest_mu_);
    fresh_pin = current().spki_sha256;
    if (fresh_pin == pin) {
      auto fresh = std::make_shared<AttestedTlsResult>(verify_with(url_, policy_, *verifier_, options_));
      std::lock_guard lock(mu_);
      current_ = fresh;
      ++verifications_;
      fresh_pin = fresh->spki_sha256;
    }
  }
  return connect_pinned(target_, fresh_pin, options_.timeout);
}

}  // namespace shield_nitro::parent
