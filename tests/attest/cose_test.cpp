// COSE_Sign1 ES384: strict decoding, Sig_structure, r||s <-> DER, sign and verify.
#include "shield_nitro/cbor/cose.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/x509.h>

#include <filesystem>
#include <memory>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "test_pki.h"

namespace shield_nitro {
namespace {

const std::string kNsm = std::string(SN_FIXTURES_DIR) + "/nsm";

using testpki::code_of;
using testpki::new_key;
using KeyPtr = testpki::KeyPtr;

// The leaf public key of a real document, read from its payload's "certificate".
KeyPtr leaf_key(const cose::Sign1& msg) {
  cbor::Value payload = cbor::decode(msg.payload);
  const Bytes& der = payload.find("certificate")->as_bytes();
  const uint8_t* p = der.data();
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  EXPECT_NE(cert, nullptr);
  KeyPtr key(X509_get_pubkey(cert), EVP_PKEY_free);
  X509_free(cert);
  return key;
}

TEST(Cose, SigStructureMatchesDerivedFixture) {
  Bytes doc = read_file(kNsm + "/real/anjuna_prod_2021-03-17.cbor");
  Bytes expected = read_file(kNsm + "/derived/anjuna_prod_2021-03-17.sig_structure.bin");
  cose::Sign1 msg = cose::decode_sign1(doc);
  EXPECT_FALSE(msg.tagged);
  EXPECT_EQ(cose::sig_structure(msg.protected_header, msg.payload), expected);
}

TEST(Cose, EveryRealDocumentVerifiesIncludingHighS) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(kNsm + "/real")) {
    cose::Sign1 msg = cose::decode_sign1(read_file(e.path().string()));
    KeyPtr key = leaf_key(msg);
    EXPECT_NO_THROW(cose::verify_es384(msg, key.get())) << e.path();
    ++n;
  }
  EXPECT_EQ(n, 11);
}

TEST(Cose, TaggedFormAcceptedOtherTagsRejected) {
  Bytes doc = read_file(kNsm + "/real/anjuna_prod_2021-03-17.cbor");
  Bytes tagged = {0xd2};
  tagged.insert(tagged.end(), doc.begin(), doc.end());
  EXPECT_TRUE(cose::decode_sign1(tagged).tagged);
  Bytes other = tagged;
  other[0] = 0xd1;  // tag 17 (COSE_Mac0)
  EXPECT_EQ(code_of([&] { cose::decode_sign1(other); }), Errc::kFormat);
  Bytes twice = {0xd2};
  twice.insert(twice.end(), tagged.begin(), tagged.end());
  EXPECT_EQ(code_of([&] { cose::decode_sign1(twice); }), Errc::kFormat);
}

TEST(Cose, SignThenVerifyAndTamper) {
  KeyPtr key = new_key("P-384");
  Bytes payload = {0xa1, 0x61, 0x61, 0x01};
  Bytes doc = cose::sign1_es384(payload, key.get());
  EXPECT_EQ(doc[0], 0x84);
  cose::Sign1 msg = cose::decode_sign1(doc);
  EXPECT_EQ(msg.payload, payload);
  EXPECT_NO_THROW(cose::verify_es384(msg, key.get()));
  msg.payload[3] ^= 1;
  EXPECT_EQ(code_of([&] { cose::verify_es384(msg, key.get()); }), Errc::kVerify);
  msg.payload[3] ^= 1;
  msg.signature[95] ^= 1;
  EXPECT_EQ(code_of([&] { cose::verify_es384(msg, key.get()); }), Errc::kVerify);
  KeyPtr other = new_key("P-384");
  msg.signature[95] ^= 1;
  EXPECT_EQ(code_of([&] { cose::verify_es384(msg, other.get()); }), Errc::kVerify);
}

TEST(Cose, NonP384KeysRejectedNeverCrash) {
  KeyPtr p256 = new_key("P-256");
  KeyPtr p521 = new_key("P-521");
  KeyPtr p384 = new_key("P-384");
  cose::Sign1 msg = cose::decode_sign1(cose::sign1_es384(Bytes{0x01}, p384.get()));
  EXPECT_EQ(code_of([&] { cose::verify_es384(msg, p256.get()); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { cose::verify_es384(msg, p521.get()); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { cose::verify_es384(msg, nullptr); }), Errc::kVerify);
  EXPECT_EQ(code_of([&] { cose::sign1_es384(Bytes{0x01}, p256.get()); }), Errc::kUsage);
}

TEST(Cose, RawDerRoundTrip) {
  Bytes raw(96, 0);
  raw[47] = 7;   // r = 7
  raw[48] = 0xff;  // s with the top bit set
  raw[95] = 1;
  Bytes der = cose::es384_raw_to_der(raw);
  EXPECT_EQ(der[0], 0x30);
  EXPECT_EQ(cose::es384_der_to_raw(der), raw);
  EXPECT_EQ(code_of([&] { cose::es384_raw_to_der(Bytes(95)); }), Errc::kFormat);
  der.push_back(0);
  EXPECT_EQ(code_of([&] { cose::es384_der_to_raw(der); }), Errc::kFormat);
}

// Builds [prot, unprot, payload, sig] with the given raw pieces.
Bytes envelope(ByteView prot, ByteView unprot_raw, ByteView payload, ByteView sig) {
  Bytes out;
  cbor::Writer w(out);
  w.begin_array(4);
  w.bytes(prot);
  w.raw(unprot_raw);
  w.bytes(payload);
  w.bytes(sig);
  return out;
}

TEST(Cose, EnvelopeDeviationsAreFormatErrors) {
  Bytes sig(96, 1), payload = {0xa0};
  const uint8_t empty_map[] = {0xa0};
  EXPECT_NO_THROW(cose::decode_sign1(envelope(cose::kProtectedEs384, empty_map, payload, sig)));
  const uint8_t es256[] = {0xa1, 0x01, 0x26};
  const uint8_t extra[] = {0xa2, 0x01, 0x38, 0x22, 0x04, 0x41, 0x00};
  const uint8_t wide[] = {0xa1, 0x01, 0x39, 0x00, 0x22};
  const uint8_t null_v[] = {0xf6};
  const uint8_t kid[] = {0xa1, 0x04, 0x41, 0x00};
  for (ByteView bad_prot : {ByteView(es256), ByteView(extra), ByteView(wide), ByteView()})
    EXPECT_EQ(code_of([&] { cose::decode_sign1(envelope(bad_prot, empty_map, payload, sig)); }), Errc::kFormat);
  for (ByteView bad_unprot : {ByteView(null_v), ByteView(kid)})
    EXPECT_EQ(code_of([&] { cose::decode_sign1(envelope(cose::kProtectedEs384, bad_unprot, payload, sig)); }),
              Errc::kFormat);
  Bytes der = cose::es384_raw_to_der(sig);
  EXPECT_EQ(code_of([&] { cose::decode_sign1(envelope(cose::kProtectedEs384, empty_map, payload, der)); }),
            Errc::kFormat);
  Bytes good = envelope(cose::kProtectedEs384, empty_map, payload, sig);
  Bytes trailing = good;
  trailing.push_back(0);
  EXPECT_EQ(code_of([&] { cose::decode_sign1(trailing); }), Errc::kFormat);
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_EQ(code_of([&] { cose::decode_sign1(ByteView(good).first(n)); }), Errc::kFormat) << n;
}

}  // namespace
}  // namespace shield_nitro
