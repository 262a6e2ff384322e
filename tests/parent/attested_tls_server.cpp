#include "attested_tls_server.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <stdexcept>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/nsm/client.h"
#include "shield_nitro/parent/attested_tls.h"

namespace sn_test {

using namespace shield_nitro;

namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};

ossl::Ptr<EVP_PKEY> new_key() {
  ossl::Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error("EVP_EC_gen failed");
  return key;
}

Bytes spki_hash(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0) throw std::runtime_error("i2d_PUBKEY failed");
  Bytes d(32);
  SHA256(der, static_cast<size_t>(n), d.data());
  OPENSSL_free(der);
  return d;
}

void set_timeouts(int fd) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Reads one request head (up to 8 KiB) from a TLS session; empty when the peer went away.
std::string read_head(SSL* ssl) {
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
    size_t n = 0;
    if (SSL_read_ex(ssl, buf, sizeof buf, &n) != 1) return {};
    head.append(buf, n);
  }
  return head;
}

void write_all(SSL* ssl, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    size_t n = 0;
    if (SSL_write_ex(ssl, s.data() + off, s.size() - off, &n) != 1) return;
    off += n;
  }
}

std::string http(int status, const std::string& reason, const std::string& type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace

struct AttestedTlsServer::Identity {
  ossl::Ptr<EVP_PKEY> key;
  ossl::Ptr<X509> cert;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx;
  Bytes spki_sha256;

  Identity() : key(new_key()), cert(X509_new()) {
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("shield-nitro test enclave"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    X509_set_pubkey(cert.get(), key.get());
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) throw std::runtime_error("X509_sign failed");
    ctx.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
    if (SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1 || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1)
      throw std::runtime_error("SSL_CTX_use_certificate failed");
    spki_sha256 = spki_hash(key.get());
  }
};

AttestedTlsServer::AttestedTlsServer() : identity_(std::make_shared<Identity>()) {}

AttestedTlsServer::AttestedTlsServer(std::shared_ptr<nsm::SimulatedNsm> nsm, Behaviour behaviour, Bytes app_user_data)
    : nsm_(std::move(nsm)), behaviour_(behaviour), app_user_data_(std::move(app_user_data)), identity_(std::make_shared<Identity>()) {
  start();
}

std::unique_ptr<AttestedTlsServer> AttestedTlsServer::relay_to(uint16_t upstream_port) {
  std::unique_ptr<AttestedTlsServer> s(new AttestedTlsServer());
  s->upstream_port_ = upstream_port;
  s->start();
  return s;
}

void AttestedTlsServer::start() {
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up mid-answer must not end the test
  net::Endpoint ep = net::Endpoint::tcp("127.0.0.1", 0);
  listen_fd_ = net::listen(ep);
  port_ = net::bound_endpoint(listen_fd_.get(), ep).port;
  acceptor_ = std::thread([this] {
    while (!stop_) {
      pollfd p{listen_fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept(listen_fd_.get(), nullptr, nullptr);
      if (fd < 0) continue;
      std::lock_guard lock(workers_mu_);
      workers_.emplace_back([this, fd] { serve(UniqueFd(fd)); });
    }
  });
}

AttestedTlsServer::~AttestedTlsServer() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::lock_guard lock(workers_mu_);
  for (auto& t : workers_) t.join();
}

Bytes AttestedTlsServer::spki_sha256() const {
  std::lock_guard lock(mu_);
  return identity_->spki_sha256;
}

void AttestedTlsServer::rotate() {
  auto fresh = std::make_shared<Identity>();
  std::lock_guard lock(mu_);
  identity_ = fresh;
}

void AttestedTlsServer::serve(UniqueFd fd) {
  set_timeouts(fd.get());
  if (upstream_port_ != 0 && !intercept_) return pass_through(fd.get());
  serve_tls(fd.get());
}

void AttestedTlsServer::pass_through(int fd) {
  UniqueFd up;
  try {
    up = net::connect(net::Endpoint::tcp("127.0.0.1", upstream_port_));
  } catch (const Error&) {
    return;
  }
  pollfd p[2] = {{fd, POLLIN, 0}, {up.get(), POLLIN, 0}};
  char buf[16384];
  while (!stop_) {
    if (::poll(p, 2, 100) < 0) return;
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n <= 0) return;
      if (::send(p[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) return;
    }
  }
}

void AttestedTlsServer::serve_tls(int fd) {
  std::shared_ptr<Identity> id;
  {
    std::lock_guard lock(mu_);
    id = identity_;
  }
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(id->ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  if (SSL_accept(ssl.get()) != 1) {
    ERR_clear_error();
    return;
  }
  std::string head = read_head(ssl.get());
  if (head.empty()) return;
  std::string line = head.substr(0, head.find("\r\n"));
  std::string answer;
  if (line.rfind(std::string("GET ") + parent::kAttestedTlsPath, 0) == 0) {
    answer = attestation_answer(line, head);
  } else {
    answer = http(200, "OK", "text/plain", kAppAnswer);
  }
  write_all(ssl.get(), answer);
  SSL_shutdown(ssl.get());
  ERR_clear_error();
}

std::string AttestedTlsServer::attestation_answer(const std::string& line, const std::string& raw_request) {
  ++attestations_;
  if (upstream_port_ != 0) {
    // The intercepting parent: it has no NSM, so it asks the enclave and relays the answer.
    try {
      parent::TlsTarget up{"127.0.0.1", upstream_port_};
      std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
      UniqueFd fd = net::connect(net::Endpoint::tcp(up.host, up.port));
      set_timeouts(fd.get());
      std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
      SSL_set_fd(ssl.get(), fd.get());
      if (SSL_connect(ssl.get()) != 1) return http(502, "Bad Gateway", "text/plain", "");
      write_all(ssl.get(), raw_request);
      std::string out;
      char buf[4096];
      size_t n = 0;
      while (SSL_read_ex(ssl.get(), buf, sizeof buf, &n) == 1) out.append(buf, n);
      ERR_clear_error();
      return out;
    } catch (const Error&) {
      return http(502, "Bad Gateway", "text/plain", "");
    }
  }
  // "GET /.well-known/shield-nitro/attestation?nonce=HEX HTTP/1.1"
  std::string target = line.substr(4, line.find(' ', 4) - 4);
  std::string prefix = std::string(parent::kAttestedTlsPath) + "?nonce=";
  if (target.rfind(prefix, 0) != 0) return http(400, "Bad Request", "text/plain", "nonce required\n");
  std::string hex = target.substr(prefix.size());
  Bytes nonce;
  try {
    if (hex.size() < 2 || hex.size() > 1024) throw Error(Errc::kFormat, "size");
    nonce = hex_decode(hex);
  } catch (const Error&) {
    return http(400, "Bad Request", "text/plain", "nonce must be 1..512 bytes of hex\n");
  }
  nsm::AttestationRequest req;
  Bytes spki;
  {
    std::lock_guard lock(mu_);
    spki = identity_->spki_sha256;
  }
  if (behaviour_ == Behaviour::kOtherKey) spki = spki_hash(new_key().get());
  if (behaviour_ != Behaviour::kNoBinding) {
    Bytes user_data(parent::kAttestedTlsTag, parent::kAttestedTlsTag + 8);
    user_data.insert(user_data.end(), spki.begin(), spki.end());
    user_data.insert(user_data.end(), app_user_data_.begin(), app_user_data_.end());
    req.user_data = user_data;
  }
  req.nonce = behaviour_ == Behaviour::kWrongNonce ? Bytes(nonce.size(), 0x5a) : nonce;
  nsm::NsmClient client(std::make_unique<nsm::SimulatorTransport>(nsm_));
  Bytes doc = client.attestation(req);
  return http(200, "OK", "application/cbor", to_string(doc));
}

}  // namespace sn_test
