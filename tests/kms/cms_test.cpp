// CMS CiphertextForRecipient: real KMS vectors (parse-only), synthetic vectors (open with the
// test key), the builder's KMS byte layout, and refusal of every other shape.
#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/cms.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;

namespace {

const std::string kCms = std::string(SN_FIXTURES_DIR) + "/kms/cms/";

EVP_PKEY* test_key() {
  static EVP_PKEY* key = [] {
    std::string pem = read_text_file(kCms + "synthetic/test-rsa2048-key.pem");
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    return k;
  }();
  return key;
}

EVP_PKEY* other_key() {
  static EVP_PKEY* key = EVP_RSA_gen(2048);
  return key;
}


}  // namespace

TEST(CmsParse, RealKmsVectorsYieldExactlyTheExpectedParts) {
  auto expected = nlohmann::json::parse(read_text_file(kCms + "kms-sdk-c/expected.json"));
  int n = 0;
  for (auto& [name, ex] : expected.items()) {
    SCOPED_TRACE(name);
    Bytes ber = read_file(kCms + "kms-sdk-c/" + name);
    ASSERT_EQ(ber.size(), ex["size"].get<size_t>());
    RecipientEnvelope env = parse_recipient_envelope(ber);
    EXPECT_EQ(hex_encode(env.encrypted_key), ex["encrypted_key_hex"]);
    EXPECT_EQ(hex_encode(env.iv), ex["iv_hex"]);
    EXPECT_EQ(hex_encode(env.ciphertext), ex["ciphertext_hex"]);
    EXPECT_EQ(env.subject_key_id.size(), 32u);
    EXPECT_TRUE(env.indefinite_length);
    EXPECT_EQ(env.chunked_content, name.find("constructed") != std::string::npos);
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST(CmsParse, RealKmsVectorsDoNotOpenWithAnotherKey) {
  Bytes ber = read_file(kCms + "kms-sdk-c/vector1-constructed.ber");
  try {
    open_recipient_envelope(ber, test_key());
    ADD_FAILURE() << "opened without the key";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kAuth);
  }
}

TEST(CmsOpen, SyntheticVectorsOpenToTheirPlaintexts) {
  auto vectors = nlohmann::json::parse(read_text_file(kCms + "synthetic/vectors.json"));
  const std::pair<const char*, const char*> cases[] = {
      {"kms-shaped-constructed.ber", "kms-shaped-constructed.plaintext.bin"},
      {"kms-shaped-primitive.ber", "kms-shaped-primitive.plaintext.bin"},
      {"openssl-stream.ber", "openssl.plaintext.bin"},
      {"openssl-definite.der", "openssl.plaintext.bin"}};
  for (auto [file, plain] : cases) {
    SCOPED_TRACE(file);
    Bytes ber = read_file(kCms + "synthetic/" + file);
    SecureBytes pt = open_recipient_envelope(ber, test_key());
    EXPECT_EQ(to_bytes(pt.view()), read_file(kCms + "synthetic/" + plain));
    RecipientEnvelope env = parse_recipient_envelope(ber);
    EXPECT_EQ(env.indefinite_length, std::string(file).find("definite") == std::string::npos);
  }
}

TEST(CmsOpen, WrongKeyIsRefusedNotGarbage) {
  Bytes ber = read_file(kCms + "synthetic/kms-shaped-constructed.ber");
  try {
    open_recipient_envelope(ber, other_key());
    ADD_FAILURE() << "opened with the wrong key";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kAuth);
  }
}

TEST(CmsBuild, MatchesKmsByteLayoutExceptTheRandomizedKey) {
  Bytes reference = read_file(kCms + "synthetic/kms-shaped-constructed.ber");
  Bytes spki = read_file(kCms + "synthetic/test-rsa2048-spki.der");
  Bytes script(32, 0x11);
  script.insert(script.end(), 16, 0x22);
  ScriptedRandom rng(script);
  Bytes plaintext = read_file(kCms + "synthetic/kms-shaped-constructed.plaintext.bin");
  Bytes built = build_recipient_envelope(plaintext, spki, rng);
  ASSERT_EQ(built.size(), reference.size());
  RecipientEnvelope a = parse_recipient_envelope(built), b = parse_recipient_envelope(reference);
  EXPECT_EQ(a.subject_key_id, b.subject_key_id);
  EXPECT_EQ(a.iv, b.iv);
  EXPECT_EQ(a.ciphertext, b.ciphertext);
  EXPECT_NE(a.encrypted_key, b.encrypted_key);  // OAEP is randomized
  // Every byte outside the encrypted key is identical.
  auto pos = std::search(reference.begin(), reference.end(), b.encrypted_key.begin(), b.encrypted_key.end()) -
             reference.begin();
  std::copy(b.encrypted_key.begin(), b.encrypted_key.end(), built.begin() + pos);
  EXPECT_EQ(built, reference);
  EXPECT_EQ(to_bytes(open_recipient_envelope(build_recipient_envelope(plaintext, spki), test_key()).view()), plaintext);
}

TEST(CmsBuild, LargePlaintextIsChunkedAndOpens) {
  Bytes spki = read_file(kCms + "synthetic/test-rsa2048-spki.der");
  Bytes plaintext(4000, 0x5a);
  Bytes built = build_recipient_envelope(plaintext, spki);
  EXPECT_TRUE(parse_recipient_envelope(built).chunked_content);
  EXPECT_EQ(to_bytes(open_recipient_envelope(built, test_key()).view()), plaintext);
}

TEST(CmsBuild, RefusesNonRsaOrMalformedRecipients) {
  EXPECT_THROW(build_recipient_envelope(as_bytes("x"), as_bytes("not der")), Error);
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(ec, &der);
  Bytes spki(der, der + n);
  OPENSSL_free(der);
  EVP_PKEY_free(ec);
  EXPECT_THROW(build_recipient_envelope(as_bytes("x"), spki), Error);
}

namespace {

Bytes mutate(Bytes b, const Bytes& from, const Bytes& to) {
  auto it = std::search(b.begin(), b.end(), from.begin(), from.end());
  EXPECT_NE(it, b.end());
  std::copy(to.begin(), to.end(), it);
  return b;
}

void expect_refused(const Bytes& ber, const char* why) {
  SCOPED_TRACE(why);
  EXPECT_THROW(parse_recipient_envelope(ber), Error);
  EXPECT_THROW(open_recipient_envelope(ber, test_key()), Error);
}

}  // namespace

TEST(CmsParse, RefusesOtherAlgorithmsAndShapes) {
  Bytes good = read_file(kCms + "synthetic/kms-shaped-constructed.ber");
  const Bytes sha256 = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
  const Bytes sha384 = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02};
  const Bytes aes256 = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a};
  const Bytes aes128 = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02};
  const Bytes oaep = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07};
  const Bytes pkcs1 = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
  expect_refused(mutate(good, sha256, sha384), "OAEP hash SHA-384");
  expect_refused(mutate(good, aes256, aes128), "AES-128-CBC content");
  expect_refused(mutate(good, oaep, pkcs1), "RSA PKCS#1 v1.5 key transport");
  expect_refused(mutate(good, {0x02, 0x01, 0x02, 0x31}, {0x02, 0x01, 0x00, 0x31}), "EnvelopedData version 0");
  expect_refused(mutate(good, {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03},
                        {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}),
                 "signedData content type");
  Bytes trailing = good;
  trailing.push_back(0);
  expect_refused(trailing, "trailing byte");
  for (size_t cut : {size_t{0}, size_t{1}, size_t{2}, size_t{100}, good.size() - 2, good.size() - 1})
    expect_refused(Bytes(good.begin(), good.begin() + static_cast<long>(cut)), "truncated");
  expect_refused(Bytes(70000, 0x30), "oversize");
}
