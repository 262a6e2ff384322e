// The enclave service in-process: simulated NSM, a stand-in KMS (the KMS path has its own
// end-to-end tests), a real net::Server on a unix socket and a net::Client.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "support/enclave_host.h"
#include "support/freed_memory_scan.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/cbor/secret.h"
#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/shield/stream.h"

using namespace shield_nitro;
using cbor::Value;

namespace {

struct Fixture : ::testing::Test, test_support::EnclaveHost {
  void SetUp() override {
    enclave::ServiceOptions opts;
    opts.policy = enclave::ReleasePolicy::parse(R"({"max_artifact_bytes": 8388608})");
    start(std::move(opts), "AKIDTEST");
  }

  Bytes wrapped_data_key() { return shield::Shield::with_key(kek).encrypt(data_key.expose_secret()); }

  std::string push_credentials_and_load_key() { return load_data_key(); }

  // Handshake as a parent SDK does it (document verification is tested in the SDK tests).
  std::unique_ptr<channel::SealedBox> open_channel(Bytes* session) {
    channel::ClientHandshake hs;
    Bytes doc = client->call("attest", Value::map({cbor::entry("nonce", Value::bytes(hs.nonce()))})).find("document")->as_bytes();
    Value payload = cbor::decode(cose::decode_sign1(doc).payload);
    EXPECT_EQ(payload.find("nonce")->as_bytes(), hs.nonce());
    auto opened = hs.finish(doc, payload.find("public_key")->as_bytes());
    Value r = client->call("channel-open", Value::map({cbor::entry("nonce", Value::bytes(hs.nonce())),
                                                       cbor::entry("client_public", Value::bytes(opened.client_public)),
                                                       cbor::entry("versions", Value::array({Value::uint(channel::kChannelVersion)}))}));
    *session = r.find("session")->as_bytes();
    return std::make_unique<channel::SealedBox>(opened.keys, channel::Role::kClient);
  }

  Value sealed_call(channel::SealedBox& box, const Bytes& session, const std::string& op, Value body) {
    Bytes inner = cbor::encode(Value::map({cbor::entry("op", Value::text(op)), cbor::entry("body", std::move(body))}));
    Value r = client->call("sealed", Value::map({cbor::entry("session", Value::bytes(session)),
                                                 cbor::entry("data", Value::bytes(box.seal(inner)))}));
    SecureBytes reply = box.open(r.find("data")->as_bytes());
    return cbor::decode(reply.view());
  }

  std::string load_artifact(const std::string& key, const Bytes& sealed, const std::string& kind, Value models = Value::null()) {
    auto up = client->stream("load-artifact", Value::map({cbor::entry("key", Value::text(key)), cbor::entry("kind", Value::text(kind)),
                                                          cbor::entry("name", Value::text(kind + "-artifact")),
                                                          cbor::entry("models", std::move(models))}));
    for (size_t off = 0; off < sealed.size(); off += 1000) {
      size_t n = std::min<size_t>(1000, sealed.size() - off);
      up.send(Value::map({cbor::entry("data", Value::bytes(ByteView(sealed).subspan(off, n)))}));
    }
    return up.finish().value_or_throw().find("handle")->as_text();
  }
};

Errc error_of(const net::Response& r) { return r.ok ? Errc::kInternal : r.code; }

}  // namespace

TEST_F(Fixture, DescribeShowsPcrsAndNoSecrets) {
  Value d = client->call("describe");
  EXPECT_EQ(d.find("digest")->as_text(), "SHA384");
  EXPECT_EQ(d.find("pcrs")->find_int(0)->as_bytes(), Bytes(48, 0xa0));
  EXPECT_FALSE(d.find("credentials")->find("present")->as_bool());
  std::string key = push_credentials_and_load_key();
  d = client->call("describe");
  ASSERT_EQ(d.find("keys")->as_array().size(), 1u);
  EXPECT_EQ(d.find("keys")->as_array()[0].find("handle")->as_text(), key);
  EXPECT_EQ(hex_encode(cbor::encode(d)).find(hex_encode(data_key.expose_secret())), std::string::npos);
}

TEST_F(Fixture, EncryptPlainDecryptOnlyInChannel) {
  std::string key = push_credentials_and_load_key();
  Bytes ct = client->call("encrypt", Value::map({cbor::entry("key", Value::text(key)),
                                                cbor::entry("plaintext", Value::bytes(as_bytes("patient record")))}))
                 .find("ciphertext")->as_bytes();
  // Data encrypted by the enclave opens with the data key (Shield v4 key mode).
  EXPECT_EQ(to_string(shield::Shield::with_key(data_key).decrypt(ct).view()), "patient record");
  net::Response plain = client->request("decrypt", Value::map({cbor::entry("key", Value::text(key)), cbor::entry("ciphertext", Value::bytes(ct))}));
  EXPECT_EQ(error_of(plain), Errc::kPolicy);

  Bytes session;
  auto box = open_channel(&session);
  Value r = sealed_call(*box, session, "decrypt", Value::map({cbor::entry("key", Value::text(key)), cbor::entry("ciphertext", Value::bytes(ct))}));
  ASSERT_TRUE(r.find("ok")->as_bool());
  EXPECT_EQ(to_string(r.find("body")->find("plaintext")->as_bytes()), "patient record");
  // Errors inside the channel stay sealed.
  Value bad = sealed_call(*box, session, "decrypt", Value::map({cbor::entry("key", Value::text("key-99")), cbor::entry("ciphertext", Value::bytes(ct))}));
  EXPECT_FALSE(bad.find("ok")->as_bool());
  EXPECT_EQ(bad.find("error")->find("code")->as_text(), "not_found");
}

TEST_F(Fixture, LoadsStreamedModelAndCodeThenInvokesInChannel) {
  std::string key = push_credentials_and_load_key();
  shield::Shield s = shield::Shield::with_key(data_key);
  Bytes model(100000, 0x5a);
  shield::StreamEncryptOptions so;
  so.chunk_size = 4096;
  std::string model_h = load_artifact(key, shield::encrypt_stream(s, model, so), "model");
  Bytes plugin = read_file(SN_TEST_PLUGIN);
  std::string code_h = load_artifact(key, shield::encrypt_stream(s, plugin), "code", Value::array({Value::text(model_h)}));

  net::Response plain = client->request("invoke", Value::map({cbor::entry("artifact", Value::text(code_h)), cbor::entry("input", Value::bytes(as_bytes("abc")))}));
  EXPECT_EQ(error_of(plain), Errc::kPolicy);
  Bytes session;
  auto box = open_channel(&session);
  Value r = sealed_call(*box, session, "invoke", Value::map({cbor::entry("artifact", Value::text(code_h)), cbor::entry("input", Value::bytes(as_bytes("abc")))}));
  ASSERT_TRUE(r.find("ok")->as_bool()) << cbor::encode(r).size();
  EXPECT_EQ(to_string(r.find("body")->find("output")->as_bytes()), "model-artifact:100000|cba");

  client->call("unload", Value::map({cbor::entry("handle", Value::text(code_h))}));
  Value gone = sealed_call(*box, session, "invoke", Value::map({cbor::entry("artifact", Value::text(code_h)), cbor::entry("input", Value::bytes(as_bytes("abc")))}));
  EXPECT_EQ(gone.find("error")->find("code")->as_text(), "not_found");
  Value st = client->call("stats");
  EXPECT_GE(st.find("requests")->find("invoke")->as_uint(), 2u);
  EXPECT_EQ(st.find("sessions")->as_uint(), 1u);
  // The server's limits are visible: nothing is waiting to be sent to this (reading) client.
  for (const char* k : {"buffered_reply_bytes", "connections_refused", "connections_dropped"}) {
    ASSERT_NE(st.find(k), nullptr) << k;
    EXPECT_EQ(st.find(k)->as_uint(), 0u) << k;
  }
}

TEST_F(Fixture, RefusesTamperedArtifactsWrongKeysAndMissingCredentials) {
  net::Response no_creds = client->request("load-key", Value::map({cbor::entry("ciphertext_blob", Value::bytes(wrapped_data_key()))}));
  EXPECT_EQ(error_of(no_creds), Errc::kEnvironment);
  std::string key = push_credentials_and_load_key();
  Bytes sealed = shield::encrypt_stream(shield::Shield::with_key(data_key), Bytes(5000, 1));
  sealed[sealed.size() / 2] ^= 1;
  EXPECT_THROW(load_artifact(key, sealed, "model"), Error);
  Bytes other = shield::encrypt_stream(shield::Shield::with_key(shield::ShieldKey::generate()), Bytes(10, 1));
  try {
    load_artifact(key, other, "model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kAuth);
  }
  Bytes cut = shield::encrypt_stream(shield::Shield::with_key(data_key), Bytes(5000, 1));
  cut.resize(cut.size() - 20);
  EXPECT_THROW(load_artifact(key, cut, "model"), Error);
  // Over the policy's size limit (8 MiB).
  Bytes big = shield::encrypt_stream(shield::Shield::with_key(data_key), Bytes(9 << 20, 0));
  try {
    load_artifact(key, big, "model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kPolicy);
  }
  // A plain v4 message works as an artifact too.
  std::string h = load_artifact(key, shield::Shield::with_key(data_key).encrypt(as_bytes("small")), "model");
  EXPECT_EQ(h.rfind("art-", 0), 0u);
  // And the service still answers.
  EXPECT_NO_THROW(client->call("describe"));
}

// Credentials pushed inside the channel, accepted or refused after the secret was read (a bad
// expiration), leave no copy of the secret in the enclave's freed memory: the decoded request
// is a wiped cbor::SecretValue and the secret goes from it into SecureBytes by reference.
TEST_F(Fixture, SealedCredentialsLeaveNoCopyInFreedMemoryAlsoWhenRefused) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  constexpr char kSecret[] = "wJalrXUtnFEMI-enclave-side-SCAN-ME-0077";
  Bytes session;
  auto box = open_channel(&session);
  // Sealed before the scan starts, and the test's own copies wiped: a heap block freed unwiped
  // here could be reused, half overwritten, by a buffer the scan then sees freed.
  auto sealed_push = [&](Value expiration) {
    cbor::SecretValue request(cbor::map_of(
        cbor::entry("op", Value::text("set-credentials")),
        cbor::entry("body", cbor::map_of(cbor::entry("access_key_id", Value::text("AKIDTEST")),
                                         cbor::entry("secret_access_key", Value::text(kSecret)),
                                         cbor::entry("expiration", std::move(expiration))))));
    Bytes inner = cbor::encode(*request);
    Bytes sealed = box->seal(inner);
    secure_wipe(inner.data(), inner.size());
    return sealed;
  };
  Bytes refused = sealed_push(Value::text("soon"));
  Bytes accepted = sealed_push(Value::null());
  test_support::FreedMemoryScan scan(as_bytes(kSecret));
  std::vector<bool> ok;
  for (const Bytes* sealed : {&refused, &accepted}) {
    Value r = client->call("sealed", cbor::map_of(cbor::entry("session", Value::bytes(session)),
                                                  cbor::entry("data", Value::bytes(*sealed))));
    SecureBytes reply = box->open(r.find("data")->as_bytes());
    ok.push_back(cbor::decode(reply.view()).find("ok")->as_bool());
  }
  EXPECT_EQ(ok, (std::vector<bool>{false, true}));
  EXPECT_EQ(scan.hits(), 0u);
}

TEST_F(Fixture, ChannelRefusesReplaysAndUnknownSessions) {
  Bytes session;
  auto box = open_channel(&session);
  Bytes inner = cbor::encode(Value::map({cbor::entry("op", Value::text("describe")), cbor::entry("body", Value::map())}));
  Value req = Value::map({cbor::entry("session", Value::bytes(session)), cbor::entry("data", Value::bytes(box->seal(inner)))});
  EXPECT_TRUE(client->request("sealed", req).ok);
  EXPECT_EQ(error_of(client->request("sealed", req)), Errc::kVerify);
  Value unknown = Value::map({cbor::entry("session", Value::bytes(Bytes(16, 0))), cbor::entry("data", Value::bytes(box->seal(inner)))});
  EXPECT_EQ(error_of(client->request("sealed", unknown)), Errc::kVerify);
  EXPECT_EQ(error_of(client->request("attest", Value::map({cbor::entry("nonce", Value::bytes(Bytes(513, 1)))}))), Errc::kFormat);
  EXPECT_EQ(error_of(client->request("load-key", Value::map({cbor::entry("ciphertext_blob", Value::text("x"))}))), Errc::kFormat);
  EXPECT_EQ(error_of(client->request("no-such-op")), Errc::kUnsupported);
}

TEST_F(Fixture, AsksForCredentialRefreshBeforeExpiry) {
  int64_t soon = system_clock().now_s() + 60;
  Value r = client->call("set-credentials", Value::map({cbor::entry("access_key_id", Value::text("AKIDTEST")),
                                                        cbor::entry("secret_access_key", Value::text("s")),
                                                        cbor::entry("expiration", Value::integer(soon))}));
  ASSERT_NE(r.find("refresh_credentials"), nullptr);
  EXPECT_TRUE(client->call("describe").find("credentials")->find("refresh_needed")->as_bool());
  client->call("set-credentials", Value::map({cbor::entry("access_key_id", Value::text("AKIDTEST")),
                                              cbor::entry("secret_access_key", Value::text("s")),
                                              cbor::entry("expiration", Value::integer(soon + 3600))}));
  EXPECT_EQ(client->call("describe").find("refresh_credentials"), nullptr);
}

// The event loop accepts a session's records in wire order without waiting; a record whose
// predecessor has not come (here: sent first, on another connection) waits on a worker, a
// large one is opened on a worker, and a non-AEAD op finishes on one. Every answer is right.
TEST_F(Fixture, SealedRequestsOnTwoConnectionsAreAcceptedInSeqOrderWhateverThePath) {
  std::string key = push_credentials_and_load_key();
  Bytes session;
  auto box = open_channel(&session);
  auto sealed_req = [&](const std::string& op, Value body, uint64_t* seq) {
    Bytes inner = cbor::encode(Value::map({cbor::entry("op", Value::text(op)), cbor::entry("body", std::move(body))}));
    return Value::map({cbor::entry("session", Value::bytes(session)), cbor::entry("data", Value::bytes(box->seal(inner, seq)))});
  };
  auto encrypt_body = [&](size_t n) {
    return Value::map({cbor::entry("key", Value::text(key)), cbor::entry("plaintext", Value::bytes(Bytes(n, 0x61)))});
  };
  uint64_t s0, s1, s2;
  Value r0 = sealed_req("encrypt", encrypt_body(1024), &s0);
  Value r1 = sealed_req("encrypt", encrypt_body(40 * 1024), &s1);  // above the fast path's size
  Value r2 = sealed_req("describe", Value::map(), &s2);
  net::Client other(service->endpoint());
  auto later = other.request_async("sealed", r1);  // its predecessor is still to come
  net::Response a0 = client->request("sealed", r0);
  net::Response a2 = client->request("sealed", r2);
  net::Response a1 = later.get();
  auto inner_of = [&](const net::Response& r, uint64_t seq) {
    return cbor::decode(box->open_reply(r.value_or_throw().find("data")->as_bytes(), seq).view());
  };
  auto plaintext_size = [&](const Value& reply) {
    EXPECT_TRUE(reply.find("ok")->as_bool());
    return shield::Shield::with_key(data_key).decrypt(reply.find("body")->find("ciphertext")->as_bytes()).size();
  };
  EXPECT_EQ(plaintext_size(inner_of(a0, s0)), 1024u);
  EXPECT_EQ(plaintext_size(inner_of(a1, s1)), 40u * 1024);
  Value d = inner_of(a2, s2);
  ASSERT_TRUE(d.find("ok")->as_bool());
  EXPECT_NE(d.find("body")->find("pcrs"), nullptr);
  Value st = client->call("stats");
  EXPECT_EQ(st.find("requests")->find("encrypt")->as_uint(), 2u);
  EXPECT_EQ(st.find("requests")->find("sealed")->as_uint(), 3u);
  EXPECT_EQ(st.find("errors")->find("sealed")->as_uint(), 0u);
}
