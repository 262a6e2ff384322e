// The sealed-file vectors of docs/stream-format.md §8.4, from an independent implementation
// (tests/sealed/make_vectors.py): reproduced byte for byte, their keys and pin checked, and opened.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "shield_nitro/core/hkdf.h"
#include "shield_nitro/shield/suite.h"
#include "support/doc_json.h"
#include "test_util.h"

namespace sealed_test {
namespace {

nlohmann::json doc_vectors() { return test_support::doc_json_block("docs/stream-format.md", "## 8. Sealed files"); }

Bytes hex(const nlohmann::json& v, const char* field) { return hex_decode(v[field].get<std::string>()); }

TEST(SealedVectors, DocumentHasTwo) { EXPECT_EQ(doc_vectors().size(), 2u); }

TEST(SealedVectors, ReproduceCheckKeysAndOpen) {
  for (auto& v : doc_vectors()) {
    SCOPED_TRACE(v["name"].get<std::string>());
    DataKey key{v["key_id"], hex(v, "ciphertext_blob_hex"), SecureBytes(hex(v, "data_key_hex"))};
    EncryptionContext ctx = v["encryption_context"].get<EncryptionContext>();
    ScriptedRandom salts([&] {
      Bytes b = hex(v, "stream_salt_hex"), p = hex(v, "nonce_prefix_hex");
      b.insert(b.end(), p.begin(), p.end());
      return b;
    }());
    Bytes pt = hex(v, "plaintext_hex");
    Bytes out = seal(pt, key, ctx,
                     {.chunk_size = v["chunk_size"].get<uint32_t>(), .suite = shield::parse_suite(v["suite"].get<std::string>()),
                      .random = &salts});
    EXPECT_EQ(hex_encode(out), v["expected_output_hex"]);
    Header h = parse_header(out);
    EXPECT_EQ(hex_encode(h.bytes), v["header_hex"]);
    EXPECT_EQ(parse_prefix(out).prefix_digest_hex(), v["header_sha256_hex"]);  // §8.5's pin
    EXPECT_EQ(h.context, ctx);
    // The key schedule's intermediate values, as §8.2 writes them.
    EXPECT_EQ(hex_encode(hkdf_sha256(key.plaintext.view(), {}, as_bytes("shield-nitro/sealed/v1/header"), 32).view()),
              v["header_key_hex"]);
    Bytes digest = hex_decode(h.digest_hex());
    EXPECT_EQ(hex_encode(hkdf_sha256(key.plaintext.view(), digest, as_bytes("shield-nitro/sealed/v1/stream"), 32).view()),
              v["stream_master_key_hex"]);
    EXPECT_EQ(to_bytes(open(hex(v, "expected_output_hex"), release_of(key)).view()), pt);
  }
}

}  // namespace
}  // namespace sealed_test
