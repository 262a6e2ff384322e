// Sealed files: round trips through every opening path, the header authenticated with the
// stream (every field damaged, the stream moved under another header), the strict header
// parser (truncation, oversize and non-canonical fields), and the refusals' messages.
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <utility>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/shield/shield.h"
#include "shield_nitro/shield/stream.h"
#include "test_util.h"

namespace sealed_test {
namespace {

const EncryptionContext kContext = {{"app", "inference"}, {"tier", "prod"}};

SecureBytes open_all_ways(ByteView file, const DataKey& key, uint32_t chunk_hint) {
  // In memory.
  SecureBytes a = open(file, release_of(key));
  // Sequential Source -> Sink.
  MemorySource src(file);
  SecureBytes b;
  SecureSink sink(b);
  open(src, sink, release_of(key));
  EXPECT_EQ(to_bytes(a.view()), to_bytes(b.view()));
  // Into caller memory, several threads.
  MemorySource ra(file);
  Description d = describe(ra);
  EXPECT_EQ(d.plaintext_size, a.size());
  EXPECT_EQ(d.chunk_size, chunk_hint);
  Bytes c(d.plaintext_size);
  open_into(ra, c, release_of(key), {.threads = 3});
  EXPECT_EQ(c, to_bytes(a.view()));
  // Pushed in odd pieces.
  Opener opener(release_of(key));
  Bytes e;
  auto emit = [&](ByteView v) { e.insert(e.end(), v.begin(), v.end()); };
  opener.push(file.first(7), emit);
  EXPECT_EQ(opener.header(), nullptr);  // the header is not complete yet
  for (size_t i = 7; i < file.size(); i += 7) opener.push(file.subspan(i, std::min<size_t>(7, file.size() - i)), emit);
  opener.finish(emit);
  EXPECT_NE(opener.header(), nullptr);
  EXPECT_EQ(e, to_bytes(a.view()));
  // Announced size, pushed in pieces: into its own buffer, and into a caller's destination.
  for (bool own : {true, false}) {
    Bytes dest;
    shield::PlaintextDestination into = nullptr;
    if (!own)
      into = [&](uint64_t n) {
        dest.assign(n, 0xee);
        return std::span<uint8_t>(dest);
      };
    Assembler as(file.size(), 1 << 20, release_of(key), into, {.workers = 2});
    for (size_t i = 0; i < file.size(); i += 13) as.push(file.subspan(i, std::min<size_t>(13, file.size() - i)));
    SecureBytes got = as.finish();
    EXPECT_EQ(own ? to_bytes(got.view()) : dest, to_bytes(a.view()));
    if (!as.header()) { ADD_FAILURE() << "no header after finish"; continue; }
    EXPECT_EQ(as.header()->bytes, parse_header(file).bytes);
  }
  return a;
}

TEST(Sealed, RoundTripEverySizeAndPath) {
  DataKey key = data_key();
  for (size_t n : {0, 1, 63, 64, 65, 128, 1000, 70000}) {
    SCOPED_TRACE(n);
    Bytes pt = pattern(n);
    Bytes file = seal(pt, key, kContext, {.chunk_size = 64});
    EXPECT_EQ(to_bytes(open_all_ways(file, key, 64).view()), pt);
    // The streaming writer makes a file of the same shape (fresh salts, so other bytes).
    MemorySource in(pt);
    Bytes streamed;
    BytesSink out(streamed);
    Header h = seal(in, out, key, kContext, {.chunk_size = 64, .suite = shield::Suite::kChaCha20Poly1305});
    EXPECT_EQ(streamed.size(), file.size());
    EXPECT_EQ(h.bytes, parse_header(file).bytes);
    EXPECT_EQ(to_bytes(open(streamed, release_of(key)).view()), pt);
  }
}

TEST(Sealed, HeaderCarriesWhatKmsNeedsInCanonicalOrder) {
  DataKey key = data_key();
  EncryptionContext ctx = {{"zeta", ""}, {"Alpha", "1"}, {"alpha", "é"}};
  Bytes file = seal(pattern(10), key, ctx);
  Header seen;
  open(file, [&](const Header& h) {
    seen = h;
    return key.plaintext.clone();
  });
  EXPECT_EQ(seen.key_id, key.key_id);
  EXPECT_EQ(seen.ciphertext_blob, key.ciphertext_blob);
  EXPECT_EQ(seen.context, ctx);
  EXPECT_EQ(seen.bytes, Bytes(file.begin(), file.begin() + static_cast<ptrdiff_t>(seen.size())));
  EXPECT_EQ(seen.digest_hex().size(), 64u);
  // Bytewise ascending keys: "Alpha" < "alpha" < "zeta".
  std::string text = to_string(seen.bytes);
  EXPECT_LT(text.find("Alpha"), text.find("alpha"));
  EXPECT_LT(text.find("alpha"), text.find("zeta"));
}

TEST(Sealed, WrongKeyIsRefusedBeforeAnyOutput) {
  DataKey key = data_key(0x42), other = data_key(0x43);
  Bytes file = seal(pattern(500), key, kContext, {.chunk_size = 64});
  MemorySource src(file);
  Bytes written;
  BytesSink sink(written);
  auto e = test_support::thrown([&] { open(src, sink, release_of(other)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::kAuth);
  EXPECT_NE(std::string(e->what()).find("sealed header: authentication failed"), std::string::npos) << e->what();
  EXPECT_TRUE(written.empty());
  // A key of another size (not an AES_256 data key) is refused as such.
  auto short_key = [](const Header&) { return SecureBytes(Bytes(16, 1)); };
  EXPECT_EQ(code_of([&] { open(file, short_key); }), Errc::kFormat);
  EXPECT_NE(message_of([&] { open(file, short_key); }).find("16 bytes, expected 32"), std::string::npos);
}

TEST(Sealed, ReleaseRefusalPassesThroughUnchanged) {
  DataKey key = data_key();
  Bytes file = seal(pattern(100), key, kContext);
  auto refuse = [](const Header& h) -> SecureBytes { throw Error(Errc::kRemote, "KMS: AccessDeniedException for " + h.key_id); };
  EXPECT_EQ(message_of([&] { open(file, refuse); }), "KMS: AccessDeniedException for " + key.key_id);
  MemorySource ra(file);
  Bytes dest(100);
  EXPECT_EQ(code_of([&] { open_into(ra, dest, refuse); }), Errc::kRemote);
  EXPECT_EQ(code_of([&] { open(file, KeyRelease{}); }), Errc::kUsage);
}

// Every field of the header, damaged: refused, and as what. The release callback ignores the
// header (KMS would also refuse a changed key id, blob or context), so this is what the file
// itself catches.
TEST(Sealed, EveryHeaderFieldDamaged) {
  DataKey key = data_key();
  Bytes file = seal(pattern(300), key, kContext, {.chunk_size = 64});
  Header h = parse_header(file);
  const size_t size = h.size();
  const std::string text = to_string(h.bytes);
  struct Case {
    const char* field;
    size_t offset;
    uint8_t value;
    Errc expected;
    const char* says;
  };
  const size_t key_id_at = 11, blob_at = key_id_at + key.key_id.size() + 2;
  const std::vector<Case> cases = {
      {"magic", 3, 'T', Errc::kFormat, "not a sealed file: it is a stream container"},
      {"magic", 0, 'X', Errc::kFormat, "not a sealed file: it starts with 584e534c"},
      {"version", 4, 0x02, Errc::kUnsupported, "version 2"},
      {"size", 5, 0x01, Errc::kFormat, "outside [49, 16384]"},
      {"size", 8, static_cast<uint8_t>(size + 1), Errc::kFormat, "unexplained bytes before the tag"},
      {"size", 8, static_cast<uint8_t>(size - 1), Errc::kFormat, "runs past the header's size"},
      {"key id length", 9, 0x08, Errc::kFormat, "key id is 2089 bytes, outside [1, 2048]"},
      {"blob length", blob_at - 1, 200, Errc::kFormat, "wrapped data key runs past the header's size"},
      {"key id", key_id_at + 5, 'X', Errc::kAuth, "sealed header: authentication failed"},
      {"key id", key_id_at, ' ', Errc::kFormat, "not printable ASCII"},
      {"blob length", blob_at - 1, 0, Errc::kFormat, "wrapped data key is 0 bytes"},
      {"blob", blob_at + 3, 0x00, Errc::kAuth, "sealed header: authentication failed"},
      {"pair count", blob_at + 40 + 1, 3, Errc::kFormat, "runs past"},
      {"context key", text.find("app"), 'b', Errc::kAuth, "sealed header: authentication failed"},
      {"context order", text.find("tier"), 'a', Errc::kFormat, "out of order or repeated"},
      {"context value", text.find("prod"), 0x01, Errc::kFormat, "control characters"},
      {"context value", text.find("inference"), 'I', Errc::kAuth, "sealed header: authentication failed"},
      {"tag", size - 1, 0x00, Errc::kAuth, "sealed header: authentication failed"},
      {"tag", size - 32, 0xff, Errc::kAuth, "sealed header: authentication failed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " at " + std::to_string(c.offset));
    ASSERT_LT(c.offset, size);
    Bytes bad = file;
    ASSERT_NE(bad[c.offset], c.value);
    bad[c.offset] = c.value;
    auto e = test_support::thrown([&] { open(bad, release_of(key)); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), c.expected) << e->what();
    EXPECT_NE(std::string(e->what()).find(c.says), std::string::npos) << e->what();
  }
  // And any single bit anywhere in the header: never opens.
  for (size_t bit = 0; bit < size * 8; ++bit) {
    Bytes bad = file;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    try {
      open(bad, release_of(key));
      ADD_FAILURE() << "bit " << bit << " flipped, yet the file opened";
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == Errc::kAuth || e.code() == Errc::kFormat || e.code() == Errc::kUnsupported) << e.what();
    }
  }
}

// The stream's key depends on the whole header: a valid header (its tag verifies) before
// another file's stream, same data key, still fails, at the first record.
TEST(Sealed, StreamIsBoundToItsHeader) {
  DataKey key = data_key();
  Bytes a = seal(pattern(200), key, {{"app", "a"}}, {.chunk_size = 64});
  Bytes b = seal(pattern(200), key, {{"app", "b"}}, {.chunk_size = 64});
  Header ha = parse_header(a), hb = parse_header(b);
  ASSERT_EQ(ha.size(), hb.size());
  Bytes spliced = ha.bytes;
  spliced.insert(spliced.end(), b.begin() + static_cast<ptrdiff_t>(hb.size()), b.end());
  auto e = test_support::thrown([&] { open(spliced, release_of(key)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::kAuth);
  EXPECT_NE(std::string(e->what()).find("stream chunk 0: authentication failed"), std::string::npos) << e->what();
}

std::string sha256_hex(ByteView b) {
  uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256(b.data(), b.size(), d);
  return hex_encode({d, sizeof d});
}

// The artifact pin: every reader has the whole prefix (header and stream header) when it asks
// for the key, and its digest is the SHA-256 of the file's first prefix_size() bytes.
TEST(Sealed, EveryReaderHandsReleaseTheWholePrefix) {
  DataKey key = data_key();
  Bytes file = seal(pattern(300), key, kContext, {.chunk_size = 64});
  const Header parsed = parse_prefix(file);
  ASSERT_EQ(parsed.prefix_size(), parsed.size() + 50);
  const std::string pin = sha256_hex(ByteView(file).first(parsed.prefix_size()));
  EXPECT_EQ(parsed.prefix_digest_hex(), pin);
  EXPECT_EQ(parsed.stream_header, Bytes(file.begin() + static_cast<ptrdiff_t>(parsed.size()),
                                        file.begin() + static_cast<ptrdiff_t>(parsed.prefix_size())));
  MemorySource ra(file);
  EXPECT_EQ(describe(ra).header.prefix_digest_hex(), pin);
  std::vector<std::string> seen;
  KeyRelease recording = [&](const Header& h) {
    seen.push_back(h.prefix_digest_hex());
    return key.plaintext.clone();
  };
  open(file, recording);
  MemorySource src(file);
  NullSink sink;
  open(src, sink, recording);
  Bytes dest(300);
  open_into(ra, dest, recording);
  Opener opener(recording);
  for (size_t i = 0; i < file.size(); i += 5) opener.push(ByteView(file).subspan(i, std::min<size_t>(5, file.size() - i)), [](ByteView) {});
  opener.finish([](ByteView) {});
  Assembler as(file.size(), 1 << 20, recording);
  for (size_t i = 0; i < file.size(); i += 5) as.push(ByteView(file).subspan(i, std::min<size_t>(5, file.size() - i)));
  EXPECT_EQ(to_bytes(as.finish().view()), pattern(300));
  EXPECT_EQ(seen, std::vector<std::string>(5, pin));
  // A header from parse_header alone has no stream header: no prefix digest.
  EXPECT_EQ(code_of([&] { (void)parse_header(file).prefix_digest_hex(); }), Errc::kUsage);
}

// Two files sealed under one data key share the sealed header but not the prefix (the stream
// salt), and records of one fail behind the other's prefix: what lets the prefix pin tell
// them apart.
TEST(Sealed, FilesUnderOneDataKeyDifferInTheirPrefixAndDoNotSplice) {
  DataKey key = data_key();
  Bytes a = seal(pattern(200), key, kContext, {.chunk_size = 64});
  Bytes b = seal(pattern(200), key, kContext, {.chunk_size = 64});
  Header ha = parse_prefix(a), hb = parse_prefix(b);
  EXPECT_EQ(ha.bytes, hb.bytes);
  EXPECT_EQ(ha.digest_hex(), hb.digest_hex());
  EXPECT_NE(ha.prefix_digest_hex(), hb.prefix_digest_hex());
  Bytes spliced(a.begin(), a.begin() + static_cast<ptrdiff_t>(ha.prefix_size()));
  spliced.insert(spliced.end(), b.begin() + static_cast<ptrdiff_t>(hb.prefix_size()), b.end());
  ASSERT_EQ(spliced.size(), a.size());
  auto e = test_support::thrown([&] { open(spliced, release_of(key)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::kAuth);
  EXPECT_NE(std::string(e->what()).find("stream chunk 0: authentication failed"), std::string::npos) << e->what();
}

TEST(Sealed, TruncationAndExtension) {
  DataKey key = data_key();
  Bytes file = seal(pattern(300), key, kContext, {.chunk_size = 64});
  const size_t hs = parse_header(file).size();
  for (size_t cut = 0; cut < file.size(); ++cut) {
    ByteView part = ByteView(file).first(cut);
    // In the prefix (the header or the stream's own header): format, and the key is never
    // asked for. After it: auth (a record cut or missing).
    auto expected = [&](Errc got) { return got == (cut < hs + kStreamHeaderSize ? Errc::kFormat : Errc::kAuth); };
    int releases = 0;
    KeyRelease counted = [&](const Header&) {
      ++releases;
      return key.plaintext.clone();
    };
    EXPECT_TRUE(expected(code_of([&] { open(part, counted); }))) << "cut at " << cut;
    MemorySource src(part);
    NullSink sink;
    EXPECT_TRUE(expected(code_of([&] { open(src, sink, counted); }))) << "cut at " << cut;
    Opener opener(counted);
    EXPECT_TRUE(expected(code_of([&] {
      opener.push(part, [](ByteView) {});
      opener.finish([](ByteView) {});
    }))) << "cut at " << cut;
    if (cut < hs + kStreamHeaderSize) {
      Assembler as(file.size(), 1 << 20, counted);
      EXPECT_EQ(code_of([&] {
        as.push(part);
        as.finish();
      }), Errc::kFormat) << "cut at " << cut;
      EXPECT_EQ(releases, 0) << "cut at " << cut;
    }
  }
  EXPECT_NE(message_of([&] { open(ByteView(file).first(hs + 20), release_of(key)); })
                .find("sealed file: cut short inside the stream header (20 of 50 bytes)"),
            std::string::npos);
  EXPECT_NE(message_of([&] { open(ByteView(file).first(20), release_of(key)); }).find("cut short: 20 of"), std::string::npos);
  Bytes longer = file;
  longer.push_back(0);
  EXPECT_EQ(code_of([&] { open(longer, release_of(key)); }), Errc::kAuth);
}

TEST(Sealed, OpenIntoNamesTheFailingChunkAndChecksTheSize) {
  DataKey key = data_key();
  const Bytes pt = pattern(64 * 10);
  Bytes file = seal(pt, key, kContext, {.chunk_size = 64});
  const size_t hs = parse_header(file).size() + 50;  // the stream header's 50 bytes
  file[hs + 3 * 80 + 3] ^= 1;
  MemorySource ra(file);
  Bytes dest(64 * 10, 0xee);
  EXPECT_NE(message_of([&] { open_into(ra, dest, release_of(key), {.threads = 4}); }).find("stream chunk 3:"),
            std::string::npos);
  // Chunks that verified before the failure are not left behind.
  EXPECT_NE(Bytes(dest.begin(), dest.begin() + 64), Bytes(pt.begin(), pt.begin() + 64));
  int released = 0;
  Bytes small(10);
  EXPECT_EQ(code_of([&] {
              open_into(ra, small, [&](const Header&) {
                ++released;
                return key.plaintext.clone();
              });
            }),
            Errc::kUsage);
  EXPECT_EQ(released, 0);
}

TEST(Sealed, AssemblerRefusesWrongSizesAndWipesTheDestination) {
  DataKey key = data_key();
  Bytes file = seal(pattern(1000), key, kContext, {.chunk_size = 64});
  const size_t hs = parse_header(file).size();
  // Announced longer or shorter than the file: format.
  for (long delta : {-1L, 1L}) {
    Assembler as(file.size() + delta, 1 << 20, release_of(key));
    EXPECT_EQ(code_of([&] {
                as.push(file);
                as.finish();
              }),
              Errc::kFormat)
        << delta;
  }
  // Smaller than its own header: format, before the key is asked for.
  int released = 0;
  auto counting = [&](const Header&) {
    ++released;
    return key.plaintext.clone();
  };
  Assembler tiny(hs - 1, 1 << 20, counting);
  EXPECT_NE(message_of([&] {
              tiny.push(file);
              tiny.finish();
            }).find("smaller than its header"),
            std::string::npos);
  EXPECT_EQ(released, 0);
  // Bigger than the caller allows: policy.
  Assembler capped(file.size(), 999, release_of(key));
  EXPECT_EQ(code_of([&] { capped.push(file); }), Errc::kPolicy);
  // A bad last chunk: auth, and the destination (which held verified chunks) is wiped.
  Bytes bad = file;
  bad[file.size() - 3] ^= 1;
  Bytes dest;
  {
    Assembler as(bad.size(), 1 << 20, release_of(key), [&](uint64_t n) {
      dest.assign(n, 0);
      return std::span<uint8_t>(dest);
    });
    EXPECT_EQ(code_of([&] {
                as.push(bad);
                as.finish();
              }),
              Errc::kAuth);
  }
  ASSERT_EQ(dest.size(), 1000u);
  EXPECT_EQ(dest, Bytes(1000, 0));
  // Cut inside the header, or empty.
  Assembler cut(file.size(), 1 << 20, release_of(key));
  cut.push(ByteView(file).first(20));
  EXPECT_NE(message_of([&] { cut.finish(); }).find("cut short: 20 of"), std::string::npos);
  Assembler empty(file.size(), 1 << 20, release_of(key));
  EXPECT_EQ(message_of([&] { empty.finish(); }), "not a sealed file: the input is empty");
}

TEST(Sealed, NotASealedFileSaysWhatItLooksLike) {
  DataKey key = data_key();
  auto says = [&](ByteView in) { return message_of([&] { open(in, release_of(key)); }); };
  EXPECT_EQ(says({}), "not a sealed file: the input is empty");
  shield::Shield s = shield::Shield::with_key(shield::ShieldKey::generate());
  EXPECT_NE(says(shield::encrypt_stream(s, pattern(10))).find("stream container (SNST)"), std::string::npos);
  EXPECT_NE(says(s.encrypt(pattern(10))).find("Shield v4 message (first byte 0x13)"), std::string::npos);
  EXPECT_NE(says(as_bytes("hello world")).find("(text \"hello wo\")"), std::string::npos);
  EXPECT_EQ(code_of([&] { open(as_bytes("hello world"), release_of(key)); }), Errc::kFormat);
  Opener opener(release_of(key));
  EXPECT_EQ(message_of([&] { opener.finish([](ByteView) {}); }), "not a sealed file: the input is empty");
  EXPECT_EQ(peek_header_size(as_bytes("SNS")), std::nullopt);  // could still become one
}

// ---- the parser on hand-made headers (the tag is never reached) ----

struct Raw {
  Bytes key_id = to_bytes(as_bytes("alias/app"));
  Bytes blob = Bytes(8, 0xbb);
  std::vector<std::pair<Bytes, Bytes>> pairs;
  size_t pair_count_override = SIZE_MAX;
  size_t slack = 0;
  long size_delta = 0;

  Bytes build() const {
    Bytes h = to_bytes(as_bytes("SNSL"));
    h.push_back(1);
    put_u32be(h, 0);
    auto field = [&](const Bytes& b) {
      put_u16be(h, static_cast<uint16_t>(b.size()));
      h.insert(h.end(), b.begin(), b.end());
    };
    field(key_id);
    field(blob);
    put_u16be(h, static_cast<uint16_t>(pair_count_override != SIZE_MAX ? pair_count_override : pairs.size()));
    for (const auto& [k, v] : pairs) field(k), field(v);
    h.insert(h.end(), slack, 0);
    h.insert(h.end(), kHeaderTagSize, 0x77);
    Bytes size;
    put_u32be(size, static_cast<uint32_t>(static_cast<long>(h.size()) + size_delta));
    std::copy(size.begin(), size.end(), h.begin() + 5);
    return h;
  }
};

Bytes text(const std::string& s) { return to_bytes(as_bytes(s)); }

TEST(SealedHeaderParser, AcceptsTheLimits) {
  Raw r;
  r.key_id = Bytes(kMaxKeyIdSize, 'k');
  r.blob = Bytes(kMaxCiphertextBlobSize, 1);
  for (size_t i = 0; i < kMaxContextPairs; ++i) r.pairs.push_back({text("k" + std::to_string(100 + i)), Bytes(8, 'v')});
  Header h = parse_header(r.build());
  EXPECT_EQ(h.key_id.size(), kMaxKeyIdSize);
  EXPECT_EQ(h.context.size(), kMaxContextPairs);
}

TEST(SealedHeaderParser, RefusesOversizeAndNonCanonicalFields) {
  auto refused = [](const Raw& r, const std::string& says) {
    Bytes b = r.build();
    auto e = test_support::thrown([&] { parse_header(b); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::kFormat) << e->what();
    EXPECT_NE(std::string(e->what()).find(says), std::string::npos) << e->what();
  };
  Raw r;
  r.key_id = Bytes(kMaxKeyIdSize + 1, 'k');
  refused(r, "key id is 2049 bytes, outside [1, 2048]");
  r = {};
  r.key_id = {};
  refused(r, "key id is 0 bytes");
  r = {};
  r.key_id = text("alias/\xc3\xa9");
  refused(r, "not printable ASCII");
  r = {};
  r.blob = Bytes(kMaxCiphertextBlobSize + 1, 1);
  refused(r, "wrapped data key is 6145 bytes");
  r = {};
  for (size_t i = 0; i <= kMaxContextPairs; ++i) r.pairs.push_back({text("k" + std::to_string(100 + i)), {}});
  refused(r, "65 pairs, more than 64");
  r = {};
  r.pairs = {{text("a"), Bytes(5000, 'v')}, {text("b"), Bytes(5000, 'v')}};
  refused(r, "exceeds 8192 bytes");
  r = {};
  r.pairs = {{text("b"), text("1")}, {text("a"), text("2")}};
  refused(r, "'a' is out of order");
  r = {};
  r.pairs = {{text("a"), text("1")}, {text("a"), text("2")}};
  refused(r, "out of order or repeated");
  r = {};
  r.pairs = {{{}, text("1")}};
  refused(r, "encryption context key is 0 bytes");
  for (const char* bad : {"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\tb", "\x7f"}) {
    r = {};
    r.pairs = {{text("k"), text(bad)}};
    refused(r, "not UTF-8 text without control characters");
  }
  r = {};
  r.pair_count_override = 2;
  r.pairs = {{text("a"), text("1")}};
  refused(r, "runs past the header's size");
  r = {};
  r.slack = 1;
  refused(r, "1 unexplained bytes before the tag");
  r = {};
  r.size_delta = 100;  // declares more than the input holds
  refused(r, "cut short");
  r = {};
  r.blob = Bytes(kMaxCiphertextBlobSize, 1);
  r.key_id = Bytes(kMaxKeyIdSize, 'k');
  r.pairs = {{text("a"), Bytes(8191, 'v')}};
  refused(r, "outside [49, 16384]");
}

TEST(SealedHeaderParser, ReadHeaderConsumesExactlyTheHeader) {
  DataKey key = data_key();
  Bytes file = seal(pattern(100), key, kContext, {.chunk_size = 64});
  MemorySource src(file);
  Header h = read_header(src);
  EXPECT_EQ(src.remaining().size(), file.size() - h.size());
  EXPECT_EQ(peek_header_size(file), h.size());
  EXPECT_EQ(peek_header_size(ByteView(file).first(8)), std::nullopt);
}

TEST(Sealed, SealRefusesBadInputsAndWritesNothing) {
  DataKey good = data_key();
  auto refused = [&](const DataKey& k, const EncryptionContext& ctx, const std::string& says, uint32_t chunk = 1024) {
    Bytes pt = pattern(10);
    MemorySource in(pt);
    Bytes out;
    BytesSink sink(out);
    auto e = test_support::thrown([&] { seal(in, sink, k, ctx, {.chunk_size = chunk}); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::kUsage) << e->what();
    EXPECT_NE(std::string(e->what()).find(says), std::string::npos) << e->what();
    EXPECT_TRUE(out.empty());
  };
  DataKey k = data_key();
  k.plaintext = SecureBytes(Bytes(16, 1));
  refused(k, {}, "data key must be 32 bytes, got 16");
  k = data_key(0x42, "");
  refused(k, {}, "key id must be 1 to 2048");
  k = data_key();
  k.ciphertext_blob = Bytes(kMaxCiphertextBlobSize + 1, 0);
  refused(k, {}, "wrapped data key must be 1 to 6144 bytes, got 6145");
  refused(good, {{"", "v"}}, "non-empty keys");
  refused(good, {{"k", "line\nbreak"}}, "control characters");
  EncryptionContext many;
  for (int i = 0; i < 65; ++i) many["k" + std::to_string(i)] = "v";
  refused(good, many, "more than 64 context pairs");
  refused(good, {}, "chunk size 63 is outside [64, 16777216]", 63);
}

}  // namespace
}  // namespace sealed_test
