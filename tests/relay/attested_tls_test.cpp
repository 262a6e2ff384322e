// relay::AttestedTls: the contract of the attested-TLS ingress (docs/runtime.md "Attested TLS")
// with an injected attestation source that records what it was asked, and OpenSSL clients.
#include "shield_nitro/relay/attested_tls.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "relay_test_support.h"
#include "support/echo_server.h"
#include "support/expect_error.h"

using namespace shield_nitro;
using namespace sn_test;
using relay::FirstRequest;

namespace {

// Records every (nonce, user_data) it is asked for; the document is "doc:" || nonce.
struct FakeNsm {
  std::mutex mu;
  std::vector<std::pair<Bytes, Bytes>> calls;
  bool fail = false;
  relay::AttestationSource source() {
    return [this](ByteView nonce, ByteView user_data) {
      std::lock_guard lock(mu);
      if (fail) throw Error(Errc::kIo, "NSM gone");
      calls.emplace_back(Bytes(nonce.begin(), nonce.end()), Bytes(user_data.begin(), user_data.end()));
      Bytes doc = to_bytes(as_bytes("doc:"));
      doc.insert(doc.end(), nonce.begin(), nonce.end());
      return doc;
    };
  }
  size_t count() {
    std::lock_guard lock(mu);
    return calls.size();
  }
};

// A TLS client that verifies nothing (attested TLS pins after attesting, not by CA).
class TlsClient {
 public:
  explicit TlsClient(const net::Endpoint& ep) : fd_(net::connect(ep, std::chrono::seconds(10))) {
    timeval tv{30, 0};  // a hang fails the test instead of blocking it forever
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ctx_ = SSL_CTX_new(TLS_client_method());
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_.get());
    ok_ = SSL_connect(ssl_) == 1;
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ERR_clear_error();
  }
  bool ok() const { return ok_; }
  int version() const { return SSL_version(ssl_); }
  Bytes spki_sha256() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    unsigned char* der = nullptr;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    Bytes d(32);
    SHA256(der, static_cast<size_t>(n), d.data());
    OPENSSL_free(der);
    X509_free(cert);
    return d;
  }
  void send(std::string_view s) {
    size_t n = 0;
    ASSERT_EQ(SSL_write_ex(ssl_, s.data(), s.size(), &n), 1);
  }
  // One record sent in two writes `pause` apart, so the server first finds only its start.
  void send_split(std::string_view s, std::chrono::milliseconds pause) {
    BIO* mem = BIO_new(BIO_s_mem());
    BIO* sock = SSL_get_wbio(ssl_);
    BIO_up_ref(sock);
    SSL_set0_wbio(ssl_, mem);  // the record lands here; the socket BIO is put back below
    size_t n = 0;
    bool ok = SSL_write_ex(ssl_, s.data(), s.size(), &n) == 1;
    char* data = nullptr;
    size_t len = static_cast<size_t>(BIO_get_mem_data(mem, &data));
    std::string record(data, len);
    SSL_set0_wbio(ssl_, sock);
    ASSERT_TRUE(ok);
    ASSERT_GT(record.size(), 3u);
    // MSG_NOSIGNAL: a relay that ended meanwhile must fail the test, not kill it with SIGPIPE.
    ASSERT_EQ(::send(fd_.get(), record.data(), 3, MSG_NOSIGNAL), 3);
    std::this_thread::sleep_for(pause);
    ssize_t rest = static_cast<ssize_t>(record.size() - 3);
    EXPECT_EQ(::send(fd_.get(), record.data() + 3, record.size() - 3, MSG_NOSIGNAL), rest) << "the relay ended";
  }
  void close_notify() { SSL_shutdown(ssl_); }
  // Everything until the server's close_notify or FIN.
  std::string read_all() { return read_n(SIZE_MAX); }
  std::string read_n(size_t want) {
    std::string out;
    char buf[16384];
    size_t n = 0;
    while (out.size() < want && SSL_read_ex(ssl_, buf, std::min(sizeof buf, want - out.size()), &n) == 1) out.append(buf, n);
    return out;
  }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
};

struct Response {
  int status = 0;
  std::string head, body;
};
Response parse(const std::string& raw) {
  Response r;
  size_t end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.head = raw.substr(0, end);
  r.body = raw.substr(end + 4);
  return r;
}

std::string attestation_get(const std::string& nonce_hex) {
  return "GET " + std::string(relay::kAttestationPath) + "?nonce=" + nonce_hex + " HTTP/1.1\r\nHost: enclave\r\n\r\n";
}

// An attested-TLS ingress on 127.0.0.1 in front of `app_port` (an echo server by default).
struct Tls {
  FakeNsm nsm;
  EchoServer echo;
  std::shared_ptr<relay::AttestedTls> tls;
  std::unique_ptr<relay::IngressForwarder> fwd;
  explicit Tls(relay::AttestedTlsOptions o = {}, uint16_t app_port = 0) {
    if (!o.attest) o.attest = nsm.source();
    tls = std::make_shared<relay::AttestedTls>(o);
    relay::IngressOptions io;
    io.name = "ingress test attested-tls";
    io.listen = net::Endpoint::parse("tcp://127.0.0.1:0");
    io.target = net::Endpoint::tcp("127.0.0.1", app_port ? app_port : echo.port());
    io.session = [t = tls](int c, int tg, int s) { return t->serve(c, tg, s); };
    fwd = std::make_unique<relay::IngressForwarder>(io);
    fwd->start();
  }
  Response attest(const std::string& nonce_hex, Bytes* spki = nullptr) {
    TlsClient c(fwd->endpoint());
    EXPECT_TRUE(c.ok());
    if (spki) *spki = c.spki_sha256();
    c.send(attestation_get(nonce_hex));
    return parse(c.read_all());
  }
};

void expect_usage(const std::function<void()>& fn, const std::string& text) {
  auto e = test_support::thrown<Error>(fn);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::kUsage);
  EXPECT_NE(std::string(e->what()).find(text), std::string::npos) << e->what();
}

Bytes expected_user_data(const Bytes& spki, const Bytes& app = {}) {
  Bytes u = to_bytes(as_bytes("sn-tls/1"));
  u.insert(u.end(), spki.begin(), spki.end());
  u.insert(u.end(), app.begin(), app.end());
  return u;
}

}  // namespace

TEST(AttestedTlsParser, ClassifiesTheFirstBytes) {
  const std::string path(relay::kAttestationPath);
  EXPECT_EQ(relay::classify_first_request(""), FirstRequest::kNeedMore);
  EXPECT_EQ(relay::classify_first_request("GE"), FirstRequest::kNeedMore);
  EXPECT_EQ(relay::classify_first_request("GET /.well-known/shield"), FirstRequest::kNeedMore);
  EXPECT_EQ(relay::classify_first_request("GET " + path), FirstRequest::kNeedMore);
  EXPECT_EQ(relay::classify_first_request("GET " + path + "?"), FirstRequest::kAttestation);
  EXPECT_EQ(relay::classify_first_request("POST " + path + " HTTP/1.1"), FirstRequest::kAttestation);
  EXPECT_EQ(relay::classify_first_request("GET " + path + "\r\n"), FirstRequest::kAttestation);
  EXPECT_EQ(relay::classify_first_request("GET " + path + "x"), FirstRequest::kForward);
  EXPECT_EQ(relay::classify_first_request("GET /index.html HTTP/1.1\r\n"), FirstRequest::kForward);
  EXPECT_EQ(relay::classify_first_request("get " + path + "?"), FirstRequest::kForward);
  EXPECT_EQ(relay::classify_first_request(std::string("\x16\x03\x01", 3)), FirstRequest::kForward);
  EXPECT_EQ(relay::classify_first_request("GET  " + path), FirstRequest::kForward);
  EXPECT_EQ(relay::classify_first_request(std::string(17, 'A')), FirstRequest::kForward);
}

TEST(AttestedTlsParser, NonceBoundsAndStrictness) {
  auto parse_line = [](const std::string& line) { return relay::parse_attestation_request(line + "\r\n\r\n"); };
  const std::string path(relay::kAttestationPath);
  auto ok = parse_line("GET " + path + "?nonce=0aFF HTTP/1.1");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.nonce, (Bytes{0x0a, 0xff}));
  EXPECT_EQ(parse_line("GET " + path + "?nonce=00 HTTP/1.0").nonce, Bytes{0});
  EXPECT_EQ(parse_line("GET " + path + "?nonce=" + std::string(1024, 'e') + " HTTP/1.1").nonce.size(), 512u);
  for (const std::string& bad : {
           "GET " + path + "?nonce= HTTP/1.1",                              // empty
           "GET " + path + "?nonce=0 HTTP/1.1",                             // odd
           "GET " + path + "?nonce=" + std::string(1026, 'e') + " HTTP/1.1",  // 513 bytes
           "GET " + path + "?nonce=zz HTTP/1.1",
           "GET " + path + "?nonce=00&x=1 HTTP/1.1",
           "GET " + path + "?x=1&nonce=00 HTTP/1.1",
           "GET " + path + " HTTP/1.1",
           "POST " + path + "?nonce=00 HTTP/1.1",
           "GET " + path + "?nonce=00 HTTP/2",
           "GET " + path + "?nonce=00  HTTP/1.1",
           "GET " + path + "?nonce=00",
       }) {
    auto r = parse_line(bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_FALSE(r.error.empty());
    EXPECT_EQ(r.error.find('\n'), std::string::npos);
  }
  EXPECT_EQ(relay::parse_attestation_request("GET " + path + "?nonce=00 HTTP/1.1").status, 400);  // no CRLF
}

TEST(AttestedTls, DocumentBindsTheCertificateOfThatConnection) {
  relay::AttestedTlsOptions o;
  o.app_user_data = {1, 2, 3};
  Tls t(o);
  TlsClient c(t.fwd->endpoint());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.version(), TLS1_3_VERSION);
  c.send(attestation_get("00112233445566778899aabbccddeeff"));
  Response r = parse(c.read_all());
  ASSERT_EQ(r.status, 200) << r.head;
  EXPECT_NE(r.head.find("Content-Type: application/cbor"), std::string::npos);
  EXPECT_NE(r.head.find("Connection: close"), std::string::npos);
  Bytes nonce = hex_decode("00112233445566778899aabbccddeeff");
  Bytes doc = to_bytes(as_bytes("doc:"));
  doc.insert(doc.end(), nonce.begin(), nonce.end());
  EXPECT_EQ(to_bytes(as_bytes(r.body)), doc);
  ASSERT_EQ(t.nsm.count(), 1u);
  EXPECT_EQ(t.nsm.calls[0].first, nonce);
  EXPECT_EQ(t.nsm.calls[0].second, expected_user_data(c.spki_sha256(), {1, 2, 3}));
  EXPECT_EQ(c.spki_sha256(), t.tls->spki_sha256());
  EXPECT_EQ(t.tls->stats().attestations, 1u);
}

TEST(AttestedTls, P384KeyAndCertificateValidity) {
  relay::AttestedTlsOptions o;
  o.key = runtime::TlsKeyType::kP384;
  o.rotate_every = std::chrono::hours(2);
  Tls t(o);
  std::string pem = t.tls->certificate_pem();
  ossl::Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ossl::Ptr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(cert);
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  EXPECT_EQ(EVP_PKEY_get_bits(key), 384);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert.get()), X509_get0_notAfter(cert.get())), 1);
  EXPECT_EQ(days * 86400 + secs, 2 * 3600 + 3600 + 300);  // rotation + 1 h, from 5 min back
  Bytes spki;
  EXPECT_EQ(t.attest("ab", &spki).status, 200);
  EXPECT_EQ(t.nsm.calls.at(0).second, expected_user_data(spki));
}

TEST(AttestedTls, BadNoncesAre400AndNeverReachTheNsm) {
  Tls t;
  EXPECT_EQ(t.attest("0").status, 400);
  EXPECT_EQ(t.attest("").status, 400);
  EXPECT_EQ(t.attest(std::string(1026, 'a')).status, 400);
  Response r = t.attest("00&more=1");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("nonce"), std::string::npos);
  EXPECT_EQ(t.attest(std::string(1024, 'a')).status, 200);
  EXPECT_EQ(t.nsm.count(), 1u);
  EXPECT_EQ(t.tls->stats().bad_requests, 4u);
  // A head that never ends within 8 KiB.
  TlsClient c(t.fwd->endpoint());
  c.send("GET " + std::string(relay::kAttestationPath) + "?nonce=00 HTTP/1.1\r\nX: " + std::string(9000, 'x'));
  EXPECT_EQ(parse(c.read_all()).status, 400);
}

TEST(AttestedTls, RateLimitedByATokenBucket) {
  relay::AttestedTlsOptions o;
  o.burst = 3;
  o.per_s = 0;  // never refilled: the fourth document is refused whenever it comes
  Tls t(o);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.attest("01").status, 200);
  Response r = t.attest("01");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.head.find("Retry-After: 1"), std::string::npos);
  EXPECT_EQ(t.nsm.count(), 3u);
  EXPECT_EQ(t.tls->stats().rate_limited, 1u);
  // The app is not rate limited.
  TlsClient c(t.fwd->endpoint());
  c.send("ping");
  EXPECT_EQ(c.read_n(4), "ping");
}

TEST(AttestedTls, AttestationSourceFailureIs503) {
  Tls t;
  t.nsm.fail = true;
  EXPECT_EQ(t.attest("01").status, 503);
}

TEST(AttestedTls, RotationMakesANewKeyThatTheNextDocumentNames) {
  Tls t;
  Bytes before = t.tls->spki_sha256(), seen;
  ASSERT_EQ(t.attest("01", &seen).status, 200);
  EXPECT_EQ(seen, before);
  t.tls->rotate();
  Bytes after = t.tls->spki_sha256();
  EXPECT_NE(after, before);
  ASSERT_EQ(t.attest("02", &seen).status, 200);
  EXPECT_EQ(seen, after);
  EXPECT_EQ(t.nsm.calls.at(1).second, expected_user_data(after));
  EXPECT_EQ(t.tls->stats().rotations, 1u);
}

TEST(AttestedTls, RotationScheduleGivesLaterConnectionsANewKey) {
  relay::AttestedTlsOptions o;
  o.rotate_every = std::chrono::seconds(0);  // due at every connection
  Tls t(o);
  Bytes a, b;
  ASSERT_EQ(t.attest("01", &a).status, 200);
  ASSERT_EQ(t.attest("02", &b).status, 200);
  EXPECT_NE(a, b);
  EXPECT_EQ(t.nsm.calls.at(0).second, expected_user_data(a));
  EXPECT_EQ(t.nsm.calls.at(1).second, expected_user_data(b));
}

TEST(AttestedTls, OtherFirstRequestsAreForwardedByteExact) {
  Tls t;
  std::string bin;
  for (int i = 0; i < 256; ++i) bin.push_back(static_cast<char>(i));
  for (const std::string& first : {
           std::string("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n") + bin,
           "GET " + std::string(relay::kAttestationPath) + "x?nonce=00 HTTP/1.1\r\n\r\n",
           bin,
       }) {
    TlsClient c(t.fwd->endpoint());
    ASSERT_TRUE(c.ok());
    c.send(first);
    EXPECT_EQ(c.read_n(first.size()), first);
    c.close_notify();
    ::shutdown(c.fd(), SHUT_WR);
    EXPECT_EQ(c.read_all(), "");  // the echo's FIN came back as the end of the stream
  }
  // A first request trickled in one byte at a time, deciding only at its 40th byte.
  TlsClient c(t.fwd->endpoint());
  std::string first = "GET /.well-known/shield-nitro/other HTTP/1.1\r\n\r\n";
  for (char ch : first) c.send(std::string(1, ch));
  EXPECT_EQ(c.read_n(first.size()), first);
  EXPECT_EQ(t.nsm.count(), 0u);
}

TEST(AttestedTls, LargeTransfersBothWays) {
  Tls t;
  TlsClient c(t.fwd->endpoint());
  std::string data(4 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + (i >> 12));
  std::string got;
  std::thread reader([&] { got = c.read_n(data.size()); });
  c.send(data);
  reader.join();
  EXPECT_TRUE(got == data);
}

TEST(AttestedTls, HalfCloseFromTheClientStillGetsTheAnswer) {
  Tls t;
  for (int round = 0; round < 10; ++round) {
    TlsClient c(t.fwd->endpoint());
    std::string data(50000 + round, static_cast<char>('a' + round));
    c.send(data);
    c.close_notify();  // TLS half-close, then TCP's: the echo's answer must still come back whole
    ::shutdown(c.fd(), SHUT_WR);
    EXPECT_TRUE(c.read_all() == data) << round;
  }
}

TEST(AttestedTls, AttestsWhileTheAppIsNotListeningYet) {
  Tls t({}, dead_port());
  EXPECT_EQ(t.attest("0102").status, 200);
  TlsClient c(t.fwd->endpoint());
  ASSERT_TRUE(c.ok());
  c.send("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(c.read_all(), "");  // closed, as passthrough closes
  EXPECT_EQ(t.fwd->stats().failed_connects, 2u);
}

TEST(AttestedTls, AnAppThatSpeaksFirstIsRelayed) {
  UniqueFd l = net::listen(net::Endpoint::parse("tcp://127.0.0.1:0"));
  uint16_t port = static_cast<uint16_t>(net::bound_endpoint(l.get(), net::Endpoint::parse("tcp://127.0.0.1:0")).port);
  std::thread app([&] {
    UniqueFd c(::accept(l.get(), nullptr, nullptr));
    write_all(c.get(), as_bytes(std::string("220 hello\r\n")));
    ::shutdown(c.get(), SHUT_WR);
    uint8_t b[16];
    while (::recv(c.get(), b, sizeof b, 0) > 0) {
    }
  });
  {
    Tls t({}, port);
    TlsClient c(t.fwd->endpoint());
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c.read_all(), "220 hello\r\n");
  }
  app.join();
}

TEST(AttestedTls, GarbageAndSlowClientsAreClosedAndServingGoesOn) {
  relay::AttestedTlsOptions o;
  o.first_request_timeout = std::chrono::milliseconds(100);
  Tls t(o);
  {
    UniqueFd fd = net::connect(t.fwd->endpoint());
    write_all(fd.get(), as_bytes(std::string("GET / HTTP/1.1\r\n\r\n")));  // not TLS
    EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(30)));
  }
  {
    UniqueFd fd = net::connect(t.fwd->endpoint());  // never says hello
    EXPECT_TRUE(wait_closed(fd.get(), std::chrono::seconds(30)));
  }
  {
    TlsClient c(t.fwd->endpoint());  // stalls inside its first request
    ASSERT_TRUE(c.ok());
    c.send("GET /.well-known/shield");
    EXPECT_EQ(c.read_all(), "");
  }
  EXPECT_GE(t.tls->stats().failed_tls, 2u);
  EXPECT_EQ(t.attest("01").status, 200);
}

TEST(AttestedTls, StopEndsOpenSessions) {
  Tls t;
  TlsClient c(t.fwd->endpoint());
  ASSERT_TRUE(c.ok());
  c.send("x");
  EXPECT_EQ(c.read_n(1), "x");
  t.fwd->stop();  // returns although the client keeps its connection open
  EXPECT_EQ(c.read_all(), "");
}

TEST(AttestedTls, ManyKeepAliveConnectionsAtOnceAreRelayedByteExact) {
  // After its first request a connection is relayed on loops shared by all (one per core):
  // 64 connections interleave their requests there, and each gets its own bytes back in order.
  Tls t;
  constexpr int kClients = 64, kRounds = 20;
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      TlsClient c(t.fwd->endpoint());
      if (!c.ok()) return;
      bool same = true;
      for (int r = 0; r < kRounds && same; ++r) {
        std::string req = "req " + std::to_string(i) + "/" + std::to_string(r) + " " +
                          std::string(100 + static_cast<size_t>(i * 37 + r * 101) % 3000, static_cast<char>('a' + i % 26));
        c.send(req);
        same = c.read_n(req.size()) == req;
      }
      c.close_notify();
      ::shutdown(c.fd(), SHUT_WR);
      if (same && c.read_all().empty()) good++;
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(good, kClients);
}

TEST(AttestedTls, RecordsThatArriveTogetherAreAllRelayed) {
  // The server reads ahead: one recv can take several records, and a record already inside
  // OpenSSL's buffer makes no epoll event. Two records in one TCP segment (corked), then silence:
  // both must reach the app.
  Tls t;
  TlsClient c(t.fwd->endpoint());
  ASSERT_TRUE(c.ok());
  c.send("x");
  ASSERT_EQ(c.read_n(1), "x");  // the relay phase has begun
  int on = 1, off = 0;
  ::setsockopt(c.fd(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
  c.send("ab");
  c.send("cd");
  ::setsockopt(c.fd(), IPPROTO_TCP, TCP_CORK, &off, sizeof off);
  EXPECT_EQ(c.read_n(4), "abcd");
}

TEST(AttestedTls, AClientThatResetsEndsOnlyItsOwnRelay) {
  Tls t;
  TlsClient keep(t.fwd->endpoint());
  ASSERT_TRUE(keep.ok());
  keep.send("one");
  EXPECT_EQ(keep.read_n(3), "one");
  {
    TlsClient gone(t.fwd->endpoint());
    ASSERT_TRUE(gone.ok());
    gone.send("two");
    EXPECT_EQ(gone.read_n(3), "two");
    linger lg{1, 0};
    ::setsockopt(gone.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }  // closed with a reset, no close_notify
  for (int i = 0; i < 3000 && t.fwd->stats().active > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(t.fwd->stats().active, 1u);  // its session ended; the other one's did not
  keep.send("three");
  EXPECT_EQ(keep.read_n(5), "three");
}

TEST(AttestedTls, ABadRecordOnOneConnectionLeavesNoErrorForTheOthersOnItsLoop) {
  // A forged record fails one relay on a shared loop thread, whose OpenSSL error queue must then
  // be empty again: a stale entry would make the next SSL_get_error on that thread (another
  // connection's record arriving in two pieces) read as a failure and reset that connection.
  ::signal(SIGPIPE, SIG_IGN);  // a client whose relay was reset fails the test, not the process
  Tls t;
  constexpr int kKeep = 8;  // connections are dealt to the loops (up to 4) in turn
  std::vector<std::unique_ptr<TlsClient>> keep;
  for (int i = 0; i < kKeep; ++i) {
    keep.push_back(std::make_unique<TlsClient>(t.fwd->endpoint()));
    ASSERT_TRUE(keep.back()->ok());
    keep.back()->send("k");
    ASSERT_EQ(keep.back()->read_n(1), "k");
  }
  {
    TlsClient bad(t.fwd->endpoint());
    ASSERT_TRUE(bad.ok());
    bad.send("b");
    ASSERT_EQ(bad.read_n(1), "b");  // relayed on a loop now
    std::string forged = std::string("\x17\x03\x03\x00\x20", 5) + std::string(32, '\x5a');  // fails its tag
    write_all(bad.fd(), as_bytes(forged));
    EXPECT_EQ(bad.read_all(), "");
  }
  for (auto& c : keep) {
    c->send_split("split", std::chrono::milliseconds(20));
    EXPECT_EQ(c->read_n(5), "split");
  }
}

TEST(AttestedTls, RefusesBadOptions) {
  expect_usage([] { relay::AttestedTls x({}); }, "an attestation source is required");
  relay::AttestedTlsOptions o;
  o.attest = [](ByteView, ByteView) { return Bytes{}; };
  o.app_user_data.resize(473);
  expect_usage([&] { relay::AttestedTls x(o); }, "app user_data is 473 bytes, at most 472");
}

TEST(AttestedTls, EnclaveIngressFromTheRuntimeConfig) {
  runtime::IngressConfig entry;
  entry.vsock_port = 5443;
  entry.app_port = 8443;
  entry.mode = runtime::IngressMode::kAttestedTls;
  relay::AttestedTlsOptions base;
  base.attest = [](ByteView, ByteView) { return Bytes{}; };
  relay::IngressOptions o = relay::enclave_attested_tls_ingress(entry, base);
  EXPECT_EQ(o.name, "ingress 5443 attested-tls");
  EXPECT_EQ(o.listen.to_string(), relay::enclave_ingress(entry).listen.to_string());
  EXPECT_EQ(o.target.to_string(), "tcp://127.0.0.1:8443");
  EXPECT_TRUE(static_cast<bool>(o.session));
  entry.user_data.resize(473);
  expect_usage([&] { relay::enclave_attested_tls_ingress(entry, base); }, "at most 472");
}
