// The genuine AWS documents of fixtures/nsm: each verifies inside its chain window with the
// pinned AWS root, fails outside it, reports the manifest's claims; mutations and the
// negative fixtures fail with the right reason (attestation.md §9).
#include <gtest/gtest.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/file_io.h"
#include "test_pki.h"

namespace shield_nitro::attest {
namespace {

using testpki::code_of;
using testpki::message_of;

const std::string kNsm = std::string(SN_FIXTURES_DIR) + "/nsm";

int64_t parse_utc(const std::string& s) {  // "2021-03-17T22:01:55+00:00"
  std::tm tm{};
  strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return static_cast<int64_t>(timegm(&tm));
}

struct Fixture {
  std::string name;
  Bytes doc;
  nlohmann::json m;
  int64_t from_s, until_s;
};

std::vector<Fixture> fixtures() {
  std::vector<Fixture> out;
  auto manifest = nlohmann::json::parse(read_text_file(kNsm + "/manifest.json"));
  for (const auto& m : manifest) {
    std::string file = m["file"];
    if (file.rfind("real/", 0) != 0) continue;
    out.push_back({file, read_file(kNsm + "/" + file), m, parse_utc(m["chain_valid_from"]), parse_utc(m["chain_valid_until"])});
  }
  return out;
}

Policy debug_ok() {
  Policy p;
  p.allow_debug = true;
  return p;
}

Bytes real(const std::string& name) { return read_file(kNsm + "/real/" + name + ".cbor"); }

TEST(AttestConformance, ManifestListsElevenRealDocuments) { EXPECT_EQ(fixtures().size(), 11u); }

TEST(AttestConformance, EveryRealDocumentVerifiesInsideItsWindowAndReportsTheManifest) {
  Verifier v(TrustAnchor::aws(), {.chain_cache = false});
  for (const Fixture& f : fixtures()) {
    SCOPED_TRACE(f.name);
    int64_t ts = f.m["timestamp_ms"];
    for (int64_t at_ms : {f.from_s * 1000, ts, f.until_s * 1000, f.until_s * 1000 + 999}) {  // notAfter inclusive
      Claims c = v.verify_at(f.doc, at_ms, debug_ok());
      EXPECT_EQ(c.module_id, f.m["module_id"]);
      EXPECT_EQ(c.timestamp_ms, static_cast<uint64_t>(ts));
      EXPECT_EQ(c.digest, "SHA384");
      EXPECT_EQ(c.pcrs.size(), f.m["pcr_count"].get<size_t>());
      for (const auto& [index, hex] : f.m["pcrs"].items())
        EXPECT_EQ(hex_encode(c.pcrs.at(static_cast<uint32_t>(std::stoi(index)))), hex.get<std::string>()) << index;
      EXPECT_EQ(c.debug, f.m["debug_mode_pcr0_zero"].get<bool>());
      EXPECT_EQ(c.cabundle.size(), 4u);
      EXPECT_EQ(c.leaf.key_type, "EC P-384");
      EXPECT_EQ(c.cabundle[0].sha256_hex, kAwsRootG1Sha256Hex);
    }
  }
}

TEST(AttestConformance, OptionalFieldsKeepNullDistinctFromBytes) {
  Verifier v(TrustAnchor::aws());
  for (const Fixture& f : fixtures()) {
    SCOPED_TRACE(f.name);
    Claims c = v.verify_at(f.doc, f.m["timestamp_ms"], debug_ok());
    auto expect = [&](const OptionalBytes& got, const nlohmann::json& len) {
      if (len.is_null()) {
        EXPECT_EQ(got.presence, Presence::kNull);
      } else {
        EXPECT_EQ(got.presence, Presence::kBytes);
        EXPECT_EQ(got.value.size(), len.get<size_t>());
      }
    };
    expect(c.public_key, f.m["public_key_len"]);
    expect(c.user_data, f.m["user_data_len"]);
    expect(c.nonce, f.m["nonce_len"]);
  }
}

TEST(AttestConformance, EveryRealDocumentFailsOutsideItsWindow) {
  Verifier v(TrustAnchor::aws(), {.chain_cache = false});
  for (const Fixture& f : fixtures()) {
    SCOPED_TRACE(f.name);
    // The second after notAfter (RFC 5280: notAfter itself is still valid).
    EXPECT_EQ(code_of([&] { v.verify_at(f.doc, (f.until_s + 1) * 1000, debug_ok()); }), Errc::kExpired);
    EXPECT_EQ(code_of([&] { v.verify_at(f.doc, f.from_s * 1000 - 1, debug_ok()); }), Errc::kExpired);
    EXPECT_NE(message_of([&] { v.verify(f.doc, debug_ok()); }).find("certificate expired"), std::string::npos);
  }
}

TEST(AttestConformance, CachedChainNeverOutlivesItsWindow) {
  Verifier v(TrustAnchor::aws());
  for (const Fixture& f : fixtures()) {
    SCOPED_TRACE(f.name);
    v.verify_at(f.doc, f.m["timestamp_ms"], debug_ok());
    v.verify_at(f.doc, f.m["timestamp_ms"], debug_ok());
    v.verify_at(f.doc, f.until_s * 1000 + 999, debug_ok());
    EXPECT_EQ(code_of([&] { v.verify_at(f.doc, (f.until_s + 1) * 1000, debug_ok()); }), Errc::kExpired);
  }
  Verifier::CacheStats s = v.cache_stats();
  EXPECT_EQ(s.hits, 22u);
  EXPECT_EQ(s.entries, 11u);
}

TEST(AttestConformance, DebugDocumentsFailPolicyUnlessAllowed) {
  Verifier v(TrustAnchor::aws());
  int debug = 0;
  for (const Fixture& f : fixtures()) {
    SCOPED_TRACE(f.name);
    int64_t ts = f.m["timestamp_ms"];
    if (f.m["debug_mode_pcr0_zero"].get<bool>()) {
      ++debug;
      EXPECT_EQ(code_of([&] { v.verify_at(f.doc, ts); }), Errc::kPolicy);
      EXPECT_TRUE(v.verify_at(f.doc, ts, debug_ok()).debug);
    } else {
      EXPECT_FALSE(v.verify_at(f.doc, ts).debug);
    }
  }
  EXPECT_EQ(debug, 4);
}

TEST(AttestConformance, IndefinitePayloadMapVerifies) {
  Bytes doc = real("basenv_indefinite_2026-01-03");
  EXPECT_TRUE(decode_document(doc).indefinite_payload_map);
  EXPECT_FALSE(decode_document(real("anjuna_prod_2021-03-17")).indefinite_payload_map);
}

// The outer array re-encoded with indefinite length (9f .. ff), its four elements' bytes
// unchanged: legal CBOR, and the head is outside the Sig_structure, so it verifies exactly
// like the original.
Bytes indefinite_envelope(const Bytes& doc, size_t drop_tail = 0) {
  EXPECT_EQ(doc[0], 0x84);
  Bytes d = {0x9f};
  d.insert(d.end(), doc.begin() + 1, doc.end() - static_cast<long>(drop_tail));
  d.push_back(0xff);
  return d;
}

TEST(AttestConformance, IndefiniteOuterArrayVerifiesLikeTheOriginal) {
  Verifier v(TrustAnchor::aws(), {.chain_cache = false});
  for (const Fixture& f : fixtures()) {
    SCOPED_TRACE(f.name);
    Bytes d = indefinite_envelope(f.doc);
    ASSERT_EQ(d.size(), f.doc.size() + 1);
    cose::Sign1 msg = cose::decode_sign1(d);
    EXPECT_TRUE(msg.indefinite);
    EXPECT_EQ(msg.payload, cose::decode_sign1(f.doc).payload);
    int64_t ts = f.m["timestamp_ms"];
    Claims a = v.verify_at(f.doc, ts, debug_ok()), b = v.verify_at(d, ts, debug_ok());
    EXPECT_EQ(b.module_id, a.module_id);
    EXPECT_EQ(b.pcrs, a.pcrs);
    EXPECT_EQ(b.timestamp_ms, a.timestamp_ms);
    Bytes tagged = {0xd2};
    tagged.insert(tagged.end(), d.begin(), d.end());
    EXPECT_NO_THROW(v.verify_at(tagged, ts, debug_ok()));
    // ... and fails like it outside the window.
    EXPECT_EQ(code_of([&] { v.verify_at(d, (f.until_s + 1) * 1000, debug_ok()); }), Errc::kExpired);
  }
}

TEST(AttestConformance, IndefiniteOuterArrayStaysStrictElsewhere) {
  Verifier v(TrustAnchor::aws(), {.chain_cache = false});
  Bytes doc = real("anjuna_prod_2021-03-17");
  int64_t ts = 1616018515685;
  Bytes good = indefinite_envelope(doc);
  auto why = [&](const Bytes& d) { return message_of([&] { v.verify_at(d, ts); }); };
  // Three elements (signature dropped), a missing break, a trailing byte after it.
  EXPECT_NE(why(indefinite_envelope(doc, 98)).find("3 items, not 4"), std::string::npos);
  EXPECT_NE(why(Bytes(good.begin(), good.end() - 1)).find("not terminated"), std::string::npos);
  Bytes trailing = good;
  trailing.push_back(0x00);
  EXPECT_NE(why(trailing).find("trailing bytes"), std::string::npos);
  // A fifth element before the break.
  Bytes five(good.begin(), good.end() - 1);
  five.push_back(0xf6);
  five.push_back(0xff);
  EXPECT_NE(why(five).find("5 items, not 4"), std::string::npos);
  // The payload as an indefinite-length (chunked) byte string: refused (§3), although its
  // contents are the same bytes.
  cose::Sign1 msg = cose::decode_sign1(doc);
  Bytes chunked = {0x9f, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x5f};
  cbor::Writer w(chunked);
  w.bytes(ByteView(msg.payload).first(100));
  w.bytes(ByteView(msg.payload).subspan(100));
  chunked.push_back(0xff);
  w.bytes(msg.signature);
  chunked.push_back(0xff);
  EXPECT_NE(why(chunked).find("indefinite-length strings are not allowed"), std::string::npos);
}

TEST(AttestConformance, NegativeFixturesFailAsMalformed) {
  Verifier v(TrustAnchor::aws());
  Bytes corrupted = read_file(kNsm + "/negative/basenv_corrupted_as_stored_upstream.cbor");
  Bytes selfsigned = read_file(kNsm + "/negative/blocky_selfsigned_not_aws.cbor");
  EXPECT_EQ(code_of([&] { v.verify_at(corrupted, 1767472867402, debug_ok()); }), Errc::kFormat);
  std::string why = message_of([&] { v.verify_at(selfsigned, 1725719859000, debug_ok()); });
  EXPECT_NE(why.find("unprotected header"), std::string::npos) << why;
}

// ---- mutations of genuine documents (attestation.md §9) ----

struct Mutations : ::testing::Test {
  Verifier v{TrustAnchor::aws(), {.chain_cache = false}};
  Bytes doc = real("anjuna_prod_2021-03-17");
  int64_t ts = 1616018515685;
  cose::Sign1 msg = cose::decode_sign1(doc);
  size_t payload_at = doc.size() - 96 - 2 - msg.payload.size();  // after "59 LL LL"

  Errc verify(const Bytes& d) { return code_of([&] { v.verify_at(d, ts); }); }
  size_t find(const Bytes& hay, ByteView needle) {
    auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end());
    return it == hay.end() ? std::string::npos : static_cast<size_t>(it - hay.begin());
  }
};

TEST_F(Mutations, Untouched) { EXPECT_NO_THROW(v.verify_at(doc, ts)); }

TEST_F(Mutations, FlippedPayloadByteFailsTheSignature) {
  Bytes d = doc;
  size_t mod = find(d, as_bytes("i-078824548edcf6519"));
  d[mod + 2] ^= 0x01;  // module_id text: still valid UTF-8, so only the signature catches it
  EXPECT_EQ(message_of([&] { v.verify_at(d, ts); }), "cose: ES384 signature does not verify");
}

TEST_F(Mutations, FlippedSignatureBytesFail) {
  for (size_t i : {size_t{0}, size_t{47}, size_t{48}, size_t{95}}) {
    Bytes d = doc;
    d[d.size() - 96 + i] ^= 0x80;
    EXPECT_EQ(verify(d), Errc::kVerify) << i;
  }
}

TEST_F(Mutations, EveryFlippedPayloadByteFails) {
  for (size_t i = payload_at; i < payload_at + msg.payload.size(); i += 7) {
    Bytes d = doc;
    d[i] ^= 0x01;
    Errc e = verify(d);
    EXPECT_TRUE(e == Errc::kVerify || e == Errc::kFormat || e == Errc::kExpired) << i;
  }
}

TEST_F(Mutations, TruncationAtEveryLengthIsMalformed) {
  for (size_t n = 0; n < doc.size(); ++n)
    ASSERT_EQ(code_of([&] { decode_document(ByteView(doc).first(n)); }), Errc::kFormat) << n;
}

TEST_F(Mutations, TrailingByteIsMalformed) {
  Bytes d = doc;
  d.push_back(0x00);
  EXPECT_EQ(verify(d), Errc::kFormat);
}

TEST_F(Mutations, TagsOtherThan18AreMalformed) {
  for (uint8_t tag : {uint8_t{0xc6}, uint8_t{0xd1}, uint8_t{0xd8}}) {
    Bytes d = {tag};
    if (tag == 0xd8) d.push_back(0x62);  // tag 98 (COSE_Sign)
    d.insert(d.end(), doc.begin(), doc.end());
    EXPECT_EQ(verify(d), Errc::kFormat);
  }
  Bytes tagged = {0xd2};
  tagged.insert(tagged.end(), doc.begin(), doc.end());
  EXPECT_NO_THROW(v.verify_at(tagged, ts));
}

TEST_F(Mutations, AlgOtherThanEs384IsMalformed) {
  Bytes d = doc;
  ASSERT_EQ(d[5], 0x22);
  d[5] = 0x21;  // -34
  EXPECT_NE(message_of([&] { v.verify_at(d, ts); }).find("alg is not ES384"), std::string::npos);
}

TEST_F(Mutations, NonEmptyUnprotectedHeaderIsMalformed) {
  Bytes d = doc;
  ASSERT_EQ(d[6], 0xa0);
  d[6] = 0xa1;
  const uint8_t kid[] = {0x04, 0x40};
  d.insert(d.begin() + 7, kid, kid + 2);
  EXPECT_EQ(verify(d), Errc::kFormat);
  d = doc;
  d[6] = 0xf6;  // null, as in blocky's self-signed document
  EXPECT_EQ(verify(d), Errc::kFormat);
}

TEST_F(Mutations, DerSignatureIsMalformed) {
  Bytes der = cose::es384_raw_to_der(msg.signature);
  Bytes d(doc.begin(), doc.end() - 98);
  d.push_back(0x58);
  d.push_back(static_cast<uint8_t>(der.size()));
  d.insert(d.end(), der.begin(), der.end());
  EXPECT_NE(message_of([&] { v.verify_at(d, ts); }).find("not a 96-byte r||s"), std::string::npos);
}

TEST_F(Mutations, DuplicateKeyIsMalformed) {
  Bytes d = doc;
  size_t at = find(d, as_bytes("user_data"));
  ASSERT_NE(at, std::string::npos);
  std::copy_n("module_id", 9, d.begin() + static_cast<long>(at));  // same length: a second module_id
  EXPECT_NE(message_of([&] { v.verify_at(d, ts); }).find("duplicate map key"), std::string::npos);
}

TEST_F(Mutations, CabundleEditsFail) {
  cbor::Value p = cbor::decode(msg.payload);
  Bytes& root = const_cast<Bytes&>(p.find("cabundle")->as_array()[0].as_bytes());
  Bytes d = doc;
  size_t at = find(d, root);
  ASSERT_NE(at, std::string::npos);
  d[at + root.size() - 5] ^= 0x01;  // inside the root's signature
  EXPECT_NE(message_of([&] { v.verify_at(d, ts); }).find("cabundle[0] is not the trusted root"), std::string::npos);
}

}  // namespace
}  // namespace shield_nitro::attest
