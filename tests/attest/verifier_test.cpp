// The verifier against documents from a test PKI: each test keeps the COSE signature valid
// and breaks exactly one rule, so the failure must come from that rule.
#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <thread>

#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/file_io.h"
#include "test_pki.h"

namespace shield_nitro::attest {
namespace {

using cbor::Value;
using testpki::code_of;
using testpki::field;
using testpki::message_of;

const std::string kNsm = std::string(SN_FIXTURES_DIR) + "/nsm";
constexpr int64_t kT0 = 1750000000;  // 2025-06-15
constexpr uint64_t kTs = kT0 * 1000ull + 123;

struct VerifierTest : ::testing::Test {
  testpki::Chain chain = testpki::make_chain(kT0);
  Value payload = testpki::payload(chain, kTs);
  Verifier v{TrustAnchor::from_pem(chain.root.pem()), {.chain_cache = false}};

  Bytes doc() const { return testpki::sign(payload, chain.leaf.key.get()); }
  Claims verify(const Bytes& d, const Policy& p = {}) const { return v.verify_at(d, kTs, p); }
  Errc errc(const Bytes& d, const Policy& p = {}) const { return code_of([&] { verify(d, p); }); }
  std::string why(const Bytes& d, const Policy& p = {}) const { return message_of([&] { verify(d, p); }); }
  void set_bundle(const std::vector<Bytes>& certs) {
    Array a;
    for (const Bytes& c : certs) a.push_back(Value::bytes(c));
    *field(payload, "cabundle") = Value::array(std::move(a));
  }
  using Array = cbor::Array;
};

TEST_F(VerifierTest, OwnRootDocumentVerifies) {
  Claims c = verify(doc());
  EXPECT_EQ(c.module_id, "i-0123456789abcdef0-enc0123456789abcdef");
  EXPECT_EQ(c.pcrs.size(), 16u);
  EXPECT_FALSE(c.debug);
  EXPECT_EQ(c.public_key.presence, Presence::kNull);
  EXPECT_EQ(c.leaf.subject, "CN=leaf.test");
}

TEST_F(VerifierTest, OwnRootDocumentFailsAgainstTheAwsRoot) {
  Verifier aws(TrustAnchor::aws());
  EXPECT_NE(message_of([&] { aws.verify_at(doc(), kTs); }).find("cabundle[0] is not the trusted root"), std::string::npos);
}

TEST_F(VerifierTest, IndefinitePayloadMapAndTaggedEnvelopeVerify) {
  payload.set_indefinite(true);
  Bytes d = doc();
  EXPECT_TRUE(decode_document(d).indefinite_payload_map);
  EXPECT_NO_THROW(verify(d));
  d.insert(d.begin(), 0xd2);
  EXPECT_NO_THROW(verify(d));
}

TEST_F(VerifierTest, OptionalFieldsAbsentNullOrBytes) {
  payload.as_map().pop_back();  // nonce absent
  *field(payload, "user_data") = Value::bytes(Bytes{});
  *field(payload, "public_key") = Value::bytes(Bytes(1024, 7));
  Claims c = verify(doc());
  EXPECT_EQ(c.nonce.presence, Presence::kAbsent);
  EXPECT_EQ(c.user_data.presence, Presence::kBytes);
  EXPECT_TRUE(c.user_data.value.empty());
  EXPECT_EQ(c.public_key.value.size(), 1024u);
}

TEST_F(VerifierTest, UnknownKeysIgnoredButNeverShadowKnownOnes) {
  payload.as_map().push_back(cbor::entry("extra", Value::uint(1)));
  EXPECT_NO_THROW(verify(doc()));
  payload.as_map().push_back(cbor::entry("module_id", Value::text("i-evil")));
  EXPECT_EQ(errc(doc()), Errc::kFormat);  // duplicate key, even when validly signed
}

TEST_F(VerifierTest, OversizeFieldsAreMalformed) {
  for (const char* key : {"public_key", "user_data", "nonce"}) {
    Value saved = *field(payload, key);
    *field(payload, key) = Value::bytes(Bytes(1025, 1));
    EXPECT_EQ(errc(doc()), Errc::kFormat) << key;
    *field(payload, key) = saved;
  }
  *field(payload, "certificate") = Value::bytes(Bytes(1025, 1));
  EXPECT_EQ(errc(doc()), Errc::kFormat);
}

TEST_F(VerifierTest, FieldTypeAndValueErrorsAreMalformed) {
  auto expect_format = [&](const char* key, Value bad) {
    Value saved = *field(payload, key);
    *field(payload, key) = std::move(bad);
    EXPECT_EQ(errc(doc()), Errc::kFormat) << key;
    *field(payload, key) = saved;
  };
  expect_format("module_id", Value::text(""));
  expect_format("module_id", Value::bytes(Bytes{1}));
  expect_format("digest", Value::text("SHA256"));
  expect_format("timestamp", Value::uint(0));
  expect_format("timestamp", Value::integer(-5));
  expect_format("cabundle", Value::array());
  expect_format("cabundle", Value::null());
  expect_format("certificate", Value::bytes(Bytes{}));
  expect_format("nonce", Value::text("n"));
  expect_format("pcrs", Value::map());
}

TEST_F(VerifierTest, TimestampInSecondsIsReported) {
  *field(payload, "timestamp") = Value::uint(kT0);
  EXPECT_NE(why(doc()).find("looks like seconds"), std::string::npos);
}

TEST_F(VerifierTest, WrongPcrLengthOrIndexIsMalformed) {
  auto& pcrs = field(payload, "pcrs")->as_map();
  for (size_t len : {size_t{32}, size_t{47}, size_t{49}, size_t{64}}) {
    pcrs[3].second = Value::bytes(Bytes(len, 1));
    EXPECT_EQ(errc(doc()), Errc::kFormat) << len;
  }
  pcrs[3].second = Value::bytes(Bytes(48, 1));
  pcrs.push_back(cbor::entry(32, Value::bytes(Bytes(48, 0))));
  EXPECT_EQ(errc(doc()), Errc::kFormat);
  pcrs.back().first = Value::text("16");
  EXPECT_EQ(errc(doc()), Errc::kFormat);
  pcrs.back().first = Value::integer(-1);
  EXPECT_EQ(errc(doc()), Errc::kFormat);
  pcrs.back().first = Value::uint(31);
  EXPECT_NO_THROW(verify(doc()));
}

TEST_F(VerifierTest, OversizeDocumentRefusedBeforeParsing) {
  Bytes big(kMaxDocumentSize + 1, 0x84);
  EXPECT_NE(message_of([&] { decode_document(big); }).find("exceeds the limit"), std::string::npos);
  EXPECT_EQ(code_of([&] { decode_document(Bytes{}); }), Errc::kFormat);
}

TEST_F(VerifierTest, SignedByAnotherKeyFails) {
  Bytes d = testpki::sign(payload, chain.instance.key.get());
  EXPECT_EQ(why(d), "cose: ES384 signature does not verify");
}

TEST_F(VerifierTest, ForgedChainCopyingAwsNamesFails) {
  Bytes real = read_file(kNsm + "/real/anjuna_prod_2021-03-17.cbor");
  Document rd = decode_document(real);
  std::vector<std::shared_ptr<X509>> certs;
  std::vector<X509_NAME*> names;
  for (const Bytes& der : rd.cabundle) {
    const uint8_t* p = der.data();
    certs.emplace_back(d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
    names.push_back(X509_get_subject_name(certs.back().get()));
  }
  testpki::Chain forged = testpki::make_chain(kT0, names);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(forged.root.cert.get()), names[0]), 0);
  Value p = testpki::payload(forged, kTs);
  Verifier aws(TrustAnchor::aws(), {.chain_cache = false});
  Bytes d = testpki::sign(p, forged.leaf.key.get());
  EXPECT_NE(message_of([&] { aws.verify_at(d, kTs); }).find("cabundle[0] is not the trusted root"), std::string::npos);
  // The genuine root in front of forged intermediates: the regional's signature fails.
  std::vector<Bytes> bundle = forged.bundle();
  bundle[0] = rd.cabundle[0];
  Array a;
  for (const Bytes& c : bundle) a.push_back(Value::bytes(c));
  *field(p, "cabundle") = Value::array(std::move(a));
  d = testpki::sign(p, forged.leaf.key.get());
  EXPECT_EQ(code_of([&] { aws.verify_at(d, kTs); }), Errc::kVerify);
}

TEST_F(VerifierTest, BundleEditsFail) {
  auto b = chain.bundle();
  set_bundle({b[1], b[0], b[2], b[3]});  // first certificate swapped
  EXPECT_NE(why(doc()).find("cabundle[0] is not the trusted root"), std::string::npos);
  set_bundle({b[0], b[1], b[3]});  // an intermediate dropped
  EXPECT_EQ(errc(doc()), Errc::kVerify);
  set_bundle({b[0], b[2], b[1], b[3]});  // intermediates out of order
  EXPECT_EQ(errc(doc()), Errc::kVerify);
  testpki::Cert stray = testpki::make_cert({nullptr, "stray", &chain.root, nullptr, kT0 - 10, kT0 + 10});
  set_bundle({b[0], b[1], b[2], b[3], stray.der});  // a certificate the path does not use
  EXPECT_EQ(errc(doc()), Errc::kVerify);
  set_bundle({b[0], b[1], b[2], b[3], b[3]});
  EXPECT_EQ(errc(doc()), Errc::kVerify);
  set_bundle({b[0], b[1], b[2], Bytes{0x30, 0x00}});  // not a certificate
  EXPECT_EQ(errc(doc()), Errc::kFormat);
}

// Rebuilds chain.leaf (or an intermediate) with a different profile.
struct ProfileTest : VerifierTest {
  void replace_leaf(testpki::CertSpec spec) {
    spec.issuer = &chain.instance;
    if (!spec.not_before) spec.not_before = kT0 - 60;
    if (!spec.not_after) spec.not_after = kT0 + 3600;
    chain.leaf = testpki::make_cert(spec);
    *field(payload, "certificate") = Value::bytes(chain.leaf.der);
  }
};

TEST_F(ProfileTest, LeafKeyMustBeP384NeverACrash) {
  for (const char* curve : {"P-256", "P-521", "secp256k1"}) {
    testpki::CertSpec s;
    s.cn = curve;
    s.key = testpki::new_key(curve);
    s.basic_constraints = "critical,CA:FALSE";
    s.key_usage = "digitalSignature";
    replace_leaf(s);
    Bytes d = testpki::sign(payload, chain.instance.key.get());  // any P-384 signature
    EXPECT_NE(why(d).find("not EC P-384"), std::string::npos) << curve;
  }
  testpki::CertSpec rsa;
  rsa.key = testpki::new_rsa_key(2048);
  rsa.basic_constraints = "critical,CA:FALSE";
  rsa.key_usage = "digitalSignature";
  replace_leaf(rsa);
  EXPECT_NE(why(testpki::sign(payload, chain.instance.key.get())).find("RSA-2048"), std::string::npos);
}

TEST_F(ProfileTest, LeafMustNotBeACaAndMustSign) {
  testpki::CertSpec s;
  s.basic_constraints = "critical,CA:TRUE";
  s.key_usage = "digitalSignature";
  replace_leaf(s);
  EXPECT_NE(why(testpki::sign(payload, chain.leaf.key.get())).find("is a CA"), std::string::npos);
  s.basic_constraints = "critical,CA:FALSE";
  s.key_usage = "keyEncipherment";
  replace_leaf(s);
  EXPECT_NE(why(testpki::sign(payload, chain.leaf.key.get())).find("digitalSignature"), std::string::npos);
}

TEST_F(ProfileTest, CaProfileBasicConstraintsKeyUsagePathLen) {
  auto rebuild = [&](const std::string& bc, const std::string& ku, int which) {
    chain = testpki::make_chain(kT0);
    testpki::Cert* certs[] = {&chain.regional, &chain.zonal, &chain.instance};
    const testpki::Cert* issuers[] = {&chain.root, &chain.regional, &chain.zonal};
    const char* names[] = {"regional.test", "zonal.test", "instance.test"};
    *certs[which] = testpki::make_cert({nullptr, names[which], issuers[which], certs[which]->key, kT0 - 86400, kT0 + 86400, bc, ku});
    v.~Verifier();
    new (&v) Verifier(TrustAnchor::from_pem(chain.root.pem()), {.chain_cache = false});
    payload = testpki::payload(chain, kTs);
    return doc();
  };
  EXPECT_NE(why(rebuild("CA:TRUE", "critical,keyCertSign", 1)).find("critical basicConstraints"), std::string::npos);
  EXPECT_NE(why(rebuild("critical,CA:FALSE", "critical,keyCertSign", 2)).find("basicConstraints"), std::string::npos);
  EXPECT_NE(why(rebuild("critical,CA:TRUE", "critical,digitalSignature", 2)).find("keyCertSign"), std::string::npos);
  // regional with pathlen 0 cannot have zonal and instance CAs below it
  EXPECT_EQ(errc(rebuild("critical,CA:TRUE,pathlen:0", "critical,keyCertSign", 0)), Errc::kVerify);
  EXPECT_NO_THROW(verify(rebuild("critical,CA:TRUE,pathlen:2", "critical,keyCertSign", 0)));
}

TEST_F(VerifierTest, CheckTimeOutsideAnyCertificateIsExpired) {
  Bytes d = doc();
  EXPECT_EQ(code_of([&] { v.verify_at(d, (kT0 + 3 * 3600 + 1) * 1000); }), Errc::kExpired);
  EXPECT_EQ(code_of([&] { v.verify_at(d, (kT0 - 61) * 1000); }), Errc::kExpired);
  EXPECT_NO_THROW(v.verify_at(d, (kT0 - 60) * 1000));  // notBefore itself is valid
}

// RFC 5280 §4.1.2.5: the validity period includes notAfter, so the whole notAfter second
// verifies (OpenSSL's default comparison counts it as expired); the next second does not.
TEST_F(VerifierTest, LeafNotAfterSecondIsStillValid) {
  Bytes d = doc();
  const int64_t not_after = kT0 + 3 * 3600;  // make_chain's leaf
  EXPECT_NO_THROW(v.verify_at(d, not_after * 1000));
  EXPECT_NO_THROW(v.verify_at(d, not_after * 1000 + 999));
  std::string why = message_of([&] { v.verify_at(d, (not_after + 1) * 1000); });
  EXPECT_EQ(why, "certificate expired (leaf.test): notAfter 2025-06-15T18:06:40Z is before the check time "
                 "2025-06-15T18:06:41Z");
  EXPECT_EQ(code_of([&] { v.verify_at(d, (not_after + 1) * 1000); }), Errc::kExpired);
}

TEST_F(VerifierTest, IntermediateNotAfterSecondIsStillValidAlsoWhenCached) {
  // An instance CA that ends exactly at the check second, under a leaf that outlives it.
  const int64_t end = kT0 + 600;
  chain.instance = testpki::make_cert({nullptr, "instance.test", &chain.zonal, chain.instance.key, kT0 - 3600, end,
                                       "critical,CA:TRUE,pathlen:0", "critical,keyCertSign"});
  chain.leaf = testpki::make_cert({nullptr, "leaf.test", &chain.instance, chain.leaf.key, kT0 - 60, kT0 + 3 * 3600,
                                   "critical,CA:FALSE", "digitalSignature"});
  payload = testpki::payload(chain, kTs);
  Verifier cached{TrustAnchor::from_pem(chain.root.pem())};
  Bytes d = doc();
  for (const Verifier* w : {&v, &cached}) {
    EXPECT_NO_THROW(w->verify_at(d, end * 1000 + 500));
    EXPECT_NO_THROW(w->verify_at(d, end * 1000 + 999));  // a cache hit on the last valid second
    std::string why = message_of([&] { w->verify_at(d, (end + 1) * 1000); });
    EXPECT_EQ(why.rfind("certificate expired (instance.test): notAfter ", 0), 0u) << why;
  }
  EXPECT_EQ(cached.cache_stats().hits, 1u);
}

TEST_F(VerifierTest, ExpiredTrustAnchorIsExpired) {
  testpki::Chain old = testpki::make_chain(kT0);
  old.root = testpki::make_cert({nullptr, "test-root.nitro-sim", nullptr, old.root.key, kT0 - 100, kT0 - 1,
                                 "critical,CA:TRUE", "critical,keyCertSign,cRLSign"});
  Verifier v2(TrustAnchor::from_pem(old.root.pem()), {.chain_cache = false});
  Value p = testpki::payload(old, kTs);
  EXPECT_EQ(code_of([&] { v2.verify_at(testpki::sign(p, old.leaf.key.get()), kTs); }), Errc::kExpired);
}

TEST_F(VerifierTest, TimestampOutsideTheLeafIsRejected) {
  *field(payload, "timestamp") = Value::uint((kT0 + 4 * 3600) * 1000ull);
  EXPECT_NE(why(doc()).find("outside the leaf certificate's validity"), std::string::npos);
}

TEST_F(VerifierTest, LiveVerifyUsesTheInjectedClock) {
  FixedClock clock(kTs + 1000);
  Verifier live(TrustAnchor::from_pem(chain.root.pem()), {.clock = &clock});
  EXPECT_NO_THROW(live.verify(doc()));
  clock.set_ms((kT0 + 4 * 3600) * 1000);
  EXPECT_EQ(code_of([&] { live.verify(doc()); }), Errc::kExpired);
}

TEST_F(VerifierTest, CheckReportsClaimsOrTheFirstReasonNeverBoth) {
  VerifyResult ok = v.check(doc(), {}, kTs);
  EXPECT_TRUE(ok.ok());
  EXPECT_FALSE(ok.error);
  Bytes bad = doc();
  bad.back() ^= 1;
  VerifyResult no = v.check(bad, {}, kTs);
  EXPECT_FALSE(no.ok());
  ASSERT_TRUE(no.error);
  EXPECT_EQ(no.error->code(), Errc::kVerify);
}

// ---- policy ----

TEST_F(VerifierTest, PolicyPcrs) {
  Policy p;
  p.expect_pcr(0, Bytes(48, 0x11));
  p.expect_pcr(3, Bytes(48, 0));
  EXPECT_NO_THROW(verify(doc(), p));
  p.pcrs[3] = {Bytes(48, 9)};
  EXPECT_NE(why(doc(), p).find("PCR3"), std::string::npos);
  p.expect_pcr(3, Bytes(48, 0));  // an allow-list: either value
  EXPECT_NO_THROW(verify(doc(), p));
  Policy missing;
  missing.expect_pcr(20, Bytes(48, 0));
  EXPECT_NE(why(doc(), missing).find("PCR20 is required but absent"), std::string::npos);
  Policy short_value;
  short_value.expect_pcr(0, Bytes(32, 0x11));
  EXPECT_EQ(errc(doc(), short_value), Errc::kPolicy);
}

TEST_F(VerifierTest, PolicyNonceUserDataPublicKeyNeverMixed) {
  *field(payload, "user_data") = Value::bytes(Bytes{1, 2, 3});
  *field(payload, "nonce") = Value::bytes(Bytes(32, 0xaa));
  Policy p;
  p.nonce = Bytes(32, 0xaa);
  p.user_data = Bytes{1, 2, 3};
  EXPECT_NO_THROW(verify(doc(), p));
  p.nonce = Bytes(32, 0xab);
  EXPECT_NE(why(doc(), p).find("nonce does not match"), std::string::npos);
  p.nonce = Bytes{1, 2, 3};  // equals user_data, but nonce is what is compared
  EXPECT_EQ(errc(doc(), p), Errc::kPolicy);
  p.nonce.reset();
  p.public_key = Bytes{1};
  EXPECT_NE(why(doc(), p).find("public_key is required but null"), std::string::npos);
}

TEST_F(VerifierTest, PolicyDebugDocuments) {
  field(payload, "pcrs")->as_map()[0].second = Value::bytes(Bytes(48, 0));
  EXPECT_NE(why(doc()).find("debug-mode"), std::string::npos);
  Policy p;
  p.allow_debug = true;
  EXPECT_TRUE(verify(doc(), p).debug);
}

TEST_F(VerifierTest, PolicyMaxAgeAndFuture) {
  Policy p;
  p.max_age_s = 300;
  Bytes d = doc();
  EXPECT_NO_THROW(v.verify_at(d, kTs + 300 * 1000, p));
  EXPECT_EQ(code_of([&] { v.verify_at(d, kTs + 301 * 1000, p); }), Errc::kExpired);
  EXPECT_NO_THROW(v.verify_at(d, kTs - 5 * 1000, p));
  EXPECT_NE(message_of([&] { v.verify_at(d, kTs - 6 * 1000, p); }).find("in the future"), std::string::npos);
}

// ---- trust anchors and the chain cache ----

TEST(TrustAnchor, AwsRootIsPinned) {
  TrustAnchor a = TrustAnchor::aws();
  EXPECT_TRUE(a.is_aws());
  EXPECT_EQ(a.sha256_hex(), kAwsRootG1Sha256Hex);
  EXPECT_EQ(a.der(), read_file(kNsm + "/root/aws_nitro_enclaves_root_g1.der"));
  EXPECT_EQ(a.subject(), "C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves");
  EXPECT_TRUE(TrustAnchor::from_pem(read_text_file(kNsm + "/root/aws_nitro_enclaves_root_g1.pem")).is_aws());
}

TEST(TrustAnchor, FromPemTakesExactlyOneSelfSignedCa) {
  testpki::Chain c = testpki::make_chain(kT0);
  EXPECT_FALSE(TrustAnchor::from_pem(c.root.pem()).is_aws());
  EXPECT_EQ(code_of([&] { TrustAnchor::from_pem(c.root.pem() + c.regional.pem()); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { TrustAnchor::from_pem("not a pem"); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { TrustAnchor::from_pem(c.regional.pem()); }), Errc::kFormat);  // not self-signed
  EXPECT_EQ(code_of([&] { TrustAnchor::from_pem(c.leaf.pem()); }), Errc::kFormat);      // not a CA
  EXPECT_EQ(code_of([&] { TrustAnchor::from_der(Bytes{0x30, 0x03, 0x02, 0x01, 0x00}); }), Errc::kFormat);
}

TEST_F(VerifierTest, ChainCacheHitsMissesAndStaysBounded) {
  Verifier cached(TrustAnchor::from_pem(chain.root.pem()), {.cache_capacity = 2});
  Bytes d = doc();
  cached.verify_at(d, kTs);
  cached.verify_at(d, kTs + 1000);
  Verifier::CacheStats s = cached.cache_stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  for (int i = 0; i < 3; ++i) {  // new leaves under the same instance
    testpki::Cert leaf = testpki::make_cert({nullptr, "leaf" + std::to_string(i), &chain.instance, nullptr,
                                             kT0 - 60, kT0 + 3600 + i, "critical,CA:FALSE", "digitalSignature"});
    Value p = payload;
    *field(p, "certificate") = Value::bytes(leaf.der);
    cached.verify_at(testpki::sign(p, leaf.key.get()), kTs);
  }
  EXPECT_EQ(cached.cache_stats().entries, 2u);
  Verifier uncached(TrustAnchor::from_pem(chain.root.pem()), {.chain_cache = false});
  uncached.verify_at(d, kTs);
  EXPECT_EQ(uncached.cache_stats().hits + uncached.cache_stats().misses, 0u);
}

TEST_F(VerifierTest, CachedChainDoesNotSkipTheDocumentSignature) {
  Verifier cached(TrustAnchor::from_pem(chain.root.pem()));
  cached.verify_at(doc(), kTs);
  Bytes forged = testpki::sign(payload, chain.instance.key.get());  // same chain, wrong signer
  EXPECT_EQ(code_of([&] { cached.verify_at(forged, kTs); }), Errc::kVerify);
  EXPECT_EQ(cached.cache_stats().hits, 1u);
}

TEST_F(VerifierTest, ConcurrentVerificationsShareTheCache) {
  Verifier cached(TrustAnchor::from_pem(chain.root.pem()));
  Bytes d = doc();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) ok += cached.check(d, {}, kTs).ok() ? 1 : 0;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 20);
  EXPECT_EQ(cached.cache_stats().entries, 1u);
}

}  // namespace
}  // namespace shield_nitro::attest
