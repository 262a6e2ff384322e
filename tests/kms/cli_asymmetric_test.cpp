// `shield-nitro kms generate-data-key-pair | generate-data-key-pair-without-plaintext |
// derive-shared-secret | get-public-key` and `policy --encryption-context`, run as the built CLI
// against the fake KMS: what each writes where (secrets only to mode 0600 files, never in
// --json), and its refusals; and attested through `--recipient-nsm sim:DIR` against kms-local.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "fake_kms.h"
#include "local_stack.h"
#include "shield_nitro/core/file_io.h"
#include "support/process.h"
#include "support/temp_dir.h"

using namespace sn_test;
using shield_nitro::test_support::TempDir;

namespace {

class KmsAsymmetricCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "fake-secret", 1);
    ::unsetenv("AWS_SESSION_TOKEN");
  }
  RunResult kms(const std::string& op, std::vector<std::string> args) {
    std::vector<std::string> argv = {SN_CLI, "kms", op, "--endpoint", fake_.url()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, dir_.path());
  }
  std::string at(const std::string& name) const { return dir_ / name; }
  unsigned mode(const std::string& name) const {
    struct stat st {};
    ::stat(at(name).c_str(), &st);
    return st.st_mode & 0777;
  }

  FakeKms fake_;
  TempDir dir_{"sn-kms-asym-cli"};
};

}  // namespace

TEST_F(KmsAsymmetricCli, GenerateDataKeyPairWritesThreeFilesAndNoSecretInJson) {
  auto r = kms("generate-data-key-pair", {"--key-id", "alias/app", "--key-pair-spec", "ECC_NIST_P384", "--encryption-context",
                                          "app=inference", "--blob-out", at("priv.kms"), "--public-key-out", at("pub.der"),
                                          "--json", at("priv.der")});
  ASSERT_EQ(r.status, 0) << r.err;
  auto out = json::parse(r.out);
  EXPECT_EQ(out["KeyPairSpec"], "ECC_NIST_P384");
  EXPECT_FALSE(out.contains("PrivateKeyPlaintext"));
  Bytes priv = read_file(at("priv.der"));
  EXPECT_EQ(r.out.find(base64_encode(priv)), std::string::npos) << "the private key is in the JSON";
  EXPECT_EQ(mode("priv.der"), 0600u);
  EXPECT_EQ(read_file(at("pub.der")), base64_decode(out["PublicKey"].get<std::string>()));
  EXPECT_EQ(read_file(at("priv.kms")), to_bytes(as_bytes("wrapped:ECC_NIST_P384")));
  EXPECT_EQ(fake_.last("GenerateDataKeyPair")["EncryptionContext"], json({{"app", "inference"}}));
  const unsigned char* p = priv.data();
  ossl::Ptr<EVP_PKEY> key(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(priv.size())));
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_eq(key.get(), from_spki(read_file(at("pub.der"))).get()), 1);
}

TEST_F(KmsAsymmetricCli, GenerateDataKeyPairRefusals) {
  // The secret on stdout, with or without --json: usage, nothing asked of KMS.
  for (bool json_too : {true, false}) {
    std::vector<std::string> args = {"--key-id", "alias/app", "--key-pair-spec", "RSA_2048", "--blob-out", at("b"),
                                     "--public-key-out", at("p"), "-"};
    if (json_too) args.insert(args.begin(), "--json");
    auto r = kms("generate-data-key-pair", args);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("only to a file"), std::string::npos) << r.err;
  }
  auto peer = keygen("ECC_NIST_P256");
  write_file_atomic(at("peer.der"), spki(peer.get()));
  auto r = kms("derive-shared-secret", {"--key-id", "alias/agree", "--public-key", at("peer.der"), "-"});
  EXPECT_EQ(r.status, 2) << r.err;
  ::unlink(at("peer.der").c_str());
  r = kms("generate-data-key-pair", {"--key-id", "alias/app", "--key-pair-spec", "RSA_1024", "--blob-out", at("b"),
                                     "--public-key-out", at("p"), at("k")});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("RSA_1024"), std::string::npos) << r.err;
  r = kms("generate-data-key-pair", {"--key-id", "alias/app", "--key-pair-spec", "RSA_2048", at("k")});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(fake_.count(), 0);
  EXPECT_EQ(dir_.entries(), 0u) << "a refused command wrote a file";
}

TEST_F(KmsAsymmetricCli, WithoutPlaintextWritesTheBlobAndPublicKeyOnly) {
  auto r = kms("generate-data-key-pair-without-plaintext",
               {"--key-id", "alias/app", "--key-pair-spec", "RSA_3072", "--public-key-out", at("pub.der"), at("priv.kms")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(at("priv.kms")), to_bytes(as_bytes("wrapped:RSA_3072")));
  EXPECT_TRUE(from_spki(read_file(at("pub.der"))));
}

TEST_F(KmsAsymmetricCli, DeriveSharedSecretFromDerOrPemAndGetPublicKey) {
  auto r = kms("get-public-key", {"--key-id", "alias/agree", "--json", at("kms.der")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["KeyUsage"], "KEY_AGREEMENT");
  auto peer = keygen("ECC_NIST_P256");
  Bytes expected = ecdh(peer.get(), from_spki(read_file(at("kms.der"))).get());
  write_file_atomic(at("peer.der"), spki(peer.get()));
  std::string pem = "-----BEGIN PUBLIC KEY-----\n" + base64_encode(spki(peer.get())) + "\n-----END PUBLIC KEY-----\n";
  write_file_atomic(at("peer.pem"), as_bytes(pem));
  for (const char* in : {"peer.der", "peer.pem"}) {
    r = kms("derive-shared-secret", {"--key-id", "alias/agree", "--public-key", at(in), "--json", at("secret.bin")});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(read_file(at("secret.bin")), expected) << in;
    EXPECT_EQ(mode("secret.bin"), 0600u);
    EXPECT_EQ(json::parse(r.out)["SharedSecretBytes"], 32);
    EXPECT_EQ(r.out.find(base64_encode(expected)), std::string::npos);
  }
  write_file_atomic(at("rsa.der"), spki(keygen("RSA_2048").get()));
  r = kms("derive-shared-secret", {"--key-id", "alias/agree", "--public-key", at("rsa.der"), at("s2")});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("EC key"), std::string::npos) << r.err;
}

TEST_F(KmsAsymmetricCli, PolicyPinsEncryptionContext) {
  auto r = run({SN_CLI, "policy", "--pcr", "0=" + std::string(96, 'a'), "--role-arn",
                "arn:aws:iam::111122223333:role/enclave", "--encryption-context", "app=inference", "--encryption-context",
                "tier=prod"},
               dir_.path());
  ASSERT_EQ(r.status, 0) << r.err;
  auto p = json::parse(r.out);
  bool pinned = false;
  for (const auto& s : p["Statement"])
    if (s.contains("Condition") && s["Condition"].contains("StringEquals"))
      pinned = s["Condition"]["StringEquals"] ==
               json({{"kms:EncryptionContext:app", "inference"}, {"kms:EncryptionContext:tier", "prod"}});
  EXPECT_TRUE(pinned) << r.out;
  r = run({SN_CLI, "policy", "--pcr", "0=" + std::string(96, 'a'), "--role-arn", "arn:aws:iam::111122223333:role/enclave",
           "--encryption-context", "=x"},
          dir_.path());
  EXPECT_EQ(r.status, 2) << r.err;
}

// The enclave's role through the CLI: only with --recipient-nsm does kms-local's generated
// policy release a key pair or a shared secret.
TEST_F(KmsAsymmetricCli, RecipientThroughTheSimulatorAgainstKmsLocal) {
  LocalStack s;
  auto nsm_server = s.sim->serve(nsm::simulator_socket_path(s.dir / "nsm"));
  std::string pairs = kms_call(*s.admin, "CreateKey", {{"Description", "pairs"}})["KeyMetadata"]["Arn"];
  std::string agree =
      kms_call(*s.admin, "CreateKey", {{"KeySpec", "ECC_NIST_P384"}, {"KeyUsage", "KEY_AGREEMENT"}})["KeyMetadata"]["Arn"];
  s.put_policy(pairs, {{"app", "inference"}});
  s.put_policy(agree);
  Credentials role = s.credentials("enclave");
  ::setenv("AWS_ACCESS_KEY_ID", role.access_key_id.c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", to_string(role.secret_access_key.view()).c_str(), 1);
  auto cli = [&](const std::string& op, std::vector<std::string> args) {
    std::vector<std::string> argv = {SN_CLI, "kms", op, "--endpoint", s.url()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, dir_.path());
  };
  const std::vector<std::string> pair_args = {"--key-id", pairs, "--key-pair-spec", "ECC_NIST_P256", "--encryption-context",
                                              "app=inference", "--blob-out", at("b"), "--public-key-out", at("p"), "--json"};
  auto with = [](std::vector<std::string> v, std::vector<std::string> more) {
    v.insert(v.end(), more.begin(), more.end());
    return v;
  };
  auto r = cli("generate-data-key-pair", with(pair_args, {"--recipient-nsm", "sim:" + (s.dir / "nsm"), at("k")}));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(json::parse(r.out)["Recipient"].get<bool>());
  Bytes priv = read_file(at("k"));
  const unsigned char* p = priv.data();
  ossl::Ptr<EVP_PKEY> key(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(priv.size())));
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_eq(key.get(), from_spki(read_file(at("p"))).get()), 1);
  r = cli("generate-data-key-pair", with(pair_args, {at("k2")}));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("AccessDenied"), std::string::npos) << r.err;

  r = cli("get-public-key", {"--key-id", agree, at("agree.der")});  // the role may not: admin's job
  EXPECT_EQ(r.status, 1) << r.err;
  write_file_atomic(at("agree.der"), s.admin->get_public_key(agree).public_key);
  auto peer = keygen("ECC_NIST_P384");
  write_file_atomic(at("peer.der"), spki(peer.get()));
  r = cli("derive-shared-secret",
          {"--key-id", agree, "--public-key", at("peer.der"), "--recipient-nsm", "sim:" + (s.dir / "nsm"), at("secret")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(at("secret")), ecdh(peer.get(), from_spki(read_file(at("agree.der"))).get()));
  r = cli("derive-shared-secret", {"--key-id", agree, "--public-key", at("peer.der"), at("secret2")});
  EXPECT_EQ(r.status, 1) << r.err;
}
