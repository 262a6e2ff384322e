// The stream container: round trips through every API, and every way of tampering with
// chunks, the header or the length.
#include <functional>
#include <sstream>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/shield/stream.h"
#include "test_support.h"

namespace shield_nitro::shield {
namespace {

using testing::code_of;
using testing::flip_bit;
using testing::random_bytes;

constexpr uint32_t kChunk = 64;
constexpr size_t kKeyHeader = 50;
constexpr size_t kRecord = kChunk + 16;

Shield key_shield(Suite suite = Suite::kAes256Gcm, uint8_t fill = 7) {
  return Shield::with_key(ShieldKey::from_bytes(Bytes(32, fill)), {.suite = suite});
}

Bytes encrypt_via_pipeline(const Shield& s, ByteView pt, uint32_t chunk, unsigned threads) {
  MemorySource in(pt);
  Bytes out;
  BytesSink sink(out);
  encrypt_stream(s, in, sink, {.chunk_size = chunk, .threads = threads});
  return out;
}

Bytes decrypt_via_pipeline(const Shield& s, ByteView container, unsigned threads) {
  MemorySource in(container);
  SecureBytes out;
  SecureSink sink(out);
  decrypt_stream(s, in, sink, {.threads = threads});
  return to_bytes(out.view());
}

Bytes decrypt_incrementally(const Shield& s, ByteView container, size_t piece) {
  StreamDecryptor d(s);
  Bytes out;
  auto emit = [&](ByteView p) { out.insert(out.end(), p.begin(), p.end()); };
  for (size_t off = 0; off < container.size(); off += piece)
    d.push(container.subspan(off, std::min(piece, container.size() - off)), emit);
  d.finish(emit);
  EXPECT_EQ(d.plaintext_bytes(), out.size());
  return out;
}

Bytes decrypt_by_chunks(const Shield& s, ByteView container) {
  MemorySource src(container);
  StreamReader r(s, src);
  Bytes out;
  for (uint64_t i = 0; i < r.chunk_count(); ++i) {
    SecureBytes c = r.read_chunk(i);
    out.insert(out.end(), c.view().begin(), c.view().end());
  }
  EXPECT_EQ(r.plaintext_size(), out.size());
  return out;
}

// Every decrypt path must refuse container; returns the pipeline's error code.
Errc all_paths_refuse(const Shield& s, ByteView container) {
  EXPECT_NE(code_of([&] { decrypt_stream(s, container); }), Errc::kInternal);
  EXPECT_NE(code_of([&] { decrypt_incrementally(s, container, 33); }), Errc::kInternal);
  EXPECT_NE(code_of([&] { decrypt_by_chunks(s, container); }), Errc::kInternal);
  return code_of([&] { decrypt_via_pipeline(s, container, 2); });
}

struct Case {
  Suite suite;
  uint32_t chunk;
};

class StreamRoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(StreamRoundTrip, EverySizeAroundTheChunkThroughEveryApi) {
  auto [suite, chunk] = GetParam();
  Shield s = key_shield(suite);
  for (size_t n : {size_t{0}, size_t{1}, size_t{chunk} - 1, size_t{chunk}, size_t{chunk} + 1, size_t{3} * chunk,
                   size_t{5} * chunk + 7}) {
    SCOPED_TRACE(n);
    Bytes pt = random_bytes(n);
    Bytes c = encrypt_via_pipeline(s, pt, chunk, 1);
    size_t chunks = n == 0 ? 1 : (n + chunk - 1) / chunk;
    EXPECT_EQ(c.size(), kKeyHeader + n + 16 * chunks);
    EXPECT_EQ(c[5], static_cast<uint8_t>(suite));
    Bytes c2 = encrypt_stream(s, pt, {.chunk_size = chunk, .threads = 3});
    EXPECT_EQ(c2.size(), c.size());
    for (const Bytes& container : {c, c2}) {
      EXPECT_EQ(to_bytes(decrypt_stream(s, container).view()), pt);
      EXPECT_EQ(decrypt_via_pipeline(s, container, 1), pt);
      EXPECT_EQ(decrypt_via_pipeline(s, container, 4), pt);
      EXPECT_EQ(decrypt_incrementally(s, container, 1), pt);
      EXPECT_EQ(decrypt_incrementally(s, container, 4096), pt);
      EXPECT_EQ(decrypt_by_chunks(s, container), pt);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SuitesAndChunks, StreamRoundTrip,
                         ::testing::Values(Case{Suite::kAes256Gcm, 64}, Case{Suite::kChaCha20Poly1305, 64},
                                           Case{Suite::kAes256Gcm, 1000}, Case{Suite::kChaCha20Poly1305, 4096}));

TEST(Stream, HundredMebibytesWithDefaultsAndAllCores) {
  Bytes pt = random_bytes(100u << 20);
  Shield s = key_shield();
  Bytes c = encrypt_via_pipeline(s, pt, kStreamDefaultChunkSize, 0);
  EXPECT_EQ(c.size(), kKeyHeader + pt.size() + 100 * 16);
  EXPECT_EQ(decrypt_via_pipeline(s, c, 0), pt);
  EXPECT_TRUE(to_bytes(decrypt_stream(s, c).view()) == pt);
}

TEST(Stream, PasswordModeCarriesTheSaltAndCachesAfterVerifying) {
  Shield sender = Shield::with_password(as_bytes("pw"), "svc", {.suite = Suite::kChaCha20Poly1305});
  Shield receiver = Shield::with_password(as_bytes("pw"), "svc");
  Bytes pt = random_bytes(1000);
  Bytes c = encrypt_stream(sender, pt, {.chunk_size = 256});
  EXPECT_EQ(c[6], 0x03);
  EXPECT_EQ(c.size(), 66 + 1000 + 4 * 16u);
  Bytes tampered = c;
  tampered[66 + 5] ^= 1;  // the first chunk: no tag verified under the derived key yet
  EXPECT_EQ(code_of([&] { decrypt_stream(receiver, tampered, {.threads = 1}); }), Errc::kAuth);
  EXPECT_EQ(receiver.cached_salts(), 0u);
  EXPECT_EQ(to_bytes(decrypt_stream(receiver, c).view()), pt);
  EXPECT_EQ(receiver.cached_salts(), 1u);
  EXPECT_EQ(decrypt_incrementally(receiver, c, 100), pt);
  Shield key = key_shield();
  EXPECT_EQ(code_of([&] { decrypt_stream(key, c); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { decrypt_stream(receiver, encrypt_stream(key, pt)); }), Errc::kFormat);
}

// ---- tampering with chunks ----

class StreamTamper : public ::testing::Test {
 protected:
  Shield s = key_shield();
  Bytes pt = random_bytes(4 * kChunk + 10);  // five records, the last one short
  Bytes c = encrypt_stream(s, pt, {.chunk_size = kChunk});
  ByteView header() const { return ByteView(c).first(kKeyHeader); }
  ByteView record(size_t i) const {
    size_t off = kKeyHeader + i * kRecord;
    return ByteView(c).subspan(off, std::min(kRecord, c.size() - off));
  }
  Bytes assemble(std::initializer_list<size_t> order) const {
    Bytes out(header().begin(), header().end());
    for (size_t i : order) out.insert(out.end(), record(i).begin(), record(i).end());
    return out;
  }
};

TEST_F(StreamTamper, OriginalAssemblesBack) { EXPECT_EQ(to_bytes(decrypt_stream(s, assemble({0, 1, 2, 3, 4})).view()), pt); }

TEST_F(StreamTamper, ChunkRemoved) {
  EXPECT_EQ(all_paths_refuse(s, assemble({0, 2, 3, 4})), Errc::kAuth);
  EXPECT_EQ(all_paths_refuse(s, assemble({1, 2, 3, 4})), Errc::kAuth);
}

TEST_F(StreamTamper, ChunksSwapped) { EXPECT_EQ(all_paths_refuse(s, assemble({0, 2, 1, 3, 4})), Errc::kAuth); }

TEST_F(StreamTamper, ChunkDuplicated) { EXPECT_EQ(all_paths_refuse(s, assemble({0, 1, 1, 2, 3, 4})), Errc::kAuth); }

TEST_F(StreamTamper, ChunkOrBytesAppended) {
  Bytes extra = assemble({0, 1, 2, 3, 4});
  extra.insert(extra.end(), record(0).begin(), record(0).end());
  EXPECT_EQ(all_paths_refuse(s, extra), Errc::kAuth);
  EXPECT_EQ(all_paths_refuse(s, testing::concat(c, Bytes{0})), Errc::kAuth);
  Bytes twice = testing::concat(c, c);
  EXPECT_EQ(all_paths_refuse(s, twice), Errc::kAuth);
}

TEST_F(StreamTamper, CutExactlyAfterEveryChunk) {
  for (size_t k = 0; k < 5; ++k) {
    Bytes cut(c.begin(), c.begin() + static_cast<long>(kKeyHeader + k * kRecord));
    EXPECT_EQ(all_paths_refuse(s, cut), Errc::kAuth) << k;
  }
}

TEST_F(StreamTamper, EveryTruncationIsRefused) {
  for (size_t n = 0; n < c.size(); ++n) {
    Errc e = code_of([&] { decrypt_via_pipeline(s, ByteView(c).first(n), 1); });
    EXPECT_TRUE(n < kKeyHeader ? e == Errc::kFormat : e == Errc::kAuth) << n;
  }
}

TEST_F(StreamTamper, EveryFlippedBitIsRefused) {
  for (size_t bit = 0; bit < c.size() * 8; ++bit) {
    Bytes bad = flip_bit(c, bit);
    Errc e = code_of([&] { decrypt_stream(s, bad); });
    if (bit >= 11 * 8) {
      EXPECT_EQ(e, Errc::kAuth) << bit;  // salt, prefix, records
    }
  }
}

TEST_F(StreamTamper, HeaderFieldsAreCheckedOrAuthenticated) {
  auto with = [&](size_t off, uint8_t v) {
    Bytes b = c;
    b[off] = v;
    return b;
  };
  EXPECT_EQ(all_paths_refuse(s, with(0, 'X')), Errc::kFormat);                 // magic
  EXPECT_EQ(all_paths_refuse(s, with(4, 0x02)), Errc::kUnsupported);           // version
  EXPECT_EQ(all_paths_refuse(s, with(5, 0x03)), Errc::kUnsupported);           // suite
  EXPECT_EQ(all_paths_refuse(s, with(5, 0x02)), Errc::kAuth);                  // other known suite
  EXPECT_EQ(all_paths_refuse(s, with(6, 0x07)), Errc::kFormat);                // key mode
  EXPECT_EQ(all_paths_refuse(s, with(10, 0x41)), Errc::kAuth);                 // chunk size 65
  EXPECT_EQ(all_paths_refuse(s, with(10, 0x3f)), Errc::kFormat);               // chunk size 63
  EXPECT_EQ(all_paths_refuse(s, with(7, 0x02)), Errc::kFormat);                // 32 MiB chunks
  EXPECT_EQ(all_paths_refuse(s, with(12, static_cast<uint8_t>(c[12] ^ 1))), Errc::kAuth);  // stream salt
}

TEST_F(StreamTamper, WrongKeyAndMaxChunkPolicy) {
  EXPECT_EQ(all_paths_refuse(key_shield(Suite::kAes256Gcm, 8), c), Errc::kAuth);
  EXPECT_EQ(code_of([&] { decrypt_stream(s, c, {.max_chunk_size = 63}); }), Errc::kPolicy);
}

// ---- failures say which chunk and what happened to it ----

// The message every decrypt path gives for container (they must agree).
std::string refusal(const Shield& s, ByteView container) {
  auto message = [&](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kAuth) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "not refused";
    return "";
  };
  std::string m = message([&] { decrypt_stream(s, container, {.threads = 4}); });
  EXPECT_EQ(message([&] { decrypt_via_pipeline(s, container, 2); }), m);
  EXPECT_EQ(message([&] { decrypt_via_pipeline(s, container, 1); }), m);
  EXPECT_EQ(message([&] { decrypt_incrementally(s, container, 33); }), m);
  EXPECT_EQ(message([&] { decrypt_by_chunks(s, container); }), m);
  return m;
}

TEST_F(StreamTamper, AlteredChunkIsABadTagAtItsIndex) {
  Bytes bad = c;
  bad[kKeyHeader + 2 * kRecord + 7] ^= 0x01;
  EXPECT_EQ(refusal(s, bad),
            "stream chunk 2: authentication failed: the tag does not verify (the chunk was altered, or the key or "
            "header is wrong)");
  EXPECT_EQ(refusal(key_shield(Suite::kAes256Gcm, 8), c),
            "stream chunk 0: authentication failed: the tag does not verify (the chunk was altered, or the key or "
            "header is wrong)");
}

TEST_F(StreamTamper, CutAtAChunkBoundaryIsATruncationAfterThatChunk) {
  EXPECT_EQ(refusal(s, ByteView(c).first(kKeyHeader + 3 * kRecord)),
            "stream chunk 2: authentication failed: truncated: the stream ends after this chunk, which is not its "
            "final one");
}

TEST_F(StreamTamper, CutInsideAChunkIsATruncationOfThatChunk) {
  EXPECT_EQ(refusal(s, ByteView(c).first(kKeyHeader + 3 * kRecord + 5)),
            "stream chunk 3: authentication failed: truncated, the stream ends 5 bytes into this chunk, before its "
            "16-byte tag");
  EXPECT_EQ(refusal(s, ByteView(c).first(kKeyHeader + 3 * kRecord + 40)),
            "stream chunk 3: authentication failed: the tag does not verify (the stream was cut inside this final "
            "chunk, or the chunk was altered)");
}

TEST_F(StreamTamper, SwappedChunksAreAReorderingAtTheFirstMovedOne) {
  EXPECT_EQ(refusal(s, assemble({0, 2, 1, 3, 4})),
            "stream chunk 1: authentication failed: chunks missing or reordered: this position holds chunk 2");
  EXPECT_EQ(refusal(s, assemble({3, 1, 2, 0, 4})),
            "stream chunk 0: authentication failed: chunks missing or reordered: this position holds chunk 3");
}

TEST_F(StreamTamper, RemovedOrDuplicatedChunkIsNamed) {
  EXPECT_EQ(refusal(s, assemble({0, 2, 3, 4})),
            "stream chunk 1: authentication failed: chunks missing or reordered: this position holds chunk 2");
  EXPECT_EQ(refusal(s, assemble({0, 1, 1, 2, 3, 4})),
            "stream chunk 2: authentication failed: chunks duplicated or reordered: this position holds chunk 1");
}

TEST(StreamErrors, DataAfterTheFinalChunkIsNamedAsAppended) {
  Shield s = key_shield();
  Bytes c = encrypt_stream(s, random_bytes(4 * kChunk), {.chunk_size = kChunk});  // 4 full records
  EXPECT_EQ(refusal(s, testing::concat(c, Bytes(20, 0))),
            "stream chunk 3: authentication failed: data was appended: this is the stream's final chunk, yet more "
            "follows it");
  Bytes pt = random_bytes(2 * kChunk);
  Bytes full = encrypt_stream(s, pt, {.chunk_size = kChunk});
  Bytes early = Bytes(full.begin(), full.begin() + kKeyHeader);
  early.insert(early.end(), full.end() - kRecord, full.end());  // the final chunk moved to position 0
  early.insert(early.end(), full.begin() + kKeyHeader, full.end() - kRecord);
  EXPECT_EQ(refusal(s, early),
            "stream chunk 0: authentication failed: chunks missing or reordered: this position holds chunk 1, the "
            "final one");
}

TEST(StreamErrors, EmptyAndForeignInput) {
  Shield s = key_shield();
  EXPECT_EQ(all_paths_refuse(s, {}), Errc::kFormat);
  EXPECT_EQ(all_paths_refuse(s, s.encrypt(as_bytes("v4 message"))), Errc::kFormat);
  EXPECT_EQ(code_of([&] { encrypt_stream(s, {}, {.chunk_size = 63}); }), Errc::kUsage);
  EXPECT_EQ(code_of([&] { encrypt_stream(s, {}, {.chunk_size = kStreamMaxChunkSize + 1}); }), Errc::kUsage);
}

// ---- random access and incremental delivery ----

TEST(StreamRandomAccess, ReadsAnyChunkAloneAndOnlyThatOneFailsWhenTampered) {
  Shield s = key_shield();
  Bytes pt = random_bytes(10 * 100 + 1);
  testing::TempDir dir;
  write_file_atomic(dir / "c", encrypt_stream(s, pt, {.chunk_size = 100}));
  FileSource file(dir / "c");
  StreamReader r(s, file);
  ASSERT_EQ(r.chunk_count(), 11u);
  EXPECT_EQ(r.chunk_size(), 100u);
  for (uint64_t i : {7, 0, 10, 3}) {
    SecureBytes chunk = r.read_chunk(i);
    EXPECT_EQ(to_bytes(chunk.view()), Bytes(pt.begin() + static_cast<long>(i * 100),
                                            pt.begin() + static_cast<long>(std::min<size_t>(pt.size(), (i + 1) * 100))));
  }
  EXPECT_EQ(code_of([&] { r.read_chunk(11); }), Errc::kNotFound);

  Bytes c = read_file(dir / "c");
  c[kKeyHeader + 5 * 116 + 3] ^= 0x80;
  MemorySource mem(c);
  StreamReader tampered(s, mem);
  EXPECT_EQ(code_of([&] { tampered.read_chunk(5); }), Errc::kAuth);
  EXPECT_EQ(tampered.read_chunk(4).size(), 100u);
  EXPECT_EQ(tampered.read_chunk(6).size(), 100u);
}

TEST(StreamRandomAccess, TruncatedFileFailsAtItsNewLastChunk) {
  Shield s = key_shield();
  Bytes c = encrypt_stream(s, random_bytes(1000), {.chunk_size = 100});
  c.resize(kKeyHeader + 4 * 116);
  MemorySource mem(c);
  StreamReader r(s, mem);
  EXPECT_EQ(r.chunk_count(), 4u);
  EXPECT_EQ(r.read_chunk(0).size(), 100u);
  EXPECT_EQ(code_of([&] { r.read_chunk(3); }), Errc::kAuth);
}

TEST(StreamDecryptorTest, EmitsVerifiedChunksAsTheyArriveAndTheLastAtFinish) {
  Shield s = key_shield();
  Bytes pt = random_bytes(3 * kChunk);
  Bytes c = encrypt_stream(s, pt, {.chunk_size = kChunk});
  StreamDecryptor d(s);
  std::vector<size_t> sizes;
  auto emit = [&](ByteView p) { sizes.push_back(p.size()); };
  d.push(ByteView(c).first(kKeyHeader + kRecord), emit);
  EXPECT_TRUE(sizes.empty());  // not yet known whether that record is the last
  d.push(ByteView(c).subspan(kKeyHeader + kRecord, 1), emit);
  EXPECT_EQ(sizes, std::vector<size_t>{kChunk});
  d.push(ByteView(c).subspan(kKeyHeader + kRecord + 1), emit);
  EXPECT_EQ(sizes.size(), 2u);
  d.finish(emit);
  EXPECT_EQ(sizes, (std::vector<size_t>{kChunk, kChunk, kChunk}));
  EXPECT_EQ(code_of([&] { d.push(as_bytes("late"), emit); }), Errc::kUsage);
}

TEST(StreamDecryptorTest, TruncationShowsAtFinish) {
  Shield s = key_shield();
  Bytes c = encrypt_stream(s, random_bytes(3 * kChunk), {.chunk_size = kChunk});
  StreamDecryptor d(s);
  auto ignore = [](ByteView) {};
  d.push(ByteView(c).first(kKeyHeader + 2 * kRecord), ignore);
  EXPECT_EQ(code_of([&] { d.finish(ignore); }), Errc::kAuth);
  StreamDecryptor header_only(s);
  header_only.push(ByteView(c).first(20), ignore);
  EXPECT_EQ(code_of([&] { header_only.finish(ignore); }), Errc::kFormat);
}

TEST(StreamIo, IostreamAndPrefixedSources) {
  Shield s = key_shield();
  Bytes pt = random_bytes(5000);
  std::stringstream plain(std::string(pt.begin(), pt.end()));
  std::stringstream sealed;
  IstreamSource in(plain);
  OstreamSink out(sealed);
  encrypt_stream(s, in, out, {.chunk_size = 1024, .threads = 2});
  std::string c = sealed.str();
  std::stringstream rest(c.substr(4));
  IstreamSource rest_src(rest);
  PrefixedSource src(Bytes(c.begin(), c.begin() + 4), rest_src);
  SecureBytes back;
  SecureSink sink(back);
  decrypt_stream(s, src, sink);
  EXPECT_EQ(to_bytes(back.view()), pt);
}

TEST(StreamIo, ProgressCountsEveryInputByte) {
  Shield s = key_shield();
  Bytes pt = random_bytes(10000);
  uint64_t enc = 0, dec = 0;
  MemorySource in(pt);
  Bytes c;
  BytesSink sink(c);
  encrypt_stream(s, in, sink, {.chunk_size = 1000, .threads = 2, .on_progress = [&](uint64_t n) { enc += n; }});
  MemorySource cin(c);
  NullSink null;
  decrypt_stream(s, cin, null, {.on_progress = [&](uint64_t n) { dec += n; }});
  EXPECT_EQ(enc, pt.size());
  EXPECT_EQ(dec, c.size() - kKeyHeader);
}

}  // namespace
}  // namespace shield_nitro::shield
