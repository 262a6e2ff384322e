#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/error.h"
#include "support/expect_error.h"

using namespace shield_nitro;
using shield_nitro::test_support::code_of;
using namespace shield_nitro::channel;

namespace {

// Runs the handshake with a stand-in document (the verifier is tested elsewhere).
struct Pair {
  std::unique_ptr<SealedBox> client;
  std::shared_ptr<SealedBox> enclave;
  SessionKeys keys;  // what both derived, to build raw messages under the channel's keys

  // A plain Shield under the client-to-enclave key: seals like the client, without seq.
  shield::Shield raw_client_to_enclave() const {
    return shield::Shield::with_key(shield::ShieldKey::from_bytes(keys.client_to_enclave.view()));
  }
};

Pair handshake(ChannelServer& server) {
  ClientHandshake hs;
  auto key = server.current_key();
  Bytes doc = to_bytes(as_bytes("attestation document carrying the key"));
  server.remember_attestation(hs.nonce(), doc, key);
  auto opened = hs.finish(doc, key.spki);
  Pair p;
  p.enclave = server.open(hs.nonce(), opened.client_public);
  p.client = std::make_unique<SealedBox>(opened.keys, Role::kClient);
  p.keys = std::move(opened.keys);
  return p;
}

}  // namespace

TEST(Channel, HandshakeAgreesAndRoundTrips) {
  ChannelServer server;
  Pair p = handshake(server);
  EXPECT_EQ(p.client->session_id(), p.enclave->session_id());
  EXPECT_EQ(server.find(p.client->session_id()), p.enclave);
  Bytes sealed = p.client->seal(as_bytes("classify this"));
  EXPECT_EQ(to_string(p.enclave->open(sealed).view()), "classify this");
  Bytes answer = p.enclave->seal(as_bytes("7"));
  EXPECT_EQ(to_string(p.client->open(answer).view()), "7");
  // The plaintext does not appear in what the parent relays.
  EXPECT_EQ(to_string(sealed).find("classify"), std::string::npos);
}

TEST(Channel, RejectsReplayReflectionAndTampering) {
  ChannelServer server;
  Pair p = handshake(server);
  Bytes m0 = p.client->seal(as_bytes("a"));
  Bytes m1 = p.client->seal(as_bytes("b"));
  Bytes m2 = p.client->seal(as_bytes("c"));
  // Out of order within the window is fine (pipelined requests), each once.
  EXPECT_EQ(to_string(p.enclave->open(m2).view()), "c");
  EXPECT_EQ(to_string(p.enclave->open(m0).view()), "a");
  EXPECT_EQ(to_string(p.enclave->open(m1).view()), "b");
  EXPECT_EQ(code_of([&] { p.enclave->open(m1); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { p.enclave->open(m2); }), Errc::kVerify);
  // A client message reflected back to the client uses the other direction's key.
  Bytes m3 = p.client->seal(as_bytes("d"));
  EXPECT_EQ(code_of([&] { p.client->open(m3); }), Errc::kAuth);
  m3.back() ^= 1;
  EXPECT_EQ(code_of([&] { p.enclave->open(m3); }), Errc::kAuth);
}

TEST(Channel, OldMessagesOutsideTheWindowAreRefused) {
  ChannelServer server;
  Pair p = handshake(server);
  Bytes first = p.client->seal(as_bytes("old"));
  for (uint64_t i = 0; i < kReplayWindow; ++i) p.enclave->open(p.client->seal(as_bytes("x")));
  EXPECT_EQ(code_of([&] { p.enclave->open(first); }), Errc::kVerify);
}

TEST(Channel, SessionsAreIndependent) {
  ChannelServer server;
  Pair a = handshake(server), b = handshake(server);
  EXPECT_NE(a.client->session_id(), b.client->session_id());
  EXPECT_EQ(code_of([&] { b.enclave->open(a.client->seal(as_bytes("x"))); }), Errc::kAuth);
  EXPECT_EQ(server.session_count(), 2u);
  server.close(a.client->session_id());
  EXPECT_EQ(server.find(a.client->session_id()), nullptr);
}

TEST(Channel, NonceOpensOnceAndExpires) {
  FixedClock clock(1'000'000);
  ChannelServerOptions opt;
  opt.clock = &clock;
  ChannelServer server(opt);
  ClientHandshake hs;
  auto key = server.current_key();
  Bytes doc = {1, 2, 3};
  server.remember_attestation(hs.nonce(), doc, key);
  auto opened = hs.finish(doc, key.spki);
  server.open(hs.nonce(), opened.client_public);
  EXPECT_EQ(code_of([&] { server.open(hs.nonce(), opened.client_public); }), Errc::kVerify);

  ClientHandshake late;
  server.remember_attestation(late.nonce(), doc, server.current_key());
  clock.advance_ms(opt.attestation_ttl_ms + 1);
  auto late_open = late.finish(doc, key.spki);
  EXPECT_EQ(code_of([&] { server.open(late.nonce(), late_open.client_public); }), Errc::kVerify);
}

TEST(Channel, TranscriptBindsTheDocument) {
  // A client that saw a different document (e.g. swapped by the parent) derives other keys.
  ChannelServer server;
  ClientHandshake hs;
  auto key = server.current_key();
  server.remember_attestation(hs.nonce(), Bytes{1, 2, 3}, key);
  auto opened = hs.finish(Bytes{1, 2, 4}, key.spki);
  auto enclave = server.open(hs.nonce(), opened.client_public);
  SealedBox client(opened.keys, Role::kClient);
  EXPECT_EQ(code_of([&] { enclave->open(client.seal(as_bytes("x"))); }), Errc::kAuth);
}

TEST(Channel, KeyRotatesOnSchedule) {
  FixedClock clock(0);
  ChannelServerOptions opt;
  opt.clock = &clock;
  ChannelServer server(opt);
  Bytes k1 = server.current_key().spki;
  EXPECT_EQ(server.current_key().spki, k1);
  clock.advance_ms(opt.key_rotation_ms);
  EXPECT_NE(server.current_key().spki, k1);
}

TEST(Channel, RejectsBadKeys) {
  X25519KeyPair kp = X25519KeyPair::generate();
  EXPECT_EQ(code_of([&] { kp.agree(Bytes(31, 1)); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { kp.agree(Bytes(32, 0)); }), Errc::kVerify);  // low-order point
  EXPECT_EQ(code_of([&] { x25519_raw_from_spki(Bytes{0x30, 0x00}); }), Errc::kFormat);
  Bytes spki = kp.public_spki();
  EXPECT_EQ(x25519_raw_from_spki(spki), kp.public_raw());
  spki.push_back(0);
  EXPECT_EQ(code_of([&] { x25519_raw_from_spki(spki); }), Errc::kFormat);
}

// The wire format (session.h): a Shield v4 key-mode message under the direction's key whose
// plaintext is seq (8 bytes, big-endian) || payload, seq counting from 0.
TEST(Channel, SealedMessageIsAShieldMessageOfSeqAndPayload) {
  ChannelServer server;
  Pair p = handshake(server);
  shield::Shield c2e = p.raw_client_to_enclave();
  Bytes out;
  for (uint64_t seq = 0; seq < 3; ++seq) {
    Bytes payload(static_cast<size_t>(100 * seq + 1), static_cast<uint8_t>(seq));
    if (seq == 1) out = p.client->seal(payload);
    else p.client->seal_into(payload, out);
    EXPECT_EQ(out[0], shield::kVersionKey);
    SecureBytes pt = c2e.decrypt(out);
    Bytes expected;
    put_u64be(expected, seq);
    expected.insert(expected.end(), payload.begin(), payload.end());
    EXPECT_EQ(to_bytes(pt.view()), expected);
  }
}

TEST(Channel, OpenIntoReusesItsBufferAndEmptiesItOnFailure) {
  ChannelServer server;
  Pair p = handshake(server);
  SecureBytes payload;
  Bytes sealed;
  for (size_t n : {1000, 0, 10, 5000}) {
    Bytes msg(n, 0x5A);
    p.client->seal_into(msg, sealed);
    p.enclave->open_into(sealed, payload);
    EXPECT_EQ(to_bytes(payload.view()), msg);
  }
  EXPECT_EQ(code_of([&] { p.enclave->open_into(sealed, payload); }), Errc::kVerify);  // replay
  EXPECT_TRUE(payload.empty());
  p.enclave->open_into(p.client->seal(as_bytes("ok")), payload);
  Bytes forged = p.client->seal(as_bytes("x"));
  forged.back() ^= 1;
  EXPECT_EQ(code_of([&] { p.enclave->open_into(forged, payload); }), Errc::kAuth);
  EXPECT_TRUE(payload.empty());
}

// A message too short to hold a sequence number is refused, even under the right key.
TEST(Channel, PlaintextWithoutSequenceNumberIsAFormatError) {
  ChannelServer server;
  Pair p = handshake(server);
  shield::Shield c2e = p.raw_client_to_enclave();
  EXPECT_EQ(code_of([&] { p.enclave->open(c2e.encrypt(Bytes(7, 0))); }), Errc::kFormat);
  EXPECT_EQ(to_string(p.enclave->open(c2e.encrypt(Bytes(8, 0))).view()), "");  // seq 0, empty payload
}

// Many threads seal on one box and open on the other: every seq is handed out once, every
// message opens once, and a second open of any of them is a replay.
TEST(Channel, ConcurrentSealAndOpen) {
  ChannelServer server;
  Pair p = handshake(server);
  constexpr int kThreads = 4, kEach = 200;  // 800 < the replay window, so order does not matter
  std::vector<std::vector<Bytes>> sealed(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) sealed[t].push_back(p.client->seal(Bytes(64, static_cast<uint8_t>(t))));
    });
  for (auto& th : ts) th.join();
  ts.clear();
  std::atomic<int> opened{0}, replays{0};
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      SecureBytes buf;
      for (const Bytes& m : sealed[(t + 1) % kThreads]) {
        p.enclave->open_into(m, buf);
        if (buf.size() == 64 && buf.data()[0] == static_cast<uint8_t>((t + 1) % kThreads)) ++opened;
        if (code_of([&] { p.enclave->open(m); }) == Errc::kVerify) ++replays;
      }
    });
  for (auto& th : ts) th.join();
  EXPECT_EQ(opened.load(), kThreads * kEach);
  EXPECT_EQ(replays.load(), kThreads * kEach);
}
