// kms-local's fidelity to KMS, driven by the project's client over HTTP (in process): the SigV4
// clock window, Date and x-amzn-RequestId on every answer, key state and tags, pagination,
// asymmetric keys, GenerateDataKeyPair and DeriveSharedSecret with and without Recipient, and
// key policies over the new actions. tests/kms/local_kms_botocore.py drives the same with botocore.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <tuple>

#include "local_stack.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms/recipient_key.h"
#include "shield_nitro/kms/sigv4.h"
#include "shield_nitro/kms_local/http_server.h"
#include "shield_nitro/kms_local/local_kms.h"
#include "shield_nitro/kms_local/recipient_verifier.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "support/expect_error.h"
#include "support/process.h"
#include "support/temp_dir.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
using json = nlohmann::json;

namespace {

const std::string kEnclaveRole = "arn:aws:iam::111122223333:role/shield-enclave";

// The KMS error type fn throws (a test failure when it throws nothing).
std::string error_type(const std::function<void()>& fn) {
  auto e = test_support::thrown<KmsError>(fn);
  return e ? e->type() : "none";
}

ossl::Ptr<EVP_PKEY> ec_key(const char* curve) { return ossl::Ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve)); }

Bytes spki(EVP_PKEY* k) {
  int n = i2d_PUBKEY(k, nullptr);
  Bytes der(static_cast<size_t>(n));
  unsigned char* p = der.data();
  i2d_PUBKEY(k, &p);
  return der;
}

Bytes ecdh(EVP_PKEY* own, ByteView peer_spki) {
  const unsigned char* in = peer_spki.data();
  ossl::Ptr<EVP_PKEY> peer(d2i_PUBKEY(nullptr, &in, static_cast<long>(peer_spki.size())));
  ossl::Ptr<EVP_PKEY_CTX> c(EVP_PKEY_CTX_new(own, nullptr));
  size_t n = 0;
  EXPECT_TRUE(peer && c && EVP_PKEY_derive_init(c.get()) == 1 && EVP_PKEY_derive_set_peer(c.get(), peer.get()) == 1 &&
              EVP_PKEY_derive(c.get(), nullptr, &n) == 1);
  Bytes out(n);
  EVP_PKEY_derive(c.get(), out.data(), &n);
  out.resize(n);
  return out;
}

Bytes b64(const json& v) { return base64_decode(v.get<std::string>()); }

class LocalKmsFidelityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nsm::BootPcrs boot;
    boot.values[0] = Bytes(48, 0xab);
    boot.values[8] = Bytes(48, 8);
    sim_ = nsm::SimulatedNsm::create((dir_ / "nsm").string(), boot, {});
    source_ = std::make_unique<NsmAttestationSource>(std::make_unique<nsm::SimulatorTransport>(sim_));
    LocalKmsOptions o;
    o.state_dir = dir_ / "state";
    o.verifier = make_recipient_verifier({(dir_ / "nsm/root.pem").string()});
    o.clock = &clock_;
    kms_ = std::make_unique<LocalKms>(o);
    HttpServerOptions so;
    so.listen = "127.0.0.1:0";
    server_ = std::make_unique<HttpServer>(so, [this](const HttpServerRequest& r) { return kms_->handle(r); });
    server_->start();
    recipient_keys_ = RecipientKeyPair::generate();
  }
  void TearDown() override {
    server_.reset();
    kms_.reset();
  }
  KmsClient client(const std::string& profile) { return sn_test::local_kms_client(*kms_, server_->url() + "/", profile); }
  // A Recipient member with a fresh attestation document for recipient_keys_.
  json recipient() {
    Bytes doc = source_->attestation_document(recipient_keys_->spki_der());
    return {{"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"}, {"AttestationDocument", base64_encode(doc)}};
  }
  // A request signed at signed_at_s (with the admin profile's key) and served by kms-local.
  HttpServerResponse signed_at(int64_t signed_at_s) {
    auto creds = credentials_from_file(kms_->credentials_path(), "admin");
    std::string body = R"({"NumberOfBytes":8})";
    SignableRequest req{"POST", "/", "", {{"Host", "kms.us-east-1.amazonaws.com"},
                                          {"Content-Type", "application/x-amz-json-1.1"},
                                          {"X-Amz-Target", "TrentService.GenerateRandom"}},
                        as_bytes(body)};
    SigV4Params p{creds->access_key_id, creds->secret_access_key.view(), "", "us-east-1"};
    p.amz_date = amz_date(signed_at_s);
    SigV4Result r = sigv4_sign(req, p);
    HttpServerRequest http{"POST", "/", "", req.headers, body};
    for (const auto& h : r.added_headers) http.headers.push_back(h);
    http.headers.emplace_back("Authorization", r.authorization);
    return kms_->handle(http);
  }

  test_support::TempDir tmp_{"sn-kms-fidelity"};
  std::filesystem::path dir_{tmp_.path()};
  // Now (to the second), so the client's own signatures are current; tests move it.
  FixedClock clock_{system_clock().now_s() * 1000};
  std::shared_ptr<nsm::SimulatedNsm> sim_;
  std::unique_ptr<NsmAttestationSource> source_;
  std::shared_ptr<const RecipientKeyPair> recipient_keys_;
  std::unique_ptr<LocalKms> kms_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(LocalKmsFidelityTest, SigV4ClockWindowIsFiveMinutesEitherWay) {
  const int64_t now = clock_.now_s();
  for (int64_t skew : {-300, 300, 0}) EXPECT_EQ(signed_at(now + skew).status, 200) << skew;
  for (int64_t skew : {-301, 301, -900}) {
    HttpServerResponse r = signed_at(now + skew);
    EXPECT_EQ(r.status, 400) << skew;
    EXPECT_NE(r.body.find(skew < 0 ? "Signature expired" : "Signature not yet current"), std::string::npos) << r.body;
  }
}

TEST_F(LocalKmsFidelityTest, EveryAnswerCarriesDateAndRequestId) {
  auto header = [](const HttpServerResponse& r, const std::string& name) {
    return find_header(r.headers, name).value_or("");
  };
  clock_.set_ms(1'780'000'000'000);
  HttpServerResponse ok = signed_at(clock_.now_s());
  HttpServerResponse refused = signed_at(clock_.now_s() - 3600);
  HttpServerResponse unsigned_request = kms_->handle({"POST", "/", "", {}, "{}"});
  for (const auto* r : {&ok, &refused, &unsigned_request}) {
    // 1780000000 is Thu, 28 May 2026 20:26:40 GMT.
    EXPECT_EQ(header(*r, "Date"), "Thu, 28 May 2026 20:26:40 GMT");
    EXPECT_EQ(header(*r, "x-amzn-RequestId").size(), 36u);
  }
  EXPECT_NE(header(ok, "x-amzn-RequestId"), header(refused, "x-amzn-RequestId"));
}

TEST_F(LocalKmsFidelityTest, KeyStateGatesUseAndShowsInMetadata) {
  KmsClient admin = client("admin");
  std::string key = kms_call(admin, "CreateKey", json::object())["KeyMetadata"]["Arn"];
  Bytes blob = b64(kms_call(admin, "Encrypt", {{"KeyId", key}, {"Plaintext", base64_encode(as_bytes("x"))}})["CiphertextBlob"]);
  kms_call(admin, "DisableKey", {{"KeyId", key}});
  json md = kms_call(admin, "DescribeKey", {{"KeyId", key}})["KeyMetadata"];
  EXPECT_EQ(md["KeyState"], "Disabled");
  EXPECT_EQ(md["Enabled"], false);
  EXPECT_EQ(error_type([&] { kms_call(admin, "Decrypt", {{"CiphertextBlob", base64_encode(blob)}}); }), "DisabledException");
  EXPECT_EQ(error_type([&] { kms_call(admin, "GenerateDataKey", {{"KeyId", key}, {"NumberOfBytes", 8}}); }), "DisabledException");
  kms_call(admin, "EnableKey", {{"KeyId", key}});
  EXPECT_EQ(kms_call(admin, "DescribeKey", {{"KeyId", key}})["KeyMetadata"]["Enabled"], true);

  EXPECT_EQ(error_type([&] { kms_call(admin, "ScheduleKeyDeletion", {{"KeyId", key}, {"PendingWindowInDays", 6}}); }), "ValidationException");
  EXPECT_EQ(error_type([&] { kms_call(admin, "ScheduleKeyDeletion", {{"KeyId", key}, {"PendingWindowInDays", 31}}); }), "ValidationException");
  json sched = kms_call(admin, "ScheduleKeyDeletion", {{"KeyId", key}});
  EXPECT_EQ(sched["PendingWindowInDays"], 30);
  EXPECT_EQ(sched["DeletionDate"].get<double>(), static_cast<double>(clock_.now_s() + 30 * 86400));
  md = kms_call(admin, "DescribeKey", {{"KeyId", key}})["KeyMetadata"];
  EXPECT_EQ(md["KeyState"], "PendingDeletion");
  EXPECT_EQ(md["DeletionDate"], sched["DeletionDate"]);
  EXPECT_EQ(error_type([&] { kms_call(admin, "Decrypt", {{"CiphertextBlob", base64_encode(blob)}}); }), "KMSInvalidStateException");
  EXPECT_EQ(error_type([&] { kms_call(admin, "EnableKey", {{"KeyId", key}}); }), "KMSInvalidStateException");
  kms_call(admin, "CancelKeyDeletion", {{"KeyId", key}});
  EXPECT_EQ(error_type([&] { kms_call(admin, "CancelKeyDeletion", {{"KeyId", key}}); }), "KMSInvalidStateException");
  md = kms_call(admin, "DescribeKey", {{"KeyId", key}})["KeyMetadata"];
  EXPECT_EQ(md["KeyState"], "Disabled");
  EXPECT_FALSE(md.contains("DeletionDate"));

  // State survives a restart (it is on disk).
  server_.reset();
  kms_.reset();
  LocalKmsOptions o;
  o.state_dir = dir_ / "state";
  o.clock = &clock_;
  LocalKms again(o);
  EXPECT_EQ(again.dispatch("DescribeKey", {{"KeyId", key}}, "arn:aws:iam::111122223333:role/shield-admin")["KeyMetadata"]["KeyState"],
            "Disabled");
}

TEST_F(LocalKmsFidelityTest, AKeyIsDeletedWhenItsWaitingPeriodEnds) {
  const std::string admin = "arn:aws:iam::111122223333:role/shield-admin";
  std::string doomed = kms_->dispatch("CreateKey", json::object(), admin)["KeyMetadata"]["KeyId"];
  std::string kept = kms_->dispatch("CreateKey", json::object(), admin)["KeyMetadata"]["KeyId"];
  kms_->dispatch("CreateAlias", {{"AliasName", "alias/doomed"}, {"TargetKeyId", doomed}}, admin);
  kms_->dispatch("ScheduleKeyDeletion", {{"KeyId", doomed}, {"PendingWindowInDays", 7}}, admin);
  clock_.advance_ms(7LL * 86400 * 1000 - 1000);
  EXPECT_EQ(kms_->dispatch("DescribeKey", {{"KeyId", doomed}}, admin)["KeyMetadata"]["KeyState"], "PendingDeletion");
  clock_.advance_ms(1000);
  EXPECT_EQ(error_type([&] { kms_->dispatch("DescribeKey", {{"KeyId", doomed}}, admin); }), "NotFoundException");
  EXPECT_EQ(error_type([&] { kms_->dispatch("DescribeKey", {{"KeyId", "alias/doomed"}}, admin); }), "NotFoundException");
  json keys = kms_->dispatch("ListKeys", json::object(), admin)["Keys"];
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0]["KeyId"], kept);
  EXPECT_TRUE(kms_->dispatch("ListAliases", json::object(), admin)["Aliases"].empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "state/keys" / (doomed + ".json")));
}

TEST_F(LocalKmsFidelityTest, UpdateAliasMovesLastUpdatedDateAndDeleteAliasRemovesIt) {
  const std::string admin = "arn:aws:iam::111122223333:role/shield-admin";
  std::string a = kms_->dispatch("CreateKey", json::object(), admin)["KeyMetadata"]["KeyId"];
  std::string b = kms_->dispatch("CreateKey", json::object(), admin)["KeyMetadata"]["KeyId"];
  std::string ecc = kms_->dispatch("CreateKey", {{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "KEY_AGREEMENT"}}, admin)["KeyMetadata"]["KeyId"];
  kms_->dispatch("CreateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", a}}, admin);
  double created = clock_.now_s();
  clock_.advance_ms(60'000);
  kms_->dispatch("UpdateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", b}}, admin);
  json alias = kms_->dispatch("ListAliases", json::object(), admin)["Aliases"][0];
  EXPECT_EQ(alias["TargetKeyId"], b);
  EXPECT_EQ(alias["CreationDate"].get<double>(), created);
  EXPECT_EQ(alias["LastUpdatedDate"].get<double>(), created + 60);
  EXPECT_EQ(error_type([&] { kms_->dispatch("UpdateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", ecc}}, admin); }),
            "ValidationException");
  EXPECT_EQ(error_type([&] { kms_->dispatch("UpdateAlias", {{"AliasName", "alias/none"}, {"TargetKeyId", a}}, admin); }),
            "NotFoundException");
  kms_->dispatch("DeleteAlias", {{"AliasName", "alias/app"}}, admin);
  EXPECT_TRUE(kms_->dispatch("ListAliases", json::object(), admin)["Aliases"].empty());
  EXPECT_EQ(error_type([&] { kms_->dispatch("DeleteAlias", {{"AliasName", "alias/app"}}, admin); }), "NotFoundException");
}

TEST_F(LocalKmsFidelityTest, AsymmetricKeysAndGetPublicKey) {
  KmsClient admin = client("admin");
  for (std::string spec : {"RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"}) {
    std::string usage = spec.rfind("RSA", 0) == 0 ? "ENCRYPT_DECRYPT" : "KEY_AGREEMENT";
    json md = kms_call(admin, "CreateKey", {{"KeySpec", spec}, {"KeyUsage", usage}})["KeyMetadata"];
    EXPECT_EQ(md["KeySpec"], spec);
    EXPECT_EQ(md["KeyUsage"], usage);
    json pk = kms_call(admin, "GetPublicKey", {{"KeyId", md["Arn"]}});
    Bytes der = b64(pk["PublicKey"]);
    const unsigned char* in = der.data();
    ossl::Ptr<EVP_PKEY> pub(d2i_PUBKEY(nullptr, &in, static_cast<long>(der.size())));
    ASSERT_TRUE(pub) << spec;
    EXPECT_EQ(EVP_PKEY_get_base_id(pub.get()), usage == "KEY_AGREEMENT" ? EVP_PKEY_EC : EVP_PKEY_RSA);
    EXPECT_EQ(pk["KeyUsage"], usage);
    // Not a key for symmetric operations.
    EXPECT_EQ(error_type([&] { kms_call(admin, "GenerateDataKey", {{"KeyId", md["Arn"]}, {"NumberOfBytes", 8}}); }),
              "InvalidKeyUsageException");
  }
  EXPECT_EQ(error_type([&] { kms_call(admin, "CreateKey", {{"KeySpec", "ECC_SECG_P256K1"}, {"KeyUsage", "KEY_AGREEMENT"}}); }),
            "ValidationException");
  std::string sym = kms_call(admin, "CreateKey", json::object())["KeyMetadata"]["Arn"];
  EXPECT_EQ(error_type([&] { kms_call(admin, "GetPublicKey", {{"KeyId", sym}}); }), "UnsupportedOperationException");
}

TEST_F(LocalKmsFidelityTest, RsaKeysEncryptAndDecryptWithOaep) {
  KmsClient admin = client("admin");
  std::string rsa = kms_call(admin, "CreateKey", {{"KeySpec", "RSA_2048"}, {"KeyUsage", "ENCRYPT_DECRYPT"}})["KeyMetadata"]["Arn"];
  for (std::string alg : {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}) {
    json e = kms_call(admin, "Encrypt", {{"KeyId", rsa}, {"Plaintext", base64_encode(as_bytes("model key"))}, {"EncryptionAlgorithm", alg}});
    EXPECT_EQ(e["EncryptionAlgorithm"], alg);
    EXPECT_EQ(b64(e["CiphertextBlob"]).size(), 256u);
    json d = kms_call(admin, "Decrypt", {{"KeyId", rsa}, {"CiphertextBlob", e["CiphertextBlob"]}, {"EncryptionAlgorithm", alg}});
    EXPECT_EQ(b64(d["Plaintext"]), to_bytes(as_bytes("model key")));
    // With a Recipient: only enveloped.
    json r = kms_call(admin, "Decrypt", {{"KeyId", rsa}, {"CiphertextBlob", e["CiphertextBlob"]}, {"EncryptionAlgorithm", alg},
                                    {"Recipient", recipient()}});
    EXPECT_FALSE(r.contains("Plaintext"));
    EXPECT_EQ(to_bytes(recipient_keys_->open(b64(r["CiphertextForRecipient"])).view()), to_bytes(as_bytes("model key")));
  }
  json e = kms_call(admin, "Encrypt", {{"KeyId", rsa}, {"Plaintext", base64_encode(as_bytes("x"))}, {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}});
  // The wrong OAEP hash, no algorithm, a context, an oversize plaintext.
  EXPECT_EQ(error_type([&] { kms_call(admin, "Decrypt", {{"KeyId", rsa}, {"CiphertextBlob", e["CiphertextBlob"]}, {"EncryptionAlgorithm", "RSAES_OAEP_SHA_1"}}); }),
            "InvalidCiphertextException");
  EXPECT_EQ(error_type([&] { kms_call(admin, "Encrypt", {{"KeyId", rsa}, {"Plaintext", base64_encode(as_bytes("x"))}}); }),
            "InvalidKeyUsageException");
  EXPECT_EQ(error_type([&] { kms_call(admin, "Encrypt", {{"KeyId", rsa}, {"Plaintext", base64_encode(as_bytes("x"))},
                                                     {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}, {"EncryptionContext", {{"a", "b"}}}}); }),
            "ValidationException");
  EXPECT_EQ(error_type([&] { kms_call(admin, "Encrypt", {{"KeyId", rsa}, {"Plaintext", base64_encode(Bytes(191, 1))},
                                                     {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}}); }),
            "ValidationException");
  EXPECT_TRUE(kms_call(admin, "Encrypt", {{"KeyId", rsa}, {"Plaintext", base64_encode(Bytes(190, 1))},
                                     {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}}).contains("CiphertextBlob"));
  // A self-describing blob that names the RSA key (as if its material were an AES key) is refused
  // without a KeyId, whatever the algorithm.
  std::string rsa_id = rsa.substr(rsa.size() - 36);
  Bytes forged = to_bytes(as_bytes("SNK1"));
  forged.push_back(36);
  forged.insert(forged.end(), rsa_id.begin(), rsa_id.end());
  forged.resize(forged.size() + 12 + 16 + 4, 0);
  EXPECT_EQ(error_type([&] { kms_call(admin, "Decrypt", {{"CiphertextBlob", base64_encode(forged)}, {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}}); }),
            "InvalidCiphertextException");
  EXPECT_EQ(error_type([&] { kms_call(admin, "Decrypt", {{"CiphertextBlob", base64_encode(forged)}}); }), "InvalidCiphertextException");
  std::string signing = kms_call(admin, "CreateKey", {{"KeySpec", "RSA_2048"}, {"KeyUsage", "SIGN_VERIFY"}})["KeyMetadata"]["Arn"];
  EXPECT_EQ(error_type([&] { kms_call(admin, "Encrypt", {{"KeyId", signing}, {"Plaintext", base64_encode(as_bytes("x"))},
                                                     {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}}); }),
            "InvalidKeyUsageException");
}

TEST_F(LocalKmsFidelityTest, GenerateDataKeyPairWithAndWithoutRecipient) {
  KmsClient admin = client("admin");
  std::string key = kms_call(admin, "CreateKey", json::object())["KeyMetadata"]["Arn"];
  for (std::string spec : {"RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384"}) {
    json r = kms_call(admin, "GenerateDataKeyPair", {{"KeyId", key}, {"KeyPairSpec", spec}, {"EncryptionContext", {{"k", "v"}}}});
    EXPECT_EQ(r["KeyPairSpec"], spec);
    Bytes priv = b64(r["PrivateKeyPlaintext"]);
    // The private key matches the public key, and the ciphertext blob decrypts to it.
    const unsigned char* in = priv.data();
    ossl::Ptr<EVP_PKEY> k(d2i_AutoPrivateKey(nullptr, &in, static_cast<long>(priv.size())));
    ASSERT_TRUE(k) << spec;
    EXPECT_EQ(spki(k.get()), b64(r["PublicKey"]));
    json d = kms_call(admin, "Decrypt", {{"CiphertextBlob", r["PrivateKeyCiphertextBlob"]}, {"EncryptionContext", {{"k", "v"}}}});
    EXPECT_EQ(b64(d["Plaintext"]), priv);
  }
  json without = kms_call(admin, "GenerateDataKeyPairWithoutPlaintext", {{"KeyId", key}, {"KeyPairSpec", "ECC_NIST_P521"}});
  EXPECT_FALSE(without.contains("PrivateKeyPlaintext"));
  EXPECT_TRUE(without.contains("PrivateKeyCiphertextBlob"));

  json rr = kms_call(admin, "GenerateDataKeyPair", {{"KeyId", key}, {"KeyPairSpec", "ECC_NIST_P256"}, {"Recipient", recipient()}});
  EXPECT_FALSE(rr.contains("PrivateKeyPlaintext"));
  SecureBytes opened = recipient_keys_->open(b64(rr["CiphertextForRecipient"]));
  const unsigned char* in = opened.data();
  ossl::Ptr<EVP_PKEY> k(d2i_AutoPrivateKey(nullptr, &in, static_cast<long>(opened.size())));
  ASSERT_TRUE(k);
  EXPECT_EQ(spki(k.get()), b64(rr["PublicKey"]));

  EXPECT_EQ(error_type([&] { kms_call(admin, "GenerateDataKeyPair", {{"KeyId", key}, {"KeyPairSpec", "RSA_1024"}}); }), "ValidationException");
}

TEST_F(LocalKmsFidelityTest, DeriveSharedSecretWithAndWithoutRecipient) {
  KmsClient admin = client("admin");
  for (std::string spec : {"ECC_NIST_P256", "ECC_NIST_P384"}) {
    const char* curve = spec == "ECC_NIST_P256" ? "P-256" : "P-384";
    std::string key = kms_call(admin, "CreateKey", {{"KeySpec", spec}, {"KeyUsage", "KEY_AGREEMENT"}})["KeyMetadata"]["Arn"];
    Bytes kms_pub = b64(kms_call(admin, "GetPublicKey", {{"KeyId", key}})["PublicKey"]);
    auto mine = ec_key(curve);
    Bytes expected = ecdh(mine.get(), kms_pub);
    json req = {{"KeyId", key}, {"KeyAgreementAlgorithm", "ECDH"}, {"PublicKey", base64_encode(spki(mine.get()))}};
    json r = kms_call(admin, "DeriveSharedSecret", req);
    EXPECT_EQ(b64(r["SharedSecret"]), expected);
    EXPECT_EQ(r["KeyOrigin"], "AWS_KMS");
    req["Recipient"] = recipient();
    json rr = kms_call(admin, "DeriveSharedSecret", req);
    EXPECT_FALSE(rr.contains("SharedSecret"));
    EXPECT_EQ(to_bytes(recipient_keys_->open(b64(rr["CiphertextForRecipient"])).view()), expected);
  }
  std::string p256 = kms_call(admin, "CreateKey", {{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "KEY_AGREEMENT"}})["KeyMetadata"]["Arn"];
  auto other_curve = ec_key("P-384");
  json bad = {{"KeyId", p256}, {"KeyAgreementAlgorithm", "ECDH"}, {"PublicKey", base64_encode(spki(other_curve.get()))}};
  EXPECT_EQ(error_type([&] { kms_call(admin, "DeriveSharedSecret", bad); }), "ValidationException");
  bad["PublicKey"] = base64_encode(as_bytes("not a key"));
  EXPECT_EQ(error_type([&] { kms_call(admin, "DeriveSharedSecret", bad); }), "ValidationException");
  bad["KeyAgreementAlgorithm"] = "ECMQV";
  EXPECT_EQ(error_type([&] { kms_call(admin, "DeriveSharedSecret", bad); }), "ValidationException");
  std::string sym = kms_call(admin, "CreateKey", json::object())["KeyMetadata"]["Arn"];
  bad = {{"KeyId", sym}, {"KeyAgreementAlgorithm", "ECDH"}, {"PublicKey", base64_encode(spki(other_curve.get()))}};
  EXPECT_EQ(error_type([&] { kms_call(admin, "DeriveSharedSecret", bad); }), "InvalidKeyUsageException");
}

// A key policy: the admin keeps every action; the enclave role gets `actions` under `condition`.
json admin_and_enclave_policy(const json& actions, const json& condition) {
  return {{"Version", "2012-10-17"},
          {"Statement",
           {{{"Effect", "Allow"},
             {"Principal", {{"AWS", "arn:aws:iam::111122223333:role/shield-admin"}}},
             {"Action", "kms:*"},
             {"Resource", "*"}},
            {{"Effect", "Allow"},
             {"Principal", {{"AWS", kEnclaveRole}}},
             {"Action", actions},
             {"Resource", "*"},
             {"Condition", condition}}}}};
}

TEST_F(LocalKmsFidelityTest, PoliciesGateTheNewActionsOnAttestation) {
  KmsClient admin = client("admin"), enclave = client("enclave");
  std::string sym = kms_call(admin, "CreateKey", json::object())["KeyMetadata"]["Arn"];
  std::string ecc = kms_call(admin, "CreateKey", {{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "KEY_AGREEMENT"}})["KeyMetadata"]["Arn"];
  // The enclave role may use the keys only with an attested PCR0 of 0xab..; the admin keeps control.
  json policy = admin_and_enclave_policy(
      {"kms:GenerateDataKeyPair", "kms:DeriveSharedSecret", "kms:GetPublicKey"},
      {{"StringEqualsIgnoreCase", {{"kms:RecipientAttestation:ImageSha384", hex_encode(Bytes(48, 0xab))}}}});
  for (const auto& k : {sym, ecc}) kms_call(admin, "PutKeyPolicy", {{"KeyId", k}, {"Policy", policy.dump()}});
  auto mine = ec_key("P-256");
  json dss = {{"KeyId", ecc}, {"KeyAgreementAlgorithm", "ECDH"}, {"PublicKey", base64_encode(spki(mine.get()))}};
  json pair = {{"KeyId", sym}, {"KeyPairSpec", "ECC_NIST_P256"}};
  EXPECT_EQ(error_type([&] { kms_call(enclave, "DeriveSharedSecret", dss); }), "AccessDeniedException");
  EXPECT_EQ(error_type([&] { kms_call(enclave, "GenerateDataKeyPair", pair); }), "AccessDeniedException");
  EXPECT_EQ(error_type([&] { kms_call(enclave, "GenerateDataKeyPairWithoutPlaintext", pair); }), "AccessDeniedException");
  dss["Recipient"] = recipient();
  pair["Recipient"] = recipient();
  EXPECT_TRUE(kms_call(enclave, "DeriveSharedSecret", dss).contains("CiphertextForRecipient"));
  EXPECT_TRUE(kms_call(enclave, "GenerateDataKeyPair", pair).contains("CiphertextForRecipient"));
  // GetPublicKey carries no Recipient, so the conditioned statement never matches it.
  EXPECT_EQ(error_type([&] { kms_call(enclave, "GetPublicKey", {{"KeyId", ecc}}); }), "AccessDeniedException");
  // GenerateRandom with Recipient: released only enveloped.
  json rnd = kms_call(enclave, "GenerateRandom", {{"NumberOfBytes", 24}, {"Recipient", recipient()}});
  EXPECT_FALSE(rnd.contains("Plaintext"));
  EXPECT_EQ(recipient_keys_->open(b64(rnd["CiphertextForRecipient"])).size(), 24u);
}

// The context key in kms:EncryptionContext:KEY is case-insensitive, like every condition key;
// its value is compared as the operator says (StringEquals: exactly).
TEST_F(LocalKmsFidelityTest, EncryptionContextConditionKeysIgnoreCase) {
  KmsClient admin = client("admin"), enclave = client("enclave");
  std::string key = kms_call(admin, "CreateKey", json::object())["KeyMetadata"]["Arn"];
  json policy = admin_and_enclave_policy("kms:GenerateDataKey",
                                         {{"StringEquals", {{"kms:EncryptionContext:app", "demo"}}}});
  kms_call(admin, "PutKeyPolicy", {{"KeyId", key}, {"Policy", policy.dump()}});
  json ask = {{"KeyId", key}, {"KeySpec", "AES_256"}};
  for (const char* k : {"app", "App", "APP"}) {
    ask["EncryptionContext"] = {{k, "demo"}};
    EXPECT_TRUE(kms_call(enclave, "GenerateDataKey", ask).contains("CiphertextBlob")) << k;
  }
  ask["EncryptionContext"] = {{"app", "Demo"}};  // the value is compared exactly
  EXPECT_EQ(error_type([&] { kms_call(enclave, "GenerateDataKey", ask); }), "AccessDeniedException");
}

TEST_F(LocalKmsFidelityTest, OldStateFilesLoadAsEnabledSymmetricKeys) {
  // A key file as kms-local wrote it before key state, tags and asymmetric keys.
  server_.reset();
  kms_.reset();
  std::string id = "11111111-2222-4333-8444-555555555555";
  json old = {{"KeyId", id},
              {"Arn", "arn:aws:kms:us-east-1:111122223333:key/" + id},
              {"CreationDate", 1.7e9},
              {"Description", "old"},
              {"Policy", R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]})"},
              {"Material", base64_encode(Bytes(32, 7))}};
  write_file_atomic(dir_ / "state/keys" / (id + ".json"), as_bytes(old.dump()), 0600);
  write_file_atomic(dir_ / "state/aliases/old.json", as_bytes(json{{"AliasName", "alias/old"}, {"TargetKeyId", id}, {"CreationDate", 1.7e9}}.dump()), 0600);
  LocalKmsOptions o;
  o.state_dir = dir_ / "state";
  o.clock = &clock_;
  LocalKms again(o);
  const std::string admin = "arn:aws:iam::111122223333:role/shield-admin";
  json md = again.dispatch("DescribeKey", {{"KeyId", "alias/old"}}, admin)["KeyMetadata"];
  EXPECT_EQ(md["KeyState"], "Enabled");
  EXPECT_EQ(md["KeySpec"], "SYMMETRIC_DEFAULT");
  json a = again.dispatch("ListAliases", json::object(), admin)["Aliases"][0];
  EXPECT_EQ(a["LastUpdatedDate"], 1.7e9);
  EXPECT_TRUE(again.dispatch("Encrypt", {{"KeyId", id}, {"Plaintext", base64_encode(as_bytes("x"))}}, admin).contains("CiphertextBlob"));
}

TEST_F(LocalKmsFidelityTest, MalformedRequestsToTheNewOperationsAreKmsErrors) {
  const std::string admin = "arn:aws:iam::111122223333:role/shield-admin";
  std::string sym = kms_->dispatch("CreateKey", json::object(), admin)["KeyMetadata"]["KeyId"];
  std::string ecc = kms_->dispatch("CreateKey", {{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "KEY_AGREEMENT"}}, admin)["KeyMetadata"]["KeyId"];
  const std::vector<std::tuple<std::string, json, std::string>> cases = {
      {"ListKeys", {{"Limit", "10"}}, "SerializationException"},
      {"ListKeys", {{"Limit", 18446744073709551615ULL}}, "ValidationException"},
      {"ListKeys", {{"Marker", base64_encode(as_bytes("sn1:"))}}, "InvalidMarkerException"},
      {"ListAliases", {{"Marker", 5}}, "SerializationException"},
      {"TagResource", {{"KeyId", sym}, {"Tags", "x"}}, "SerializationException"},
      {"TagResource", {{"KeyId", sym}, {"Tags", {1}}}, "SerializationException"},
      {"TagResource", {{"KeyId", sym}, {"Tags", {{{"TagKey", "k"}}}}}, "ValidationException"},
      {"TagResource", {{"KeyId", sym}, {"Tags", {{{"TagKey", std::string(129, 'k')}, {"TagValue", ""}}}}}, "ValidationException"},
      {"TagResource", {{"KeyId", sym}, {"Tags", {{{"TagKey", "aws:x"}, {"TagValue", ""}}}}}, "TagException"},
      {"TagResource", {{"KeyId", sym}}, "ValidationException"},
      {"UntagResource", {{"KeyId", sym}, {"TagKeys", {1}}}, "SerializationException"},
      {"UntagResource", {{"KeyId", sym}}, "ValidationException"},
      {"ScheduleKeyDeletion", {{"KeyId", sym}, {"PendingWindowInDays", 7.5}}, "SerializationException"},
      {"CreateKey", {{"KeySpec", 1}}, "SerializationException"},
      {"CreateKey", {{"KeySpec", "RSA_2048"}, {"CustomerMasterKeySpec", "RSA_2048"}}, "ValidationException"},
      {"CreateKey", {{"KeySpec", "HMAC_256"}, {"KeyUsage", "GENERATE_VERIFY_MAC"}}, "UnsupportedOperationException"},
      {"CreateKey", {{"Origin", "SOMEWHERE"}}, "ValidationException"},
      {"GenerateDataKeyPair", {{"KeyId", sym}}, "ValidationException"},
      {"GenerateDataKeyPair", {{"KeyId", sym}, {"KeyPairSpec", "SM2"}}, "UnsupportedOperationException"},
      {"GenerateDataKeyPair", {{"KeyId", ecc}, {"KeyPairSpec", "RSA_2048"}}, "InvalidKeyUsageException"},
      {"DeriveSharedSecret", {{"KeyId", ecc}, {"KeyAgreementAlgorithm", "ECDH"}}, "ValidationException"},
      {"DeriveSharedSecret", {{"KeyId", ecc}, {"KeyAgreementAlgorithm", "ECDH"}, {"PublicKey", "%%"}}, "SerializationException"},
      {"DeriveSharedSecret", {{"KeyId", ecc}, {"PublicKey", "AAAA"}}, "ValidationException"},
      {"GetPublicKey", {{"KeyId", "alias/none"}}, "NotFoundException"},
      {"UpdateAlias", {{"AliasName", "alias/x"}}, "ValidationException"},
      {"DeleteAlias", {{"AliasName", "nope"}}, "ValidationException"},
      {"Encrypt", {{"KeyId", sym}, {"Plaintext", "eA=="}, {"DryRun", true}}, "UnsupportedOperationException"},
      {"GenerateRandom", {{"NumberOfBytes", 8}, {"DryRun", "yes"}}, "SerializationException"},
  };
  for (const auto& [op, body, type] : cases) {
    std::string got;
    try {
      kms_->dispatch(op, body, admin);
      got = "none";
    } catch (const KmsError& e) {
      got = e.type();
    }  // anything else escapes and fails the test: it would be a 500 on the wire
    EXPECT_EQ(got, type) << op << " " << body.dump();
  }
}

TEST_F(LocalKmsFidelityTest, AwsCliPaginatesAndManagesKeyState) {
  if (!std::filesystem::exists("/usr/bin/aws")) GTEST_SKIP() << "/usr/bin/aws is not installed";
  auto aws = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env", "AWS_SHARED_CREDENTIALS_FILE=" + kms_->credentials_path(),
                                     "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "/usr/bin/aws", "--profile", "admin",
                                     "--region", "us-east-1", "--endpoint-url", server_->url(), "--output", "json", "kms"};
    argv.insert(argv.end(), args.begin(), args.end());
    sn_test::RunResult r = sn_test::run(argv, tmp_.path());
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out.empty() ? json::object() : json::parse(r.out);
  };
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(aws({"create-key"})["KeyMetadata"]["KeyId"]);
  std::sort(ids.begin(), ids.end());
  // The CLI follows NextMarker itself: one key a page, every key once.
  json all = aws({"list-keys", "--page-size", "1"})["Keys"];
  ASSERT_EQ(all.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(all[i]["KeyId"], ids[i]);
  json first = aws({"list-keys", "--no-paginate", "--limit", "2"});
  EXPECT_EQ(first["Truncated"], true);
  EXPECT_EQ(first["Keys"].size(), 2u);
  aws({"disable-key", "--key-id", ids[0]});
  EXPECT_EQ(aws({"describe-key", "--key-id", ids[0]})["KeyMetadata"]["KeyState"], "Disabled");
  aws({"tag-resource", "--key-id", ids[1], "--tags", "TagKey=team,TagValue=ml"});
  EXPECT_EQ(aws({"list-resource-tags", "--key-id", ids[1]})["Tags"][0]["TagValue"], "ml");
  json pair = aws({"generate-data-key-pair", "--key-id", ids[1], "--key-pair-spec", "ECC_NIST_P384"});
  EXPECT_TRUE(pair.contains("PrivateKeyPlaintext") && pair.contains("PrivateKeyCiphertextBlob"));
  std::string rsa = aws({"create-key", "--key-spec", "RSA_3072", "--key-usage", "SIGN_VERIFY"})["KeyMetadata"]["KeyId"];
  EXPECT_EQ(aws({"get-public-key", "--key-id", rsa})["KeySpec"], "RSA_3072");
  EXPECT_EQ(aws({"schedule-key-deletion", "--key-id", ids[2], "--pending-window-in-days", "7"})["PendingWindowInDays"], 7);
}

}  // namespace
