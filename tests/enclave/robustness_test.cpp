// The robustness list of issue 4 against the enclave service itself (tests/net/server_test.cpp
// covers net::Server with its own handlers): malformed frames, wrong CBOR types in every
// operation's body (plain and inside the channel), unknown operations, oversize frames, and a
// stream cut off mid-upload. Each time the service answers a structured error or closes only
// that connection, and keeps serving.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <thread>

#include "support/enclave_host.h"
#include "support/net_util.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/shield/stream.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;

namespace {

constexpr size_t kMaxFrame = 64 * 1024;  // small, so oversize frames are cheap to send

struct Robust : ::testing::Test, test_support::EnclaveHost {
  std::string key;

  void SetUp() override {
    enclave::ServiceOptions opts;
    opts.server.max_frame = kMaxFrame;
    start(std::move(opts));
    key = load_data_key();
  }

  bool still_serves() {
    net::Client fresh(service->endpoint());
    return fresh.call("describe").find("keys")->as_array().size() == 1;
  }

  struct Channel {
    Bytes session;
    std::unique_ptr<channel::SealedBox> box;
  };
  Channel open_channel() {
    channel::ClientHandshake hs;
    Bytes doc = client->call("attest", Value::map({entry("nonce", Value::bytes(hs.nonce()))})).find("document")->as_bytes();
    Value payload = cbor::decode(cose::decode_sign1(doc).payload);
    auto opened = hs.finish(doc, payload.find("public_key")->as_bytes());
    Channel c;
    c.session = client->call("channel-open", Value::map({entry("nonce", Value::bytes(hs.nonce())),
                                                         entry("client_public", Value::bytes(opened.client_public)),
                                                         entry("versions", Value::array({Value::uint(channel::kChannelVersion)}))}))
                    .find("session")->as_bytes();
    c.box = std::make_unique<channel::SealedBox>(opened.keys, channel::Role::kClient);
    return c;
  }
  // Seals `inner` as it is (any bytes) and returns the opened reply.
  Value sealed_raw(Channel& c, ByteView inner) {
    Value r = client->call("sealed", Value::map({entry("session", Value::bytes(c.session)), entry("data", Value::bytes(c.box->seal(inner)))}));
    SecureBytes reply = c.box->open(r.find("data")->as_bytes());
    return cbor::decode(reply.view());
  }
  Value sealed_call(Channel& c, const std::string& op, Value body) {
    return sealed_raw(c, cbor::encode(Value::map({entry("op", Value::text(op)), entry("body", std::move(body))})));
  }
};

using sn_test::request_frame;

std::string sealed_code(const Value& reply) {
  if (reply.find("ok")->as_bool()) return "ok";
  return reply.find("error")->find("code")->as_text();
}

Value with(std::initializer_list<std::pair<const char*, Value>> fields) {
  cbor::MapEntries m;
  for (const auto& [k, v] : fields) m.push_back(entry(k, v));
  return Value::map(std::move(m));
}

}  // namespace

TEST_F(Robust, MalformedFramesGetErrorsAndTheConnectionKeepsServing) {
  UniqueFd fd = net::connect(service->endpoint());
  net::FrameDecoder dec;
  // Not CBOR; CBOR but not a map; a map without an id: id 0, format.
  for (Bytes payload : {to_bytes(as_bytes("not cbor")), cbor::encode(Value::array({Value::uint(1)})),
                        cbor::encode(Value::map({entry("v", Value::uint(1)), entry("op", Value::text("describe"))}))}) {
    sn_test::write_all(fd.get(), net::encode_frame(payload));
    auto r = sn_test::read_response(fd.get(), dec);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->ok);
    EXPECT_EQ(r->id, 0u);
    EXPECT_EQ(r->code, Errc::kFormat);
  }
  // An op that is not text, a body that is not a map: the id is known and comes back.
  sn_test::write_all(fd.get(), net::encode_frame(cbor::encode(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(7)),
                                                                          entry("op", Value::uint(3))}))));
  auto r = sn_test::read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 7u);
  EXPECT_EQ(r->code, Errc::kFormat);
  sn_test::write_all(fd.get(), net::encode_frame(cbor::encode(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(8)),
                                                                          entry("op", Value::text("encrypt")),
                                                                          entry("body", Value::array())}))));
  r = sn_test::read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 8u);
  EXPECT_EQ(r->code, Errc::kFormat);
  // A protocol version we do not speak.
  sn_test::write_all(fd.get(), net::encode_frame(cbor::encode(Value::map({entry("v", Value::uint(2)), entry("id", Value::uint(9)),
                                                                          entry("op", Value::text("describe"))}))));
  r = sn_test::read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, Errc::kUnsupported);
  // The same connection still gets real answers.
  sn_test::write_all(fd.get(), request_frame(10, "encrypt", with({{"key", Value::text(key)}, {"plaintext", Value::bytes(Bytes(8, 1))}})));
  r = sn_test::read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok) << r->message;
  EXPECT_EQ(r->id, 10u);
}

TEST_F(Robust, WrongCborTypesInEveryPlainOpBodyAreFormatErrorsNamingTheField) {
  Bytes n32(32, 1), v4 = shield::Shield::with_key(data_key).encrypt(as_bytes("x"));
  Value k = Value::text(key);
  Channel ch = open_channel();  // a live session, so "sealed" gets as far as its data field
  struct Case {
    const char* op;
    Value body;
    Errc code;
    const char* names;  // the message must mention this
  };
  std::vector<Case> cases = {
      {"attest", with({{"nonce", Value::text("n")}}), Errc::kFormat, "nonce"},
      {"attest", with({{"nonce", Value::bytes(Bytes())}}), Errc::kFormat, "nonce"},
      {"attest", with({{"nonce", Value::bytes(Bytes(513, 1))}}), Errc::kFormat, "nonce"},
      {"attest", with({}), Errc::kFormat, "nonce"},
      {"attest", with({{"nonce", Value::bytes(n32)}, {"user_data", Value::uint(5)}}), Errc::kFormat, "user_data"},
      {"channel-open", with({{"nonce", Value::uint(1)}, {"client_public", Value::bytes(n32)}}), Errc::kFormat, "nonce"},
      {"channel-open", with({{"nonce", Value::bytes(n32)}, {"client_public", Value::text("pk")}}), Errc::kFormat, "client_public"},
      {"sealed", with({{"session", Value::uint(1)}, {"data", Value::bytes(v4)}}), Errc::kFormat, "session"},
      {"sealed", with({{"session", Value::bytes(ch.session)}, {"data", Value::text("d")}}), Errc::kFormat, "data"},
      {"sealed", with({{"session", Value::bytes(ch.session)}}), Errc::kFormat, "data"},
      {"set-credentials", with({{"access_key_id", Value::bytes(n32)}, {"secret_access_key", Value::text("s")}}), Errc::kFormat, "access_key_id"},
      {"set-credentials", with({{"access_key_id", Value::text("A")}, {"secret_access_key", Value::uint(1)}}), Errc::kFormat, "secret_access_key"},
      {"set-credentials", with({{"access_key_id", Value::text("A")}, {"secret_access_key", Value::text("s")}, {"session_token", Value::bytes(n32)}}), Errc::kFormat, "session_token"},
      {"set-credentials", with({{"access_key_id", Value::text("A")}, {"secret_access_key", Value::text("s")}, {"expiration", Value::text("soon")}}), Errc::kFormat, "expiration"},
      // Negative or beyond int64: refused (a negative time would overflow the expiry arithmetic).
      {"set-credentials", with({{"access_key_id", Value::text("A")}, {"secret_access_key", Value::text("s")}, {"expiration", Value::integer(INT64_MIN)}}), Errc::kFormat, "expiration"},
      {"set-credentials", with({{"access_key_id", Value::text("A")}, {"secret_access_key", Value::text("s")}, {"expiration", Value::uint(UINT64_MAX)}}), Errc::kFormat, ""},
      {"load-key", with({{"ciphertext_blob", Value::text("b")}}), Errc::kFormat, "ciphertext_blob"},
      {"load-key", with({{"ciphertext_blob", Value::bytes(v4)}, {"key_id", Value::uint(1)}}), Errc::kFormat, "key_id"},
      {"load-key", with({{"ciphertext_blob", Value::bytes(v4)}, {"encryption_context", Value::array()}}), Errc::kFormat, "encryption_context"},
      {"load-key", with({{"ciphertext_blob", Value::bytes(v4)}, {"encryption_context", with({{"app", Value::uint(1)}})}}), Errc::kFormat, "encryption_context"},
      {"load-artifact", with({{"key", k}, {"kind", Value::uint(0)}, {"name", Value::text("m")}}), Errc::kFormat, "kind"},
      {"load-artifact", with({{"key", k}, {"kind", Value::text("weights")}, {"name", Value::text("m")}}), Errc::kUsage, "kind"},
      {"load-artifact", with({{"key", k}, {"kind", Value::text("model")}, {"name", Value::bytes(n32)}}), Errc::kFormat, "name"},
      {"load-artifact", with({{"key", Value::uint(1)}, {"kind", Value::text("model")}, {"name", Value::text("m")}}), Errc::kFormat, "key"},
      {"load-artifact", with({{"key", k}, {"kind", Value::text("code")}, {"name", Value::text("c")}, {"models", Value::text("art-1")}}), Errc::kFormat, "models"},
      {"load-artifact", with({{"key", k}, {"kind", Value::text("code")}, {"name", Value::text("c")}, {"models", Value::array({Value::uint(1)})}, {"data", Value::bytes(v4)}}), Errc::kFormat, ""},
      {"load-artifact", with({{"key", k}, {"kind", Value::text("model")}, {"name", Value::text("m")}, {"data", Value::text("x")}}), Errc::kFormat, "data"},
      {"encrypt", with({{"key", Value::bytes(n32)}, {"plaintext", Value::bytes(n32)}}), Errc::kFormat, "key"},
      {"encrypt", with({{"key", k}, {"plaintext", Value::text("p")}}), Errc::kFormat, "plaintext"},
      {"encrypt", with({{"key", k}}), Errc::kFormat, "plaintext"},
      {"unload", with({{"handle", Value::uint(1)}}), Errc::kFormat, "handle"},
      // Channel-only ops are refused plain before their body is even read.
      {"decrypt", with({{"key", Value::uint(1)}}), Errc::kPolicy, "channel"},
      {"invoke", with({{"artifact", Value::uint(1)}}), Errc::kPolicy, "channel"},
  };
  for (const auto& c : cases) {
    net::Response r = client->request(c.op, c.body);
    EXPECT_FALSE(r.ok) << c.op << " " << cbor::encode(c.body).size();
    EXPECT_EQ(errc_name(r.code), std::string(errc_name(c.code))) << c.op << ": " << r.message;
    EXPECT_NE(r.message.find(c.names), std::string::npos) << c.op << ": " << r.message;
  }
  // Nothing of that changed the state: still one key, no artifact, and no credentials replaced.
  Value d = client->call("describe");
  EXPECT_EQ(d.find("keys")->as_array().size(), 1u);
  EXPECT_TRUE(d.find("artifacts")->as_array().empty());
  EXPECT_TRUE(still_serves());
}

// A relying party's challenge may be any size the NSM takes (1-512 bytes); only a 32-byte one,
// as the channel handshake uses, can then open a channel.
TEST_F(Robust, AttestTakesNoncesOfOneTo512BytesAndOnlyThe32ByteOnesOpenChannels) {
  for (size_t n : {size_t{1}, size_t{31}, size_t{32}, size_t{512}}) {
    Bytes nonce(n, 0x5c);
    Bytes doc = client->call("attest", Value::map({entry("nonce", Value::bytes(nonce))})).find("document")->as_bytes();
    Value payload = cbor::decode(cose::decode_sign1(doc).payload);
    EXPECT_EQ(payload.find("nonce")->as_bytes(), nonce) << n;
  }
  net::Response r = client->request("channel-open", Value::map({entry("nonce", Value::bytes(Bytes(31, 0x5c))),
                                                                entry("client_public", Value::bytes(Bytes(32, 9))),
                                                                entry("versions", Value::array({Value::uint(2)}))}));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("no attestation was issued for this nonce"), std::string::npos) << r.message;
  EXPECT_TRUE(still_serves());
}

TEST_F(Robust, WrongShapesInsideTheChannelStaySealedAndStructured) {
  Channel ch = open_channel();
  Bytes v4 = shield::Shield::with_key(data_key).encrypt(as_bytes("x"));
  // The inner message itself: not CBOR, not a map, op not text, no op, body not a map, no body.
  std::vector<Bytes> bad_inner = {
      to_bytes(as_bytes("not cbor")),
      cbor::encode(Value::array({Value::text("describe")})),
      cbor::encode(with({{"op", Value::uint(1)}, {"body", Value::map()}})),
      cbor::encode(with({{"body", Value::map()}})),
      cbor::encode(with({{"op", Value::text("describe")}, {"body", Value::array()}})),
      cbor::encode(with({{"op", Value::text("describe")}})),
  };
  for (const auto& inner : bad_inner) EXPECT_EQ(sealed_code(sealed_raw(ch, inner)), "format");
  // Channel-only ops with wrong types.
  EXPECT_EQ(sealed_code(sealed_call(ch, "decrypt", with({{"key", Value::uint(1)}, {"ciphertext", Value::bytes(v4)}}))), "format");
  EXPECT_EQ(sealed_code(sealed_call(ch, "decrypt", with({{"key", Value::text(key)}, {"ciphertext", Value::text("c")}}))), "format");
  EXPECT_EQ(sealed_code(sealed_call(ch, "invoke", with({{"artifact", Value::bytes(Bytes(4, 0))}, {"input", Value::bytes(Bytes(1, 0))}}))), "format");
  EXPECT_EQ(sealed_code(sealed_call(ch, "encrypt", with({{"key", Value::text(key)}, {"plaintext", Value::uint(3)}}))), "format");
  EXPECT_EQ(sealed_code(sealed_call(ch, "sealed", with({{"session", Value::bytes(ch.session)}, {"data", Value::bytes(v4)}}))), "usage");
  // The channel is still in step: a good request after all that works.
  Value ok = sealed_call(ch, "decrypt", with({{"key", Value::text(key)}, {"ciphertext", Value::bytes(v4)}}));
  ASSERT_EQ(sealed_code(ok), "ok");
  EXPECT_EQ(ok.find("body")->find("plaintext")->as_bytes(), to_bytes(as_bytes("x")));
}

TEST_F(Robust, UnknownOpsAreUnsupportedPlainStreamedAndSealedAndDoNotGrowStats) {
  EXPECT_EQ(client->request("frobnicate").code, Errc::kUnsupported);
  // A stream for an unknown op: refused once, its parts swallowed, the connection stays usable.
  auto up = client->stream("frobnicate", Value::map());
  try {
    for (int i = 0; i < 3; ++i) up.send(with({{"data", Value::bytes(Bytes(1000, 1))}}));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);  // the refusal may arrive before the parts are all sent
  }
  net::Response r = up.finish();
  EXPECT_EQ(r.code, Errc::kUnsupported);
  EXPECT_TRUE(client->request("describe").ok);
  // Inside the channel: the same code, and made-up names do not become stats entries.
  Channel ch = open_channel();
  for (int i = 0; i < 50; ++i) {
    Value reply = sealed_call(ch, "made-up-op-" + std::to_string(i), Value::map());
    EXPECT_EQ(sealed_code(reply), "unsupported");
  }
  const std::set<std::string> known = {"describe", "attest", "channel-open", "sealed", "set-credentials", "load-key",
                                       "load-artifact", "encrypt", "decrypt", "invoke", "unload", "stats"};
  Value st = client->call("stats");
  for (const auto& [op, n] : st.find("requests")->as_map()) EXPECT_TRUE(known.count(op.as_text())) << op.as_text();
  EXPECT_GE(st.find("errors")->find("sealed")->as_uint(), 50u);  // counted, under the outer op
}

TEST_F(Robust, OversizeFramesCloseOnlyThatConnectionWhileArtifactsLargerThanAFrameStillStream) {
  net::Client bystander(service->endpoint());
  UniqueFd fd = net::connect(service->endpoint());
  Bytes header;
  put_u32be(header, kMaxFrame + 1);
  sn_test::write_all(fd.get(), header);
  net::FrameDecoder dec;
  auto r = sn_test::read_response(fd.get(), dec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0u);
  EXPECT_EQ(r->code, Errc::kFormat);
  EXPECT_TRUE(sn_test::wait_closed(fd.get(), std::chrono::seconds(10)));
  // A whole oversize request from a client: its connection goes, the bystander's does not.
  {
    net::Client big(service->endpoint());
    net::Response too_big = big.request("encrypt", with({{"key", Value::text(key)}, {"plaintext", Value::bytes(Bytes(kMaxFrame, 1))}}));
    EXPECT_FALSE(too_big.ok);
  }
  EXPECT_TRUE(bystander.request("describe").ok);
  // An artifact 5x the frame limit, streamed in parts under it, loads.
  Bytes model(5 * kMaxFrame, 0x5a);
  shield::StreamEncryptOptions so;
  so.chunk_size = 16 * 1024;
  Bytes sealed = shield::encrypt_stream(shield::Shield::with_key(data_key), model, so);
  auto up = bystander.stream("load-artifact", with({{"key", Value::text(key)}, {"kind", Value::text("model")}, {"name", Value::text("big")}}));
  for (size_t off = 0; off < sealed.size(); off += 32 * 1024)
    up.send(with({{"data", Value::bytes(ByteView(sealed).subspan(off, std::min<size_t>(32 * 1024, sealed.size() - off)))}}));
  Value loaded = up.finish().value_or_throw();
  EXPECT_EQ(loaded.find("size")->as_uint(), model.size());
}

TEST_F(Robust, AStreamCutOffBeforeItsLastPartLoadsNothing) {
  // The whole of a valid v4 artifact arrives in parts, but the closing part never does: the
  // upload must fail (peer gone), not be taken as complete.
  Bytes v4 = shield::Shield::with_key(data_key).encrypt(Bytes(3000, 7));
  {
    UniqueFd fd = net::connect(service->endpoint());
    sn_test::write_all(fd.get(), request_frame(1, "load-artifact", with({{"key", Value::text(key)}, {"kind", Value::text("model")},
                                                                         {"name", Value::text("cut")}}), true));
    for (size_t off = 0; off < v4.size(); off += 1000)
      sn_test::write_all(fd.get(), request_frame(1, "", with({{"data", Value::bytes(ByteView(v4).subspan(off, std::min<size_t>(1000, v4.size() - off)))}}), true));
  }  // closed here
  // The handler ends with an error once the server notices the disconnect.
  auto failed_uploads = [&] {
    const Value stats = client->call("stats");  // kept alive: find() points into it
    const Value* e = stats.find("errors")->find("load-artifact");
    return e ? e->as_uint() : uint64_t{0};
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (failed_uploads() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(failed_uploads(), uint64_t{1});
  EXPECT_TRUE(client->call("describe").find("artifacts")->as_array().empty());
  EXPECT_TRUE(still_serves());
}
