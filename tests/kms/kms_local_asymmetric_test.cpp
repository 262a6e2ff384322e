// The client's asymmetric operations end to end against kms-local: attested GenerateDataKeyPair
// and DeriveSharedSecret through a Recipient from the simulated NSM, the generated policy
// refusing them without attestation, and the plain forms under the default policy.
#include <gtest/gtest.h>

#include "fake_kms.h"
#include "local_stack.h"
#include "shield_nitro/kms/kms_error.h"
#include "support/expect_error.h"

using namespace sn_test;
using shield_nitro::test_support::thrown;

namespace {

bool pair_matches(const DataKeyPairResult& r) {
  const unsigned char* p = r.private_key.data();
  ossl::Ptr<EVP_PKEY> priv(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(r.private_key.size())));
  auto pub = from_spki(r.public_key);
  return priv && pub && EVP_PKEY_eq(priv.get(), pub.get()) == 1;
}

std::string aws_type(const std::function<void()>& fn) {
  auto e = thrown<KmsError>(fn);
  return e ? e->type() : "";
}

}  // namespace

TEST(KmsLocalAsymmetric, AttestedGenerateDataKeyPairAndItsWrappedCopy) {
  LocalStack s;
  std::string key = kms_call(*s.admin, "CreateKey", {{"Description", "pairs"}})["KeyMetadata"]["Arn"];
  s.put_policy(key, {{"app", "inference"}});
  auto enclave = s.client("enclave");
  SimRecipient r(s);
  const EncryptionContext ctx{{"app", "inference"}};
  for (const char* spec : {"ECC_NIST_P256", "RSA_2048"}) {
    SCOPED_TRACE(spec);
    DataKeyPairResult pair = enclave->generate_data_key_pair(key, spec, ctx, &r.recipient);
    EXPECT_EQ(pair.key_id, key);
    EXPECT_TRUE(pair_matches(pair));
    // The wrapped copy opens, for the attested enclave, to the same private key.
    DecryptResult again = enclave->decrypt(pair.private_key_ciphertext_blob, ctx, "", &r.recipient);
    EXPECT_EQ(to_bytes(again.plaintext.view()), to_bytes(pair.private_key.view()));
  }
  EXPECT_EQ(aws_type([&] { enclave->generate_data_key_pair(key, "ECC_NIST_P256", ctx); }), "AccessDeniedException");
  EXPECT_EQ(aws_type([&] { enclave->generate_data_key_pair(key, "ECC_NIST_P256", {{"app", "staging"}}, &r.recipient); }),
            "AccessDeniedException");
}

TEST(KmsLocalAsymmetric, PlainPairsUnderTheDefaultPolicy) {
  LocalStack s;
  std::string key = kms_call(*s.admin, "CreateKey", {{"Description", "pairs"}})["KeyMetadata"]["Arn"];
  DataKeyPairResult pair = s.admin->generate_data_key_pair(key, "ECC_NIST_P521", {{"k", "v"}});
  EXPECT_TRUE(pair_matches(pair));
  DataKeyPairResult bare = s.admin->generate_data_key_pair_without_plaintext(key, "RSA_3072");
  EXPECT_TRUE(bare.private_key.empty());
  EXPECT_TRUE(from_spki(bare.public_key));
  EXPECT_FALSE(s.admin->decrypt(bare.private_key_ciphertext_blob).plaintext.empty());
}

TEST(KmsLocalAsymmetric, AttestedDeriveSharedSecret) {
  LocalStack s;
  std::string key = kms_call(*s.admin, "CreateKey", {{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "KEY_AGREEMENT"}})["KeyMetadata"]["Arn"];
  s.put_policy(key);
  PublicKeyResult pub = s.admin->get_public_key(key);
  EXPECT_EQ(pub.key_usage, "KEY_AGREEMENT");
  EXPECT_EQ(pub.key_agreement_algorithms, std::vector<std::string>{"ECDH"});
  auto peer = keygen("ECC_NIST_P256");
  Bytes expected = ecdh(peer.get(), from_spki(pub.public_key).get());
  auto enclave = s.client("enclave");
  SimRecipient r(s);
  SharedSecretResult secret = enclave->derive_shared_secret(key, spki(peer.get()), &r.recipient);
  EXPECT_EQ(to_bytes(secret.shared_secret.view()), expected);
  EXPECT_EQ(aws_type([&] { enclave->derive_shared_secret(key, spki(peer.get())); }), "AccessDeniedException");
}
