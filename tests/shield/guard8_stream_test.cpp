// The Guard8 StreamCipher reader against files written by Guard8's own Python implementation
// (tests/shield/data/guard8, see its README), every way a file can be malformed, cut, tampered
// with or reordered, and Shield v4 with a non-default PBKDF2 iteration count.
#include "shield_nitro/shield/guard8_stream.h"

#include <openssl/evp.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/shield/shield.h"
#include "test_support.h"

namespace shield_nitro::shield {
namespace {

const std::string kData = std::string(SN_SOURCE_DIR) + "/tests/shield/data/guard8/";

const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    std::ifstream f(kData + "manifest.json");
    return nlohmann::json::parse(f);
  }();
  return m;
}

std::string sha256_hex(ByteView data) {
  uint8_t md[32];
  unsigned n = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr), 1);
  return hex_encode({md, n});
}

// The patterned plaintexts of make_data.py: byte i is (31 i + 7) mod 256.
Bytes pattern(size_t n) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((i * 31 + 7) % 256);
  return out;
}

Bytes raw_key() { return hex_decode(manifest()["key_hex"].get<std::string>()); }

struct Outcome {
  Errc code = Errc::kInternal;
  std::string message;
  Bytes released;  // what reached the sink before the failure
};

Outcome decrypt_failure(ByteView file, ByteView key, const Guard8DecryptOptions& options = {}) {
  Outcome o;
  MemorySource src(file);
  BytesSink sink(o.released);
  try {
    decrypt_guard8_stream(key, src, sink, options);
    ADD_FAILURE() << "decrypted without an error";
  } catch (const Error& e) {
    o.code = e.code();
    o.message = e.what();
  }
  return o;
}

#define EXPECT_REFUSED(outcome, errc, text)                                     \
  do {                                                                          \
    Outcome o_ = (outcome);                                                     \
    EXPECT_EQ(o_.code, errc) << o_.message;                                     \
    EXPECT_NE(o_.message.find(text), std::string::npos) << o_.message;          \
  } while (0)

TEST(Guard8Stream, DecryptsEveryFileGuard8Wrote) {
  for (const auto& s : manifest()["streams"]) {
    const std::string file = s["file"];
    SCOPED_TRACE(file);
    SecureBytes key = s["mode"] == "key" ? SecureBytes(raw_key())
                                         : guard8_password_key(as_bytes(manifest()["password"].get<std::string>()),
                                                               s["original_name"].get<std::string>());
    Bytes in = read_file(kData + file);
    MemorySource src(in);
    Bytes out;
    BytesSink sink(out);
    uint64_t progressed = 0;
    auto count = [&](uint64_t n) { progressed += n; };
    uint64_t chunks = decrypt_guard8_stream(key.view(), src, sink, {.on_progress = count});
    EXPECT_EQ(out.size(), s["plaintext_size"].get<size_t>());
    EXPECT_EQ(sha256_hex(out), s["plaintext_sha256"]);
    const uint64_t chunk_size = s["chunk_size"];
    EXPECT_EQ(chunks, (out.size() + chunk_size - 1) / chunk_size);
    EXPECT_EQ(progressed, in.size() - kGuard8HeaderSize - 36);  // every record, not the header or end
  }
}

TEST(Guard8Stream, PasswordKeyIsSaltedWithTheOriginalName) {
  const std::string pw = manifest()["password"];
  Bytes in = read_file(kData + "one.txt.enc");
  SecureBytes renamed = guard8_password_key(as_bytes(pw), "one.txt.enc");
  EXPECT_REFUSED(decrypt_failure(in, renamed.view()), Errc::kAuth, "chunk 0: authentication failed");
  SecureBytes wrong_pw = guard8_password_key(as_bytes("not-the-password"), "one.txt");
  EXPECT_REFUSED(decrypt_failure(in, wrong_pw.view()), Errc::kAuth, "chunk 0: authentication failed");
  // An empty file has no chunk: only its end tag can tell a wrong password.
  SecureBytes empty_key = guard8_password_key(as_bytes("not-the-password"), "empty.txt");
  EXPECT_REFUSED(decrypt_failure(read_file(kData + "empty.txt.enc"), empty_key.view()), Errc::kAuth,
                 "end tag does not match 0 chunks");
  EXPECT_EQ(testing::code_of([&] { guard8_password_key(as_bytes(pw), ""); }), Errc::kUsage);
  EXPECT_EQ(testing::code_of([&] { guard8_password_key(as_bytes(pw), "x", 0); }), Errc::kUsage);
  Bytes out;
  MemorySource src(in);
  BytesSink sink(out);
  EXPECT_EQ(testing::code_of([&] { decrypt_guard8_stream({}, src, sink); }), Errc::kUsage);
}

// keyed.bin.enc: chunks of 64, 64, 64 and 58 bytes under the raw key; no PBKDF2, so fast.
class Guard8Keyed : public ::testing::Test {
 protected:
  Bytes file = read_file(kData + "keyed.bin.enc");
  Bytes key = raw_key();
  static constexpr size_t kRecord = 4 + 64 + 32;  // length field + nonce + chunk + tag
  static size_t record_at(size_t i) { return kGuard8HeaderSize + i * kRecord; }
  const size_t end_at = record_at(3) + 4 + 58 + 32;  // the zero length field of the end marker

  Bytes cut(size_t n) const { return Bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(n)); }
  Outcome run(ByteView f, const Guard8DecryptOptions& o = {}) const { return decrypt_failure(f, key, o); }
};

TEST_F(Guard8Keyed, LayoutIsAsGuard8Writes) {
  ASSERT_EQ(file.size(), end_at + 4 + 32);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(file[record_at(i)], 96) << i;
  EXPECT_EQ(file[record_at(3)], 90);
  EXPECT_EQ(Bytes(file.begin() + end_at, file.begin() + end_at + 4), Bytes(4, 0));
}

TEST_F(Guard8Keyed, HeaderCutShort) {
  for (size_t n : {0, 1, 4, 19}) EXPECT_REFUSED(run(cut(n)), Errc::kFormat, "header cut short: " + std::to_string(n));
}

TEST_F(Guard8Keyed, TruncationAtEveryKindOfPlace) {
  EXPECT_REFUSED(run(cut(kGuard8HeaderSize)), Errc::kFormat, "ends after 0 chunks without its end tag");
  EXPECT_REFUSED(run(cut(record_at(2))), Errc::kFormat, "ends after 2 chunks without its end tag");
  EXPECT_REFUSED(run(cut(end_at)), Errc::kFormat, "ends after 4 chunks without its end tag");
  EXPECT_REFUSED(run(cut(record_at(2) + 3)), Errc::kFormat, "chunk 2: length field cut short (3 of 4 bytes)");
  EXPECT_REFUSED(run(cut(record_at(2) + 4 + 50)), Errc::kFormat, "chunk 2: record cut short (50 of 96 bytes)");
  EXPECT_REFUSED(run(cut(end_at + 4)), Errc::kFormat, "end tag after 4 chunks cut short (0 of 32 bytes)");
  EXPECT_REFUSED(run(cut(file.size() - 1)), Errc::kFormat, "end tag after 4 chunks cut short (31 of 32 bytes)");
}

TEST_F(Guard8Keyed, RecordLengthOutOfRange) {
  for (uint8_t len : {1, 31}) {
    Bytes bad = file;
    bad[record_at(1)] = len;
    EXPECT_REFUSED(run(bad), Errc::kFormat,
                   "chunk 1: record of " + std::to_string(len) + " bytes is shorter than its 16-byte nonce");
  }
  EXPECT_REFUSED(run(file, {.max_chunk_size = 63}), Errc::kPolicy, "chunk 0: record of 96 bytes exceeds");
  Bytes huge = file;
  for (size_t k = 0; k < 4; ++k) huge[record_at(3) + k] = 0xff;
  Outcome o = run(huge);
  EXPECT_EQ(o.code, Errc::kPolicy) << o.message;
  EXPECT_NE(o.message.find("chunk 3: record of 4294967295 bytes exceeds"), std::string::npos) << o.message;
  EXPECT_EQ(o.released.size(), 3u * 64) << "chunks before the bad length are released";
}

TEST_F(Guard8Keyed, TamperingAnywhereInAChunkNamesIt) {
  const size_t r = record_at(2) + 4;
  for (size_t off : {size_t{0}, size_t{15}, size_t{16}, size_t{79}, size_t{80}, size_t{95}}) {  // nonce, text, tag
    SCOPED_TRACE(off);
    Outcome o = run(testing::flip_bit(file, (r + off) * 8));
    EXPECT_EQ(o.code, Errc::kAuth);
    EXPECT_NE(o.message.find("chunk 2: authentication failed"), std::string::npos) << o.message;
    EXPECT_EQ(o.released, pattern(2 * 64)) << "chunks 0 and 1 verified and were released, nothing of chunk 2";
  }
}

TEST_F(Guard8Keyed, ChunkKeysDependOnTheirPositionAndTheHeaderSalt) {
  // Swap chunks 0 and 1: each verifies only at its own index.
  Bytes swapped = file;
  std::copy(file.begin() + record_at(1), file.begin() + record_at(2), swapped.begin() + record_at(0));
  std::copy(file.begin() + record_at(0), file.begin() + record_at(1), swapped.begin() + record_at(1));
  EXPECT_REFUSED(run(swapped), Errc::kAuth, "chunk 0: authentication failed");
  // Duplicate chunk 1 in place of chunk 2.
  Bytes duplicated = file;
  std::copy(file.begin() + record_at(1), file.begin() + record_at(2), duplicated.begin() + record_at(2));
  EXPECT_REFUSED(run(duplicated), Errc::kAuth, "chunk 2: authentication failed");
  EXPECT_REFUSED(run(testing::flip_bit(file, 4 * 8)), Errc::kAuth, "chunk 0: authentication failed");
}

TEST_F(Guard8Keyed, RemovingOrAddingChunksFailsTheEndTag) {
  // Drop the last chunk but keep the end marker and tag.
  Bytes dropped = cut(record_at(3));
  dropped.insert(dropped.end(), file.begin() + end_at, file.end());
  Outcome o = run(dropped);
  EXPECT_EQ(o.code, Errc::kAuth);
  EXPECT_NE(o.message.find("end tag does not match 3 chunks"), std::string::npos) << o.message;
  EXPECT_EQ(o.released.size(), 3u * 64);
  // A forged empty end marker after chunk 1 (the tag of another count cannot be made).
  Bytes forged = cut(record_at(2));
  forged.insert(forged.end(), file.begin() + end_at, file.end());
  EXPECT_REFUSED(run(forged), Errc::kAuth, "end tag does not match 2 chunks");
  EXPECT_REFUSED(run(testing::flip_bit(file, (file.size() - 1) * 8 + 7)), Errc::kAuth, "end tag does not match 4");
}

TEST_F(Guard8Keyed, DataAfterTheEndTag) {
  EXPECT_REFUSED(run(testing::concat(file, Bytes{0})), Errc::kFormat, "data follows the end tag after 4 chunks");
  EXPECT_REFUSED(run(testing::concat(file, file)), Errc::kFormat, "data follows the end tag");
}

TEST_F(Guard8Keyed, TheHeaderChunkSizeIsNotNeededToRead) {
  // Guard8 does not authenticate or use it; neither do we (documented in stream-format.md).
  Bytes other = file;
  other[0] ^= 0x55;
  other[3] = 0xff;
  MemorySource src(other);
  Bytes out;
  BytesSink sink(out);
  EXPECT_EQ(decrypt_guard8_stream(key, src, sink), 4u);
  EXPECT_EQ(out, pattern(250));
}

// Shield v4 messages that Guard8 sealed with a non-default PBKDF2 iteration count.
TEST(Guard8V4, NonDefaultIterationCount) {
  const std::string pw = manifest()["password"];
  for (const auto& v : manifest()["v4"]) {
    SCOPED_TRACE(v["file"].get<std::string>());
    Bytes msg = read_file(kData + v["file"].get<std::string>());
    Shield right = Shield::with_password(as_bytes(pw), v["service"].get<std::string>(),
                                         {.max_age_ms = std::nullopt, .pbkdf2_iterations = v["iterations"].get<int>()});
    EXPECT_EQ(to_string(right.decrypt(msg).view()), v["plaintext"]);
    Shield default_count =
        Shield::with_password(as_bytes(pw), v["service"].get<std::string>(), {.max_age_ms = std::nullopt});
    EXPECT_EQ(testing::code_of([&] { default_count.decrypt(msg); }), Errc::kAuth);
  }
}

TEST(Guard8V4, IterationCountAppliesToEncryptionAndMustBePositive) {
  Shield a = Shield::with_password(as_bytes("pw"), "svc", {.pbkdf2_iterations = 1000});
  Shield b = Shield::with_password(as_bytes("pw"), "svc", {.pbkdf2_iterations = 1000});
  Shield c = Shield::with_password(as_bytes("pw"), "svc", {.pbkdf2_iterations = 1001});
  Bytes msg = a.encrypt(as_bytes("counted"));
  EXPECT_EQ(to_string(b.decrypt(msg).view()), "counted");
  EXPECT_EQ(testing::code_of([&] { c.decrypt(msg); }), Errc::kAuth);
  Bytes st = encrypt_stream(a, as_bytes("streamed too"), StreamEncryptOptions{.chunk_size = 64});
  EXPECT_EQ(to_string(decrypt_stream(b, st).view()), "streamed too");
  EXPECT_EQ(testing::code_of([&] { decrypt_stream(c, st); }), Errc::kAuth);
  EXPECT_EQ(testing::code_of([] { Shield::with_password(as_bytes("pw"), "svc", {.pbkdf2_iterations = 0}); }),
            Errc::kUsage);
}

}  // namespace
}  // namespace shield_nitro::shield
