#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include <nlohmann/json.hpp>
#include "support/expect_error.h"

using namespace shield_nitro;
using shield_nitro::test_support::code_of;
using namespace shield_nitro::channel;

namespace {

// Runs the handshake with a stand-in document (the verifier is tested elsewhere).
struct Pair {
  std::unique_ptr<SealedBox> client;
  std::shared_ptr<SealedBox> enclave;
  SessionKeys keys;  // what both derived, for boxes with other limits
};

Pair handshake(ChannelServer& server, const ChannelParams& params = {}) {
  ClientHandshake hs;
  auto key = server.current_key();
  Bytes doc = to_bytes(as_bytes("attestation document carrying the key"));
  server.remember_attestation(hs.nonce(), doc, key);
  auto opened = hs.finish(doc, key.spki, params);
  Pair p;
  p.enclave = server.open(hs.nonce(), opened.client_public, params);
  p.client = std::make_unique<SealedBox>(opened.keys, Role::kClient);
  p.keys = std::move(opened.keys);
  return p;
}

// Both ends of p's session with other record limits.
std::pair<std::unique_ptr<SealedBox>, std::unique_ptr<SealedBox>> boxes(const Pair& p, const RecordLimits& limits) {
  return {std::make_unique<SealedBox>(p.keys, Role::kClient, limits), std::make_unique<SealedBox>(p.keys, Role::kEnclave, limits)};
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

// Requests are accepted strictly in order: a replay, a reordered record, a record of another
// session and a reply sent as a request are each refused.
TEST(Channel, RefusesReplayReorderingWrongSessionAndDirection) {
  ChannelServer server;
  Pair p = handshake(server), other = handshake(server);
  Bytes m0 = p.client->seal(as_bytes("a"));
  Bytes m1 = p.client->seal(as_bytes("b"));
  EXPECT_EQ(to_string(p.enclave->open(m0).view()), "a");
  EXPECT_EQ(code_of([&] { p.enclave->open(m0); }), Errc::kVerify);  // replay
  EXPECT_EQ(to_string(p.enclave->open(m1).view()), "b");
  // Another session's record, and a reply reflected back as a request.
  EXPECT_EQ(code_of([&] { p.enclave->open(other.client->seal(as_bytes("x"))); }), Errc::kVerify);
  Bytes reply = p.enclave->seal(as_bytes("r"));
  EXPECT_EQ(code_of([&] { p.enclave->open(reply); }), Errc::kVerify);
  // A request reflected back to the client is the wrong direction too.
  Bytes m2 = p.client->seal(as_bytes("c"));
  EXPECT_EQ(code_of([&] { p.client->open(m2); }), Errc::kVerify);
  EXPECT_EQ(to_string(p.client->open_reply(reply, 0).view()), "r");
  EXPECT_EQ(code_of([&] { p.client->open_reply(reply, 0); }), Errc::kVerify);  // a reply opens once
}

TEST(Channel, ReorderedRequestIsRefusedAndAGapEndsTheSession) {
  ChannelServer server;
  RecordLimits limits;
  limits.order_wait_ms = 0;  // no predecessor is coming: fail at once
  Pair p = handshake(server);
  SealedBox enclave(p.keys, Role::kEnclave, limits);
  Bytes m0 = p.client->seal(as_bytes("a"));
  Bytes m1 = p.client->seal(as_bytes("b"));
  EXPECT_EQ(code_of([&] { enclave.open(m1); }), Errc::kVerify);  // 1 before 0: reordered
  EXPECT_EQ(code_of([&] { enclave.open(m0); }), Errc::kVerify);  // the session is over
}

// A worker holding request 1 waits until request 0 (delivered first, run by another worker)
// was accepted, so concurrent workers still accept in wire order.
TEST(Channel, LaterRequestWaitsForItsPredecessor) {
  ChannelServer server;
  Pair p = handshake(server);
  Bytes m0 = p.client->seal(as_bytes("a"));
  Bytes m1 = p.client->seal(as_bytes("b"));
  std::atomic<bool> second_done{false};
  std::thread later([&] {
    p.enclave->open(m1);
    second_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(second_done.load());
  EXPECT_EQ(to_string(p.enclave->open(m0).view()), "a");
  later.join();
  EXPECT_TRUE(second_done.load());
}

// The same record delivered twice at once (a relay racing its own replay): one opens.
TEST(Channel, ConcurrentCopiesOfOneRequestOpenOnce) {
  ChannelServer server;
  Pair p = handshake(server);
  for (int round = 0; round < 50; ++round) {
    Bytes m = p.client->seal(Bytes(4096, 1));
    std::atomic<int> ok{0}, refused{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&] {
        try {
          p.enclave->open(m);
          ++ok;
        } catch (const Error& e) {
          if (e.code() == Errc::kVerify) ++refused;
        }
      });
    for (auto& th : ts) th.join();
    ASSERT_EQ(ok.load(), 1) << round;
    ASSERT_EQ(refused.load(), 3) << round;
  }
}

// A tampered copy is refused and takes no seq: the genuine record still opens after it.
TEST(Channel, FlippedHeaderByteFailsAuthentication) {
  ChannelServer server;
  Pair p = handshake(server);
  Bytes m0 = p.client->seal(as_bytes("a"));
  Bytes flipped = m0;
  flipped[1] ^= kFlagPadded;  // a flag the header check accepts: only the AEAD notices
  EXPECT_EQ(code_of([&] { p.enclave->open(flipped); }), Errc::kAuth);
  EXPECT_EQ(to_string(p.enclave->open(m0).view()), "a");
  flipped = m0;
  flipped[0] = 1;  // an old version byte
  EXPECT_EQ(code_of([&] { parse_record_header(flipped); }), Errc::kVerify);
}

// Replies carry their request's seq and open only for it, in any order.
TEST(Channel, RepliesAnswerTheirRequestInAnyOrder) {
  ChannelServer server;
  Pair p = handshake(server);
  uint64_t s0 = 0, s1 = 0, e0 = 9, e1 = 9;
  Bytes m0 = p.client->seal(as_bytes("a"), &s0);
  Bytes m1 = p.client->seal(as_bytes("b"), &s1);
  p.enclave->open(m0, &e0);
  p.enclave->open(m1, &e1);
  EXPECT_EQ(std::make_pair(e0, e1), std::make_pair(s0, s1));
  Bytes r1, r0;
  p.enclave->seal_reply_into(e1, as_bytes("B"), r1);
  p.enclave->seal_reply_into(e0, as_bytes("A"), r0);
  EXPECT_EQ(code_of([&] { p.enclave->seal_reply_into(e0, as_bytes("again"), r0); }), Errc::kUsage);
  EXPECT_EQ(code_of([&] { p.client->open_reply(r1, s0); }), Errc::kVerify);  // swapped replies
  EXPECT_EQ(to_string(p.client->open_reply(r1, s1).view()), "B");
  EXPECT_EQ(to_string(p.client->open_reply(r0, s0).view()), "A");
}

// The key update with a small threshold: the client ratchets after max_records requests,
// flags the first new record, and the enclave follows; replies use their request's keys.
TEST(Channel, KeysRatchetAtTheRecordBoundary) {
  ChannelServer server;
  Pair p = handshake(server);
  RecordLimits limits;
  limits.max_records = 3;
  auto [client, enclave] = boxes(p, limits);
  for (int i = 0; i < 7; ++i) {
    uint64_t seq = 0;
    Bytes m = client->seal(as_bytes("x"), &seq);
    EXPECT_EQ((m[1] & kFlagKeyUpdate) != 0, i == 3 || i == 6) << i;
    EXPECT_EQ(to_string(enclave->open(m).view()), "x");
    EXPECT_EQ(to_string(client->open_reply(enclave->seal(as_bytes("y")), seq).view()), "y");
  }
  EXPECT_EQ(client->key_epoch(), 2u);
  EXPECT_EQ(enclave->key_epoch(), 2u);
  // A client that does not update its keys past the limit is refused.
  SealedBox lax(p.keys, Role::kClient), strict(p.keys, Role::kEnclave, limits);
  for (int i = 0; i < 3; ++i) strict.open(lax.seal(as_bytes("x")));
  EXPECT_EQ(code_of([&] { strict.open(lax.seal(as_bytes("x"))); }), Errc::kVerify);
}

TEST(Channel, KeysRatchetAtTheByteBoundary) {
  ChannelServer server;
  Pair p = handshake(server);
  RecordLimits limits;
  limits.max_bytes = 1000;
  auto [client, enclave] = boxes(p, limits);
  uint64_t seq = 0;
  enclave->open(client->seal(Bytes(600, 1), &seq));
  client->open_reply(enclave->seal(Bytes(500, 2)), seq);  // replies count too: 1100 >= 1000
  Bytes next = client->seal(Bytes(1, 3));
  EXPECT_NE(next[1] & kFlagKeyUpdate, 0);
  enclave->open(next);
  EXPECT_EQ(enclave->key_epoch(), 1u);
}

TEST(Channel, VersionNegotiationRefusesAnOldPeer) {
  EXPECT_EQ(negotiate({1, 2}, 0).version, 2);
  EXPECT_EQ(negotiate({2}, 128).pad_bucket, 128u);
  try {
    negotiate({}, 0);  // a version-1 SDK offers nothing
    ADD_FAILURE() << "an old peer was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kVerify);
    EXPECT_NE(std::string(e.what()).find("this enclave speaks channel version 2; upgrade the SDK"), std::string::npos);
  }
  EXPECT_EQ(code_of([&] { negotiate({1}, 0); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { negotiate({2}, kMaxPadBucket + 1); }), Errc::kUsage);
}

// The negotiated parameters are bound into the keys: a relay that strips the padding request
// gets another session.
TEST(Channel, NegotiatedParamsAreBoundIntoTheKeys) {
  ChannelServer server;
  ClientHandshake hs;
  auto key = server.current_key();
  Bytes doc = {1, 2, 3};
  server.remember_attestation(hs.nonce(), doc, key);
  auto opened = hs.finish(doc, key.spki, ChannelParams{2, 256});
  auto enclave = server.open(hs.nonce(), opened.client_public, ChannelParams{2, 0});
  EXPECT_NE(enclave->session_id(), opened.keys.session_id);
}

TEST(Channel, PaddingHidesSizesWithinABucket) {
  ChannelServer server;
  Pair p = handshake(server, ChannelParams{2, 64});
  auto& enclave = p.enclave;
  SealedBox& client = *p.client;
  Bytes a = client.seal(Bytes(1, 7)), b = client.seal(Bytes(50, 7)), c = client.seal(Bytes(64, 7));
  EXPECT_EQ(a.size(), b.size());
  EXPECT_EQ(a.size(), kHeaderSize + 64 + kTagSize);
  EXPECT_EQ(c.size(), kHeaderSize + 128 + kTagSize);
  EXPECT_EQ(enclave->open(a).size(), 1u);
  EXPECT_EQ(enclave->open(b).size(), 50u);
  EXPECT_EQ(enclave->open(c).size(), 64u);
}

// docs/protocol.md's vectors, computed from the spec independently of this code
// (tests/channel/data/gen_record_vectors.py); the Python SDK checks the same file.
TEST(Channel, RecordVectors) {
  auto j = nlohmann::json::parse(to_string(read_file(std::string(SN_SOURCE_DIR) + "/tests/channel/data/record_v2_vectors.json")));
  auto hx = [](const nlohmann::json& v) { return hex_decode(v.get<std::string>()); };
  for (const auto& d : j["derive"]) {
    ChannelParams params{static_cast<uint8_t>(d["version"].get<int>()), d["pad"].get<uint32_t>()};
    Bytes t = transcript_hash(hx(d["nonce"]), hx(d["document"]), hx(d["client_public"]), params);
    EXPECT_EQ(hex_encode(t), d["transcript"]);
    SessionKeys k = derive_session_keys(hx(d["shared"]), t);
    EXPECT_EQ(hex_encode(k.client_to_enclave.key.view()), d["c2e_key"]);
    EXPECT_EQ(hex_encode(k.client_to_enclave.iv.view()), d["c2e_iv"]);
    EXPECT_EQ(hex_encode(k.enclave_to_client.key.view()), d["e2c_key"]);
    EXPECT_EQ(hex_encode(k.enclave_to_client.iv.view()), d["e2c_iv"]);
    EXPECT_EQ(hex_encode(k.session_id), d["session_id"]);
  }
  for (const auto& r : j["records"]) {
    DirectionKeys k{SecureBytes(hx(r["key"])), SecureBytes(hx(r["iv"]))};
    Bytes out;
    seal_record(k, static_cast<uint8_t>(r["flags"].get<int>()), hx(r["session_id"]), r["seq"].get<uint64_t>(),
                hx(r["plaintext"]), r["pad"].get<uint32_t>(), out);
    EXPECT_EQ(hex_encode(out), r["record"]);
    SecureBytes back;
    open_record(k, out, back);
    EXPECT_EQ(hex_encode(back.view()), r["plaintext"]);
  }
  for (const auto& r : j["ratchet"]) {
    DirectionKeys next = next_keys(DirectionKeys{SecureBytes(hx(r["key"])), SecureBytes(Bytes(kIvSize))});
    EXPECT_EQ(hex_encode(next.key.view()), r["next_key"]);
    EXPECT_EQ(hex_encode(next.iv.view()), r["next_iv"]);
  }
}

TEST(Channel, SessionsAreIndependent) {
  ChannelServer server;
  Pair a = handshake(server), b = handshake(server);
  EXPECT_NE(a.client->session_id(), b.client->session_id());
  EXPECT_EQ(code_of([&] { b.enclave->open(a.client->seal(as_bytes("x"))); }), Errc::kVerify);
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
  EXPECT_NE(enclave->session_id(), opened.keys.session_id);
  opened.keys.session_id = enclave->session_id();  // even under the enclave's session id
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
  // Same length and shape, another algorithm (Ed25519, OID 1.3.101.112), and a truncated one.
  Bytes ed = hex_decode("302a300506032b6570032100" + std::string(64, '1'));
  EXPECT_EQ(code_of([&] { x25519_raw_from_spki(ed); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { x25519_raw_from_spki(ByteView(kp.public_spki()).first(43)); }), Errc::kFormat);
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

TEST(Channel, ShortRecordIsAFormatError) {
  ChannelServer server;
  Pair p = handshake(server);
  EXPECT_EQ(code_of([&] { p.enclave->open(Bytes(kHeaderSize + kTagSize - 1, 2)); }), Errc::kFormat);
}

// Many threads seal on one box and many open on the other: every seq is handed out once, the
// enclave accepts them in seq order whichever worker holds which, and each opens once.
TEST(Channel, ConcurrentSealAndOpen) {
  ChannelServer server;
  Pair p = handshake(server);
  constexpr int kThreads = 4, kEach = 200;
  std::vector<Bytes> by_seq(kThreads * kEach);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        uint64_t seq = 0;
        Bytes m = p.client->seal(Bytes(64, 1), &seq);
        by_seq[seq] = std::move(m);  // each seq once, so each slot is written by one thread
      }
    });
  for (auto& th : ts) th.join();
  ts.clear();
  std::atomic<int> opened{0}, replays{0};
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      SecureBytes buf;
      for (size_t seq = static_cast<size_t>(t); seq < by_seq.size(); seq += kThreads) {
        uint64_t got = 0;
        p.enclave->open_into(by_seq[seq], buf, &got);
        if (buf.size() == 64 && got == seq) ++opened;
        if (code_of([&] { p.enclave->open(by_seq[seq]); }) == Errc::kVerify) ++replays;
      }
    });
  for (auto& th : ts) th.join();
  EXPECT_EQ(opened.load(), kThreads * kEach);
  EXPECT_EQ(replays.load(), kThreads * kEach);
}

// try_open_into never waits: a request whose predecessor is outstanding is left untouched (it
// can still be accepted in its turn), the next one opens, a replay and a forgery are refused.
TEST(Channel, TryOpenTakesOnlyTheNextRequestAndNeverWaits) {
  ChannelServer server;
  Pair p = handshake(server);
  Bytes m0 = p.client->seal(as_bytes("a"));
  Bytes m1 = p.client->seal(as_bytes("b"));
  SecureBytes out;
  uint64_t seq = 99;
  EXPECT_FALSE(p.enclave->try_open_into(m1, out, &seq));  // 0 has not come: not its turn
  EXPECT_EQ(seq, 99u);
  EXPECT_TRUE(out.empty());
  Bytes forged = m0;
  forged[forged.size() - 1] ^= 1;
  EXPECT_EQ(code_of([&] { p.enclave->try_open_into(forged, out); }), Errc::kAuth);  // takes no seq
  ASSERT_TRUE(p.enclave->try_open_into(m0, out, &seq));
  EXPECT_EQ(seq, 0u);
  EXPECT_EQ(to_string(out.view()), "a");
  EXPECT_EQ(code_of([&] { p.enclave->try_open_into(m0, out); }), Errc::kVerify);  // replay
  ASSERT_TRUE(p.enclave->try_open_into(m1, out, &seq));  // now it is 1's turn
  EXPECT_EQ(seq, 1u);
  EXPECT_EQ(to_string(out.view()), "b");
  Bytes reply;
  p.enclave->seal_reply_into(1, as_bytes("B"), reply);
  EXPECT_EQ(to_string(p.client->open_reply(reply, 1).view()), "B");
  EXPECT_EQ(code_of([&] { p.client->try_open_into(reply, out); }), Errc::kUsage);  // enclave only
}
