// Attested TLS, client side (issue 15): the parsers of untrusted answers, the C++ procedure
// against the test enclave side (attested_tls_server.h) and a parent in the middle, the pinned
// OpenSSL context, re-attestation on rotation, and the CLI (`attest tls`) with curl using its pin.
#include "shield_nitro/parent/attested_tls.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <fstream>
#include <thread>
#include <vector>

#include "attested_tls_server.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "support/expect_error.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace shield_nitro::parent {
namespace {

using sn_test::AttestedTlsServer;
using test_support::code_of;
using test_support::message_of;

// ---- parsers ----

TEST(AttestedTlsClientParse, Targets) {
  TlsTarget t = parse_tls_target("https://enclave.example:8443/x?y");
  EXPECT_EQ(t.host, "enclave.example");
  EXPECT_EQ(t.port, 8443);
  t = parse_tls_target("127.0.0.1:1");
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, 1);
  t = parse_tls_target("HTTPS://[::1]:65535");
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.port, 65535);
  for (const char* bad : {"", "http://h:1", "https://h", "https://h:", "https://h:0", "https://h:65536", "https://h:1x",
                          "https://:443", "https://u@h:1", "::1:443", "[::1]443", "[::1", "https://h:0000001"})
    EXPECT_EQ(code_of([&] { parse_tls_target(bad); }), Errc::kUsage) << bad;
}

TEST(AttestedTlsClientParse, AuthorityBracketsOnlyIpv6) {
  EXPECT_EQ(tls_authority(parse_tls_target("https://enclave.example:8443/x")), "enclave.example:8443");
  EXPECT_EQ(tls_authority(parse_tls_target("127.0.0.1:1")), "127.0.0.1:1");
  EXPECT_EQ(tls_authority(parse_tls_target("https://[::1]:65535")), "[::1]:65535");
}

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

TEST(AttestedTlsClientParse, Responses) {
  EXPECT_EQ(to_string(parse_attestation_response(bytes_of("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"))), "abc");
  EXPECT_EQ(to_string(parse_attestation_response(bytes_of("HTTP/1.0 200 OK\r\ncontent-type: x\r\n\r\nabcd"))), "abcd");
  EXPECT_EQ(to_string(parse_attestation_response(bytes_of("HTTP/1.1 200\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz"))), "z");
  EXPECT_EQ(code_of([] { parse_attestation_response(bytes_of("HTTP/1.1 429 Too Many Requests\r\n\r\n")); }), Errc::kRemote);
  EXPECT_NE(message_of([] { parse_attestation_response(bytes_of("HTTP/1.1 400 Bad\x01\r\n\r\n")); }).find("400 Bad?"),
            std::string::npos);
  for (const char* bad : {"", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK\r\n", "HTTP/2 200 OK\r\n\r\nx", "HTTP/1.1 2x0 OK\r\n\r\nx",
                          "HTTP/1.1 200OK\r\n\r\nx", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
                          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\na",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nno colon\r\n\r\nabc", "HTTP/1.1 200 OK\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nx"})
    EXPECT_EQ(code_of([&] { parse_attestation_response(bytes_of(bad)); }), Errc::kFormat) << bad;
  std::string huge = "HTTP/1.1 200 OK\r\n\r\n" + std::string(kAttestedTlsMaxResponse, 'x');
  EXPECT_EQ(code_of([&] { parse_attestation_response(bytes_of(huge)); }), Errc::kFormat);
}

attest::OptionalBytes present(Bytes b) {
  attest::OptionalBytes o;
  o.presence = attest::Presence::kBytes;
  o.value = std::move(b);
  return o;
}

TEST(AttestedTlsClientParse, Binding) {
  Bytes key(32, 0x11);
  Bytes ud = bytes_of("sn-tls/1");
  ud.insert(ud.end(), key.begin(), key.end());
  EXPECT_TRUE(check_tls_binding(present(ud), key).empty());
  Bytes with_app = ud;
  with_app.push_back(0xab);
  EXPECT_EQ(check_tls_binding(present(with_app), key), Bytes{0xab});
  Bytes longest = ud;
  longest.resize(kAttestedTlsBindingSize + kAttestedTlsMaxAppUserData, 1);
  EXPECT_EQ(check_tls_binding(present(longest), key).size(), kAttestedTlsMaxAppUserData);
  longest.push_back(1);
  EXPECT_EQ(code_of([&] { check_tls_binding(present(longest), key); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { check_tls_binding(attest::OptionalBytes{}, key); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { check_tls_binding(present(Bytes(ud.begin(), ud.end() - 1)), key); }), Errc::kVerify);
  Bytes other_tag = ud;
  other_tag[7] = '2';
  EXPECT_EQ(code_of([&] { check_tls_binding(present(other_tag), key); }), Errc::kVerify);
  Bytes other_key(32, 0x12);
  EXPECT_NE(message_of([&] { check_tls_binding(present(ud), other_key); }).find("not the key of this TLS connection"),
            std::string::npos);
  EXPECT_EQ(code_of([&] { check_tls_binding(present(ud), Bytes(31, 0x11)); }), Errc::kVerify);
}

TEST(AttestedTlsClientParse, CertificatesRefuseGarbage) {
  EXPECT_EQ(code_of([] { spki_sha256_of_certificate({}); }), Errc::kFormat);
  EXPECT_EQ(code_of([] { spki_sha256_of_certificate(bytes_of("\x30\x03\x02\x01\x01")); }), Errc::kFormat);
  EXPECT_EQ(code_of([] { make_pinned_ssl_ctx(Bytes(31, 0)); }), Errc::kUsage);
}

// ---- against the test enclave side ----

const Bytes kPcr0 = Bytes(48, 0x42);

// Reads "now" an hour late: documents look an hour old.
class LaggingClock final : public Clock {
 public:
  int64_t now_ms() const override { return system_clock().now_ms() - 3600 * 1000; }
};

class AttestedTlsClientTest : public ::testing::Test {
 protected:
  test_support::TempDir dir{"sn-atls"};
  std::shared_ptr<nsm::SimulatedNsm> sim;
  attest::TrustAnchor root = attest::TrustAnchor::aws();
  std::unique_ptr<AttestedTlsServer> honest;

  void SetUp() override {
    nsm::BootPcrs pcrs;
    pcrs.values[0] = kPcr0;
    sim = nsm::SimulatedNsm::create(dir / "nsm", pcrs);
    root = attest::TrustAnchor::from_pem(sim->root_pem());
    honest = std::make_unique<AttestedTlsServer>(sim);
  }

  attest::Policy policy(Bytes pcr0 = kPcr0) const {
    attest::Policy p;
    p.expect_pcr(0, std::move(pcr0));
    p.max_age_s = 300;
    return p;
  }

  std::string get(PinnedConnection& c) {
    c.write_all("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return c.read_to_end();
  }
};

TEST_F(AttestedTlsClientTest, HonestEnclaveVerifiesAndPins) {
  AttestedTlsResult r = verify_attested_tls(honest->url(), policy(), root);
  EXPECT_EQ(r.spki_sha256, honest->spki_sha256());
  EXPECT_EQ(r.spki_sha256_hex, hex_encode(honest->spki_sha256()));
  EXPECT_EQ(r.curl_pin, "sha256//" + base64_encode(honest->spki_sha256()));
  EXPECT_EQ(spki_sha256_of_certificate(r.certificate_der), r.spki_sha256);
  EXPECT_TRUE(r.app_user_data.empty());
  EXPECT_EQ(r.claims.pcrs.at(0), kPcr0);
  ASSERT_TRUE(r.claims.nonce.has_value());
  EXPECT_EQ(r.claims.nonce.value.size(), 32u);
  EXPECT_EQ(honest->attestations(), 1);

  PinnedConnection c = connect_pinned(parse_tls_target(honest->url()), r.spki_sha256);
  EXPECT_NE(get(c).find(AttestedTlsServer::kAppAnswer), std::string::npos);

  // read_some: the same answer piece by piece, then 0 (and 0 again) once the enclave closed.
  PinnedConnection d = connect_pinned(parse_tls_target(honest->url()), r.spki_sha256);
  d.write_all("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string pieces;
  char buf[7];
  while (size_t n = d.read_some(buf, sizeof buf)) {
    ASSERT_LE(n, sizeof buf);
    pieces.append(buf, n);
  }
  EXPECT_NE(pieces.find(AttestedTlsServer::kAppAnswer), std::string::npos);
  EXPECT_EQ(d.read_some(buf, sizeof buf), 0u);
}

TEST_F(AttestedTlsClientTest, FreshNonceEveryTime) {
  AttestedTlsResult a = verify_attested_tls(honest->url(), policy(), root);
  AttestedTlsResult b = verify_attested_tls(honest->url(), policy(), root, {.nonce_size = 1});
  EXPECT_NE(a.claims.nonce.value, b.claims.nonce.value);
  EXPECT_EQ(b.claims.nonce.value.size(), 1u);
  EXPECT_EQ(code_of([&] { verify_attested_tls(honest->url(), policy(), root, {.nonce_size = 513}); }), Errc::kUsage);
}

TEST_F(AttestedTlsClientTest, AppUserDataFollowsTheBinding) {
  AttestedTlsServer with_app(sim, AttestedTlsServer::Behaviour::kHonest, Bytes{1, 2, 3});
  EXPECT_EQ(verify_attested_tls(with_app.url(), policy(), root).app_user_data, (Bytes{1, 2, 3}));
}

TEST_F(AttestedTlsClientTest, ManInTheMiddleIsRefused) {
  auto relay = AttestedTlsServer::relay_to(honest->port());
  // A blind relay (what the parent is meant to be) is fine: the client sees the enclave's key.
  EXPECT_EQ(verify_attested_tls(relay->url(), policy(), root).spki_sha256, honest->spki_sha256());
  relay->set_intercept(true);
  std::string why = message_of([&] { verify_attested_tls(relay->url(), policy(), root); });
  EXPECT_NE(why.find("not the key of this TLS connection"), std::string::npos) << why;
  EXPECT_EQ(code_of([&] { verify_attested_tls(relay->url(), policy(), root); }), Errc::kVerify);
  EXPECT_GE(relay->attestations(), 2);  // it did forward the requests: the document was genuine
}

TEST_F(AttestedTlsClientTest, DocumentForAnotherKeyIsRefused) {
  AttestedTlsServer other(sim, AttestedTlsServer::Behaviour::kOtherKey);
  EXPECT_EQ(code_of([&] { verify_attested_tls(other.url(), policy(), root); }), Errc::kVerify);
  AttestedTlsServer none(sim, AttestedTlsServer::Behaviour::kNoBinding);
  EXPECT_NE(message_of([&] { verify_attested_tls(none.url(), policy(), root); }).find("not the sn-tls/1 key binding"), std::string::npos);
}

TEST_F(AttestedTlsClientTest, WrongNonceIsRefused) {
  AttestedTlsServer replay(sim, AttestedTlsServer::Behaviour::kWrongNonce);
  std::string why = message_of([&] { verify_attested_tls(replay.url(), policy(), root); });
  EXPECT_NE(why.find("nonce"), std::string::npos) << why;
  EXPECT_EQ(code_of([&] { verify_attested_tls(replay.url(), policy(), root); }), Errc::kPolicy);
}

TEST_F(AttestedTlsClientTest, StaleDocumentIsRefused) {
  LaggingClock late;
  auto old_nsm = nsm::SimulatedNsm::open(dir / "nsm", {.leaf_reuse_ms = 0, .clock = &late});
  AttestedTlsServer stale(old_nsm);
  EXPECT_EQ(code_of([&] { verify_attested_tls(stale.url(), policy(), root); }), Errc::kExpired);
  attest::Policy no_age = policy();
  no_age.max_age_s.reset();
  EXPECT_EQ(verify_attested_tls(stale.url(), no_age, root).spki_sha256, stale.spki_sha256());  // only the age differed
}

TEST_F(AttestedTlsClientTest, WrongPcrsOrRootAreRefused) {
  EXPECT_EQ(code_of([&] { verify_attested_tls(honest->url(), policy(Bytes(48, 0x43)), root); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { verify_attested_tls(honest->url(), policy(), attest::TrustAnchor::aws()); }), Errc::kVerify);
}

TEST_F(AttestedTlsClientTest, NotAnEnclaveIsRefused) {
  // A TLS server answering the app's page to the attestation path: not a document.
  auto relay = AttestedTlsServer::relay_to(1);  // upstream unreachable: forwards fail with 502
  relay->set_intercept(true);
  EXPECT_EQ(code_of([&] { verify_attested_tls(relay->url(), policy(), root); }), Errc::kRemote);
  net::Endpoint ep = net::Endpoint::tcp("127.0.0.1", 0);
  UniqueFd closed = net::listen(ep);
  uint16_t port = net::bound_endpoint(closed.get(), ep).port;
  closed.reset();
  EXPECT_EQ(code_of([&] { verify_attested_tls("127.0.0.1:" + std::to_string(port), policy(), root); }), Errc::kIo);
}

TEST_F(AttestedTlsClientTest, SilentPeerTimesOut) {
  // Accepts TCP (the backlog) but never speaks TLS: the handshake must end at the timeout.
  net::Endpoint ep = net::Endpoint::tcp("127.0.0.1", 0);
  UniqueFd mute = net::listen(ep);
  std::string url = "127.0.0.1:" + std::to_string(net::bound_endpoint(mute.get(), ep).port);
  EXPECT_EQ(code_of([&] { verify_attested_tls(url, policy(), root, {.timeout = std::chrono::milliseconds(200)}); }),
            Errc::kTimeout);
  EXPECT_EQ(code_of([&] { connect_pinned(parse_tls_target(url), Bytes(32, 1), std::chrono::milliseconds(200)); }),
            Errc::kTimeout);
}

TEST_F(AttestedTlsClientTest, PinnedContextRefusesAnotherKeyDistinctly) {
  AttestedTlsResult r = verify_attested_tls(honest->url(), policy(), root);
  auto relay = AttestedTlsServer::relay_to(honest->port());
  PinnedConnection through = connect_pinned(parse_tls_target(relay->url()), r.spki_sha256);  // blind relay: same key
  EXPECT_NE(get(through).find(AttestedTlsServer::kAppAnswer), std::string::npos);
  relay->set_intercept(true);
  std::string why = message_of([&] { connect_pinned(parse_tls_target(relay->url()), r.spki_sha256); });
  EXPECT_NE(why.find("other than the pinned one"), std::string::npos) << why;

  // The raw OpenSSL context: the handshake fails and pin_refused() says why.
  PinnedSslCtx ctx = make_pinned_ssl_ctx(r.spki_sha256);
  UniqueFd fd = net::connect(net::Endpoint::tcp("127.0.0.1", relay->port()));
  SSL* ssl = SSL_new(ctx.get());
  SSL_set_fd(ssl, fd.get());
  EXPECT_NE(SSL_connect(ssl), 1);
  EXPECT_TRUE(pin_refused(ssl));
  SSL_free(ssl);
}

TEST_F(AttestedTlsClientTest, ClientReattestsOnRotationOnly) {
  AttestedTlsClient client(honest->url(), policy(), root);
  PinnedConnection first = client.connect();
  EXPECT_EQ(client.verifications(), 1u);
  PinnedConnection again = client.connect();
  EXPECT_EQ(client.verifications(), 1u);
  Bytes old_key = client.current().spki_sha256;
  honest->rotate();
  PinnedConnection rotated = client.connect();
  EXPECT_EQ(client.verifications(), 2u);
  EXPECT_NE(client.current().spki_sha256, old_key);
  EXPECT_EQ(client.current().spki_sha256, honest->spki_sha256());
  EXPECT_NE(get(rotated).find(AttestedTlsServer::kAppAnswer), std::string::npos);
}

TEST_F(AttestedTlsClientTest, ConcurrentConnectsAcrossARotationReattestOnce) {
  AttestedTlsClient client(honest->url(), policy(), root);
  client.connect();
  const int before = honest->attestations();
  honest->rotate();
  std::vector<std::string> answers(8);
  std::vector<std::thread> threads;
  for (auto& answer : answers)
    threads.emplace_back([this, &client, &answer] {
      try {
        PinnedConnection c = client.connect();
        answer = get(c);
      } catch (const std::exception& e) {
        answer = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& answer : answers) EXPECT_NE(answer.find(AttestedTlsServer::kAppAnswer), std::string::npos) << answer;
  EXPECT_EQ(client.verifications(), 2u);
  EXPECT_EQ(honest->attestations(), before + 1);
  EXPECT_EQ(client.current().spki_sha256, honest->spki_sha256());
}

TEST_F(AttestedTlsClientTest, ClientRefusesAnInterceptorOnReconnect) {
  auto relay = AttestedTlsServer::relay_to(honest->port());
  AttestedTlsClient client(relay->url(), policy(), root);
  client.connect();
  relay->set_intercept(true);
  EXPECT_EQ(code_of([&] { client.connect(); }), Errc::kVerify);
  EXPECT_EQ(client.current().spki_sha256, honest->spki_sha256());  // the pin did not move
}

// ---- the CLI and curl ----

class AttestedTlsClientCli : public AttestedTlsClientTest {
 protected:
  std::string root_pem() {
    std::string path = dir / "root.pem";
    std::ofstream(path) << sim->root_pem();
    return path;
  }
  sn_test::RunResult cli(std::vector<std::string> args) {
    args.insert(args.begin(), {SN_CLI, "attest", "tls"});
    return sn_test::run(args, dir.path());
  }
  std::string pcr_arg(const Bytes& v = kPcr0) { return "0=" + hex_encode(v); }
};

TEST_F(AttestedTlsClientCli, PrintsThePinAndCurlUsesIt) {
  auto r = cli({honest->url(), "--pcr", pcr_arg(), "--root", root_pem(), "--max-age", "300"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::string pin = "sha256//" + base64_encode(honest->spki_sha256());
  EXPECT_NE(r.out.find(hex_encode(honest->spki_sha256())), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("curl --pinnedpubkey '" + pin + "'"), std::string::npos) << r.out;

  auto j = cli({honest->url(), "--pcr", pcr_arg(), "--root", root_pem(), "--json"});
  ASSERT_EQ(r.status, 0) << j.err;
  EXPECT_NE(j.out.find("\"pin\": \"" + pin + "\""), std::string::npos) << j.out;

  // curl with the printed pin: the enclave answers; an interceptor's certificate is refused.
  auto relay = AttestedTlsServer::relay_to(honest->port());
  auto curl = [&](const std::string& url) {
    return sn_test::run({"/usr/bin/curl", "-sS", "--max-time", "20", "--insecure", "--pinnedpubkey", pin, url + "/"}, dir.path());
  };
  auto ok = curl(honest->url());
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.out, AttestedTlsServer::kAppAnswer);
  EXPECT_EQ(curl(relay->url()).status, 0);  // blind relay
  relay->set_intercept(true);
  auto refused = curl(relay->url());
  EXPECT_EQ(refused.status, 90) << refused.err;  // CURLE_SSL_PINNEDPUBKEYNOTMATCH
}

TEST_F(AttestedTlsClientCli, RefusalsExitOneWithOneLine) {
  auto relay = AttestedTlsServer::relay_to(honest->port());
  relay->set_intercept(true);
  AttestedTlsServer other(sim, AttestedTlsServer::Behaviour::kOtherKey);
  AttestedTlsServer replay(sim, AttestedTlsServer::Behaviour::kWrongNonce);
  struct Case {
    std::string url, pcr, expect;
  } cases[] = {{relay->url(), pcr_arg(), "not the key of this TLS connection"},
               {other.url(), pcr_arg(), "not the key of this TLS connection"},
               {replay.url(), pcr_arg(), "nonce"},
               {honest->url(), pcr_arg(Bytes(48, 7)), "PCR0"}};
  for (const auto& c : cases) {
    auto r = cli({c.url, "--pcr", c.pcr, "--root", root_pem()});
    EXPECT_EQ(r.status, 1) << c.url << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  auto j = cli({relay->url(), "--pcr", pcr_arg(), "--root", root_pem(), "--json"});
  EXPECT_EQ(j.status, 1);
  EXPECT_NE(j.out.find("\"valid\": false"), std::string::npos) << j.out;
  EXPECT_EQ(cli({honest->url(), "--pcr", pcr_arg()}).status, 1);  // default AWS root: a simulator is refused
  EXPECT_EQ(cli({"http://127.0.0.1:1", "--pcr", pcr_arg(), "--root", root_pem()}).status, 2);
  EXPECT_EQ(cli({honest->url(), "--pcr", "0=zz", "--root", root_pem()}).status, 2);
}

}  // namespace
}  // namespace shield_nitro::parent
