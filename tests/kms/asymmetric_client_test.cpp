// KmsClient's GenerateDataKeyPair(WithoutPlaintext), DeriveSharedSecret and GetPublicKey against
// the fake KMS of fake_kms.h: what the client sends, what it opens and what it refuses.
#include <gtest/gtest.h>

#include "fake_kms.h"
#include "shield_nitro/core/error.h"
#include "support/expect_error.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
using test_support::code_of;
using json = nlohmann::json;

namespace {

using namespace sn_test;

struct TestRecipient {
  SpkiAsDocument documents;
  RecipientKeyManager keys{std::chrono::seconds(0)};
  Recipient recipient{&documents, &keys};
};

// The private key in `r` parses and is the public key's.
bool pair_matches(const DataKeyPairResult& r) {
  const unsigned char* p = r.private_key.data();
  ossl::Ptr<EVP_PKEY> priv(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(r.private_key.size())));
  auto pub = from_spki(r.public_key);
  return priv && pub && EVP_PKEY_eq(priv.get(), pub.get()) == 1;
}

}  // namespace

TEST(KmsAsymmetric, GenerateDataKeyPairEverySpec) {
  FakeKms fake;
  KmsClient kms = fake.client();
  for (const char* spec : {"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"}) {
    DataKeyPairResult r = kms.generate_data_key_pair("alias/app", spec, {{"app", "inference"}});
    EXPECT_EQ(r.key_pair_spec, spec);
    EXPECT_TRUE(pair_matches(r)) << spec;
    EXPECT_EQ(r.private_key_ciphertext_blob, to_bytes(as_bytes(std::string("wrapped:") + spec)));
    json sent = fake.last("GenerateDataKeyPair");
    EXPECT_EQ(sent["KeyPairSpec"], spec);
    EXPECT_EQ(sent["EncryptionContext"], json({{"app", "inference"}}));
    EXPECT_FALSE(sent.contains("Recipient"));
  }
}

TEST(KmsAsymmetric, GenerateDataKeyPairWithRecipientOpensThePrivateKeyHere) {
  FakeKms fake;
  KmsClient kms = fake.client();
  TestRecipient t;
  for (const char* spec : {"RSA_4096", "ECC_NIST_P384"}) {
    DataKeyPairResult r = kms.generate_data_key_pair("alias/app", spec, {}, &t.recipient);
    EXPECT_TRUE(pair_matches(r)) << spec;
    json sent = fake.last("GenerateDataKeyPair");
    EXPECT_EQ(sent["Recipient"]["KeyEncryptionAlgorithm"], "RSAES_OAEP_SHA_256");
    EXPECT_EQ(base64_decode(sent["Recipient"]["AttestationDocument"].get<std::string>()), t.keys.current()->spki_der());
  }
}

TEST(KmsAsymmetric, GenerateDataKeyPairRefusesWhatWasNotAskedFor) {
  FakeKms fake;
  KmsClient kms = fake.client();
  TestRecipient t;
  EXPECT_EQ(code_of([&] { kms.generate_data_key_pair("alias/app", "RSA_1024"); }), Errc::kUsage);
  EXPECT_EQ(code_of([&] { kms.generate_data_key_pair("alias/app", "ECC_SECG_P256K1"); }), Errc::kUsage);
  EXPECT_EQ(fake.count(), 0) << "a refused spec was sent";
  fake.faults.other_private_key = true;
  EXPECT_EQ(code_of([&] { kms.generate_data_key_pair("alias/app", "ECC_NIST_P256"); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { kms.generate_data_key_pair("alias/app", "RSA_2048", {}, &t.recipient); }), Errc::kVerify);
  fake.faults = {};
  fake.faults.answered_spec = "RSA_3072";
  EXPECT_EQ(code_of([&] { kms.generate_data_key_pair("alias/app", "RSA_2048"); }), Errc::kFormat);
  fake.faults = {};
  fake.faults.clear_with_recipient = true;
  EXPECT_EQ(code_of([&] { kms.generate_data_key_pair("alias/app", "ECC_NIST_P256", {}, &t.recipient); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { kms.generate_data_key_pair_without_plaintext("alias/app", "ECC_NIST_P256"); }), Errc::kVerify);
}

TEST(KmsAsymmetric, GenerateDataKeyPairWithoutPlaintextKeepsNoPrivateKey) {
  FakeKms fake;
  KmsClient kms = fake.client();
  DataKeyPairResult r = kms.generate_data_key_pair_without_plaintext("alias/app", "RSA_3072", {{"k", "v"}});
  EXPECT_TRUE(r.private_key.empty());
  EXPECT_TRUE(from_spki(r.public_key));
  EXPECT_EQ(fake.last("GenerateDataKeyPairWithoutPlaintext")["EncryptionContext"], json({{"k", "v"}}));
}

TEST(KmsAsymmetric, DeriveSharedSecretMatchesThePeersEcdh) {
  FakeKms fake;
  KmsClient kms = fake.client();
  TestRecipient t;
  PublicKeyResult kms_key = kms.get_public_key("alias/agree");
  EXPECT_EQ(kms_key.key_usage, "KEY_AGREEMENT");
  EXPECT_EQ(kms_key.key_spec, "ECC_NIST_P256");
  EXPECT_EQ(kms_key.key_agreement_algorithms, std::vector<std::string>{"ECDH"});
  auto peer = keygen("ECC_NIST_P256");
  Bytes expected = ecdh(peer.get(), from_spki(kms_key.public_key).get());
  SharedSecretResult s = kms.derive_shared_secret("alias/agree", spki(peer.get()));
  EXPECT_EQ(to_bytes(s.shared_secret.view()), expected);
  EXPECT_EQ(s.key_agreement_algorithm, "ECDH");
  json sent = fake.last("DeriveSharedSecret");
  EXPECT_EQ(sent["KeyAgreementAlgorithm"], "ECDH");
  EXPECT_EQ(base64_decode(sent["PublicKey"].get<std::string>()), spki(peer.get()));
  SharedSecretResult via = kms.derive_shared_secret("alias/agree", spki(peer.get()), &t.recipient);
  EXPECT_EQ(to_bytes(via.shared_secret.view()), expected);
  EXPECT_TRUE(fake.last("DeriveSharedSecret").contains("Recipient"));
}

TEST(KmsAsymmetric, DeriveSharedSecretRefusals) {
  FakeKms fake;
  KmsClient kms = fake.client();
  TestRecipient t;
  auto rsa = keygen("RSA_2048");
  auto peer = keygen("ECC_NIST_P256");
  EXPECT_EQ(code_of([&] { kms.derive_shared_secret("alias/agree", spki(rsa.get())); }), Errc::kUsage);
  EXPECT_EQ(code_of([&] { kms.derive_shared_secret("alias/agree", as_bytes("not a key")); }), Errc::kUsage);
  EXPECT_EQ(code_of([&] { kms.derive_shared_secret("alias/agree", spki(peer.get()), nullptr, "ECDHE"); }), Errc::kUsage);
  EXPECT_EQ(fake.count(), 0) << "a refused request was sent";
  fake.faults.secret_size = 31;
  EXPECT_EQ(code_of([&] { kms.derive_shared_secret("alias/agree", spki(peer.get())); }), Errc::kFormat);
  fake.faults = {};
  fake.faults.clear_with_recipient = true;
  EXPECT_EQ(code_of([&] { kms.derive_shared_secret("alias/agree", spki(peer.get()), &t.recipient); }), Errc::kVerify);
}
