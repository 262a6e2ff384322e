// The test vectors published in docs/stream-format.md: reproduced byte for byte from their
// inputs, decrypted, and their intermediate keys checked. The document is the one source.
#include <nlohmann/json.hpp>

#include "shield_nitro/shield/kdf.h"
#include "shield_nitro/shield/stream.h"
#include "support/doc_json.h"
#include "test_support.h"

namespace shield_nitro::shield {
namespace {

// The first ```json block of the format document.
nlohmann::json doc_vectors() { return test_support::doc_json_block("docs/stream-format.md"); }

Bytes hex(const nlohmann::json& v, const char* field) { return hex_decode(v[field].get<std::string>()); }

Shield shield_for(const nlohmann::json& v, Random& salt_source) {
  ShieldOptions o{.suite = parse_suite(v["suite"].get<std::string>()), .random = &salt_source};
  if (v["mode"] == "password")
    return Shield::with_password(as_bytes(v["password"].get<std::string>()), v["service"].get<std::string>(), o);
  return Shield::with_key(ShieldKey::from_bytes(hex(v, "key_hex")), o);
}

TEST(StreamVectors, DocumentHasThree) { EXPECT_EQ(doc_vectors().size(), 3u); }

TEST(StreamVectors, ReproduceDecryptAndCheckKeys) {
  for (auto& v : doc_vectors()) {
    SCOPED_TRACE(v["name"].get<std::string>());
    const bool pw = v["mode"] == "password";
    ScriptedRandom salt_source(pw ? hex(v, "kdf_salt_hex") : Bytes{});
    Shield s = shield_for(v, salt_source);
    ScriptedRandom stream_random(testing::concat(hex(v, "stream_salt_hex"), hex(v, "nonce_prefix_hex")));
    Bytes pt = hex(v, "plaintext_hex");
    Bytes out = encrypt_stream(s, pt, {.chunk_size = v["chunk_size"].get<uint32_t>(), .random = &stream_random});
    EXPECT_EQ(hex_encode(out), v["expected_output_hex"]);
    EXPECT_EQ(to_bytes(decrypt_stream(s, hex(v, "expected_output_hex")).view()), pt);

    Bytes master = pw ? to_bytes(derive_password_master(as_bytes(v["password"].get<std::string>()), hex(v, "kdf_salt_hex"),
                                                        v["service"].get<std::string>())
                                     .view())
                      : hex(v, "key_hex");
    EXPECT_EQ(hex_encode(master), v["master_key_hex"]);
    EXPECT_EQ(hex_encode(derive_stream_key(master, hex(v, "stream_salt_hex")).view()), v["stream_key_hex"]);
  }
}

}  // namespace
}  // namespace shield_nitro::shield
