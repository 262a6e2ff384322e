#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "../support/freed_memory_scan.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/secret.h"
#include "shield_nitro/core/error.h"

using namespace shield_nitro;
using cbor::Value;

namespace {
Value dec(std::string hex, const cbor::Limits& l = cbor::Limits()) {
  std::erase(hex, ' ');
  return cbor::decode(hex_decode(hex), l);
}
std::string enc(const Value& v) { return hex_encode(cbor::encode(v)); }
// Both decoders, the copying and the borrowing one, must refuse it for the same reason.
void expect_reject(const std::string& hex, const std::string& why, const cbor::Limits& l = cbor::Limits()) {
  for (bool borrow : {false, true}) {
    try {
      std::string h = hex;
      std::erase(h, ' ');
      Bytes in = hex_decode(h);
      if (borrow) cbor::decode_borrowed(in, nullptr, l);
      else cbor::decode(in, l);
      ADD_FAILURE() << hex << " decoded (borrow " << borrow << "), expected: " << why;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kFormat);
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  }
}
}  // namespace

// RFC 8949 Appendix A: decode then re-encode to the same bytes.
TEST(Cbor, Rfc8949RoundTrips) {
  const char* vectors[] = {"00", "01", "17", "1818", "1903e8", "1a000f4240", "1b000000e8d4a51000",
                           "1bffffffffffffffff", "3bffffffffffffffff", "20", "3863", "40", "4401020304",
                           "60", "6161", "6449455446", "62c3bc", "80", "83010203", "8301820203820405",
                           "a0", "a201020304", "a26161016162820203", "c11a514b67b0", "f4", "f5", "f6",
                           "d74401020304"};
  for (const char* v : vectors) EXPECT_EQ(enc(dec(v)), v);
  EXPECT_EQ(dec("3bffffffffffffffff").negative_raw(), UINT64_MAX);
  EXPECT_EQ(dec("3863").as_int(), -100);
  EXPECT_THROW(dec("1bffffffffffffffff").as_int(), Error);
  EXPECT_DOUBLE_EQ(dec("f93c00").as_float(), 1.0);
  EXPECT_DOUBLE_EQ(dec("fbc010666666666666").as_float(), -4.1);
}

TEST(Cbor, IndefiniteLengths) {
  Value v = dec("bf61610161629f0203ffff");
  ASSERT_TRUE(v.indefinite());
  EXPECT_EQ(v.find("a")->as_uint(), 1u);
  EXPECT_TRUE(v.find("b")->indefinite());
  EXPECT_EQ(enc(v), "bf61610161629f0203ffff");  // indefiniteness is kept on re-encode
  EXPECT_EQ(dec("7f657374726561646d696e67ff").as_text(), "streaming");
  EXPECT_EQ(dec("5f42010243030405ff").as_bytes(), (Bytes{1, 2, 3, 4, 5}));
}

TEST(Cbor, KeepsMapOrderAndFinds) {
  Value m = dec("a3616203616101f60a");
  ASSERT_EQ(m.as_map().size(), 3u);
  EXPECT_EQ(m.as_map()[0].first.as_text(), "b");
  EXPECT_EQ(m.find("a")->as_uint(), 1u);
  EXPECT_EQ(m.find("zz"), nullptr);
  EXPECT_EQ(m.as_map()[2].second.as_uint(), 10u);
}

TEST(Cbor, Rejections) {
  expect_reject("0001", "trailing");
  expect_reject("a2616101616102", "duplicate map key");
  expect_reject("a2010201 03", "duplicate map key");
  expect_reject("a2 01 01 1801 02", "duplicate map key");  // same key, wider head
  expect_reject("5a00000010", "past the end");
  expect_reject("83 0102", "unexpected end");
  expect_reject("9f01", "not terminated");
  expect_reject("ff", "unexpected break");
  expect_reject("1c", "reserved");
  expect_reject("62c328", "UTF-8");
  expect_reject("62eda0", "UTF-8");          // cut sequence
  expect_reject("63eda080", "UTF-8");        // surrogate
  expect_reject("5f4101 6101 ff", "bad chunk");
  expect_reject("f7", "undefined", cbor::Limits::strict());
  expect_reject("f93c00", "floating", cbor::Limits::strict());
  expect_reject("5f4101ff", "indefinite-length strings", cbor::Limits::strict());
  expect_reject("8181818181 00", "nesting", cbor::Limits::strict());
  cbor::Limits no_tags;
  no_tags.allow_tags = false;
  expect_reject("d24100", "tag 18", no_tags);
  cbor::Limits small;
  small.max_items = 2;
  expect_reject("83010203", "exceeds the limit", small);
  expect_reject("9f010203ff", "exceeds the limit", small);
  small.max_string = 3;
  expect_reject("4401020304", "exceeds the limit", small);
  expect_reject("9b ffffffffffffffff", "exceeds the limit");  // huge count, no allocation
}

TEST(Cbor, TypeMismatchIsAFormatError) {
  Value v = dec("6161");
  try {
    v.as_bytes();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kFormat);
    EXPECT_STREQ(e.what(), "cbor: expected byte string, got text string");
  }
}

// The exact serde_cbor bytes of an NSM request (nsm.md §3.1), built with Value.
TEST(Cbor, EncodesNsmAttestationRequestExactly) {
  Value req = Value::map({cbor::entry("Attestation", Value::map({cbor::entry("user_data", Value::bytes(as_bytes("ud"))),
                                                                   cbor::entry("nonce", Value::bytes(as_bytes("n"))),
                                                                   cbor::entry("public_key", Value::null())}))});
  EXPECT_EQ(enc(req),
            "a16b4174746573746174696f6ea369757365725f6461746142756465"
            "6e6f6e6365416e6a7075626c69635f6b6579f6");
  Bytes big(300, 0xaa);
  Bytes out;
  cbor::Writer(out).bytes(big);
  EXPECT_EQ(hex_encode(ByteView(out).first(3)), "59012c");
  EXPECT_EQ(enc(Value::integer(-35)), "3822");
  EXPECT_EQ(enc(Value::integer(INT64_MIN)), "3b7fffffffffffffff");
}

TEST(Cbor, DecodePrefixReportsConsumed) {
  Bytes two = hex_decode("0102");
  size_t used = 0;
  EXPECT_EQ(cbor::decode_prefix(two, used).as_uint(), 1u);
  EXPECT_EQ(used, 1u);
}

TEST(Cbor, EqualityIgnoresLengthEncoding) {
  EXPECT_EQ(dec("9f0102ff"), dec("820102"));
  EXPECT_FALSE(dec("820102") == dec("820103"));
  EXPECT_EQ(dec("d24101"), dec("d24101"));
}

// Duplicate keys are judged by encoding: the decoder's fast path (value comparison for the first
// keys of a map) must agree with that rule for every kind and spelling of key, in small maps and
// across the switch to the set of encodings in larger ones.
TEST(Cbor, DuplicateKeysAgreeWithTheEncodingRule) {
  struct Key {
    const char* hex;
    int id;  // equal ids: equal encodings once decoded (the duplicate rule)
  };
  const Key pool[] = {{"00", 0},       {"1800", 0},     {"01", 1},     {"1801", 1},     {"05", 5},
                      {"20", 6},       {"3800", 6},     {"6161", 10},  {"7f6161ff", 10}, {"6162", 11},
                      {"4101", 20},    {"5f4101ff", 20}, {"8101", 30}, {"9f01ff", 31},  {"a0", 40},
                      {"f5", 41},      {"c101", 42},    {"1a00010000", 50}, {"626263", 12}};
  std::mt19937 rng(7);
  for (int round = 0; round < 3000; ++round) {
    const size_t n = rng() % 40;
    std::string hex = n < 24 ? std::string(1, "0123456789abcdef"[(0xa0 + n) >> 4]) + "0123456789abcdef"[(0xa0 + n) & 15]
                             : "b8" + hex_encode(Bytes{static_cast<uint8_t>(n)});
    std::set<int> ids;
    bool dup = false;
    for (size_t i = 0; i < n; ++i) {
      // Mostly distinct filler keys (large integers), so maps grow past the fast path.
      if (rng() % 3 == 0) {
        const Key& k = pool[rng() % std::size(pool)];
        dup |= !ids.insert(k.id).second;
        hex += k.hex;
      } else {
        uint32_t v = 1000000 + static_cast<uint32_t>(round) * 64 + static_cast<uint32_t>(i);
        hex += "1a" + hex_encode(Bytes{static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                                       static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)});
      }
      hex += "00";
    }
    bool rejected = false;
    try {
      dec(hex);
    } catch (const Error& e) {
      rejected = std::string(e.what()).find("duplicate map key") != std::string::npos;
      if (!rejected) ADD_FAILURE() << hex << ": " << e.what();
    }
    ASSERT_EQ(rejected, dup) << hex;
  }
}

TEST(Cbor, WipeStringsZeroesEveryStringButKeysAndKeepsTheShape) {
  Value v = Value::map({cbor::entry("secret", Value::bytes(Bytes{1, 2, 3})),
                        cbor::entry("list", Value::array({Value::text("pw"), Value::uint(7)}))});
  v.wipe_strings();
  EXPECT_EQ(v.find("secret")->as_bytes(), Bytes(3, 0));
  EXPECT_EQ(v.find("list")->as_array()[0].as_text(), std::string(2, '\0'));
  EXPECT_EQ(v.find("list")->as_array()[1].as_uint(), 7u);  // numbers are not strings
}

// ---- SecretValue: nothing secret is left in freed memory ----

namespace {
using test_support::FreedMemoryScan;

constexpr char kMarker[] = "SECRET-MARKER-0123456789abcdef";  // 30 bytes: heap-allocated in strings

// {"key": "<marker>", "blob": h'<marker>', "more": [<extra>]} as CBOR.
Bytes secret_message(const Value& extra = Value::uint(1)) {
  return cbor::encode(cbor::map_of(cbor::entry("key", Value::text(kMarker)),
                                   cbor::entry("blob", Value::bytes(as_bytes(kMarker))),
                                   cbor::entry("more", Value::array({extra}))));
}
}  // namespace

TEST(CborSecret, APlainValueLeavesItsStringsInFreedMemory) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  // The control: the scan does see secrets that are dropped unwiped.
  Bytes wire = secret_message();
  FreedMemoryScan scan(as_bytes(kMarker));
  { Value v = cbor::decode(wire); }
  EXPECT_GE(scan.hits(), 2u);
}

TEST(CborSecret, DroppingASecretValueWipesEveryString) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  Bytes wire = secret_message();
  FreedMemoryScan scan(as_bytes(kMarker));
  {
    cbor::SecretValue v = cbor::decode_secret(wire);
    // Compared in place: a std::string made here would be a copy of our own, dropped unwiped.
    ASSERT_TRUE(v->find("key")->as_text() == kMarker);
    ASSERT_TRUE(std::ranges::equal(v->find("blob")->as_bytes(), as_bytes(kMarker)));
  }
  EXPECT_EQ(scan.hits(), 0u);
}

TEST(CborSecret, AnExceptionWhileHoldingOneWipesIt) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  Bytes wire = secret_message();
  FreedMemoryScan scan(as_bytes(kMarker));
  try {
    cbor::SecretValue v = cbor::decode_secret(wire);
    throw Error(Errc::kPolicy, "refused after decoding");
  } catch (const Error&) {
  }
  EXPECT_EQ(scan.hits(), 0u);
}

TEST(CborSecret, MalformedInputAfterTheSecretLeavesNothingBehind) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  // The secrets decode, then the input breaks off (truncated), runs on (trailing bytes) or
  // repeats a key: the partial items must be wiped as the error propagates.
  Bytes truncated = secret_message(Value::bytes(Bytes(100, 7)));
  truncated.resize(truncated.size() - 10);
  Bytes trailing = secret_message();
  trailing.push_back(0x00);
  Bytes duplicate = secret_message();
  duplicate[0] = 0xa4;  // four entries: the fourth key repeats "key"
  Bytes tail = cbor::encode(Value::text("key"));
  duplicate.insert(duplicate.end(), tail.begin(), tail.end());
  duplicate.push_back(0x01);
  Bytes indefinite = hex_decode("5f");  // an indefinite byte string whose chunks are secret, unterminated
  Bytes chunk = cbor::encode(Value::bytes(as_bytes(kMarker)));
  indefinite.insert(indefinite.end(), chunk.begin(), chunk.end());
  indefinite.insert(indefinite.end(), chunk.begin(), chunk.end());
  for (const Bytes* wire : {&truncated, &trailing, &duplicate, &indefinite}) {
    FreedMemoryScan scan(as_bytes(kMarker));
    EXPECT_THROW(cbor::decode_secret(*wire), Error);
    EXPECT_EQ(scan.hits(), 0u) << hex_encode(*wire);
  }
}

TEST(CborSecret, MovesLeaveNoCopyInTheMovedFromValue) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  // A short text lives inside the string object (small-string buffer), so the objects are put
  // on the heap where the scan sees them when they are freed. The control: a bare std::string
  // keeps its characters there after a move.
  constexpr char kShort[] = "pw-5ecr3t";  // 9 bytes: fits the small-string buffer
  // What a move leaves: libstdc++ writes a terminator over the first character, so the scan
  // looks for the rest (8 bytes), which a leftover copy holds as well.
  const ByteView tail = as_bytes(kShort + 1);
  {
    auto* s = new std::string(kShort);
    FreedMemoryScan scan(tail);
    std::string moved = std::move(*s);
    delete s;
    EXPECT_EQ(scan.hits(), 1u);
  }
  Bytes wire = cbor::encode(Value::text(kShort));
  Bytes wire_map = cbor::encode(cbor::map_of(cbor::entry("body", Value::text(kShort))));
  FreedMemoryScan scan(tail);
  auto* a = new cbor::SecretValue(cbor::decode_secret(wire));
  auto* b = new cbor::SecretValue(std::move(*a));
  delete a;
  cbor::SecretValue c;
  c = std::move(*b);
  delete b;
  EXPECT_EQ((*c).as_text(), kShort);
  auto* holder = new cbor::SecretValue(cbor::decode_secret(wire_map));
  cbor::SecretValue body = holder->take("body");
  delete holder;
  EXPECT_EQ((*body).as_text(), kShort);
  EXPECT_EQ(scan.hits(), 0u);
}

TEST(CborSecret, TakeMovesAnEntryOutAndNullWhenAbsent) {
  cbor::SecretValue v = cbor::decode_secret(secret_message());
  cbor::SecretValue key = v.take("key");
  EXPECT_EQ((*key).as_text(), kMarker);
  EXPECT_TRUE(v.take("absent")->is_null());
  EXPECT_TRUE(key.take("key")->is_null());  // not a map
}

TEST(Cbor, EncodedSizeIsTheEncodingsLength) {
  for (const char* hex : {"00", "17", "1818", "19ffff", "1b000000e8d4a51000", "3903e7", "4401020304", "6449455446",
                          "83010203", "a26161016162820203", "9f018202039f0405ffff", "bf6161016162f5ff", "c11a514b67b0",
                          "f90000", "fb7e37e43c8800759c", "f4", "f6", "f7"}) {
    Value v = dec(hex);
    EXPECT_EQ(cbor::encoded_size(v), cbor::encode(v).size()) << hex;
  }
  Value big = Value::bytes(Bytes(70000, 1));
  EXPECT_EQ(cbor::encoded_size(big), 70005u);
}

TEST(CborBorrowed, ByteStringsPointIntoTheInputAndDecodeLikeCopies) {
  // {"key": "k1", "plaintext": h'68656c6c6f', "list": [h'0102', 7], "chunks": (_ h'01', h'02')}
  Bytes in = hex_decode("a4636b6579626b3169706c61696e746578744568656c6c6f646c69737482420102076663687"
                        "56e6b735f41014102ff");
  Value copy = cbor::decode(in);
  Value v = cbor::decode_borrowed(in);
  EXPECT_EQ(v, copy);
  EXPECT_EQ(cbor::encode(v), cbor::encode(copy));
  EXPECT_EQ(cbor::encoded_size(v), cbor::encode(copy).size());
  const Value& pt = *v.find("plaintext");
  ASSERT_TRUE(pt.borrowed());
  EXPECT_EQ(pt.bytes_view().data(), in.data() + 19);  // no copy: the input's own bytes
  EXPECT_EQ(to_bytes(pt.bytes_view()), to_bytes(as_bytes(std::string_view("hello"))));
  EXPECT_TRUE(v.find("list")->as_array()[0].borrowed());
  EXPECT_FALSE(v.find("chunks")->borrowed());  // an indefinite string is gathered, so owned
  EXPECT_EQ(v.find("chunks")->as_bytes(), Bytes({1, 2}));
  EXPECT_FALSE(copy.find("plaintext")->borrowed());
  EXPECT_EQ(copy.find("plaintext")->bytes_view().data(), copy.find("plaintext")->as_bytes().data());
  try {
    pt.as_bytes();  // a caller expecting an owned string gets a clear refusal, not a dangling copy
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUsage);
    EXPECT_NE(std::string(e.what()).find("bytes_view"), std::string::npos);
  }
}

TEST(CborBorrowed, TheOwnerKeepsTheBufferAliveForEveryCopy) {
  auto buf = std::make_shared<Bytes>(hex_decode("a1646461746143010203"));  // {"data": h'010203'}
  std::weak_ptr<Bytes> watch = buf;
  Value copy;
  {
    Value v = cbor::decode_borrowed(*buf, buf);
    buf.reset();
    copy = *v.find("data");
  }
  ASSERT_FALSE(watch.expired());  // the copy holds the frame
  EXPECT_EQ(to_bytes(copy.bytes_view()), Bytes({1, 2, 3}));
  copy = Value::null();
  EXPECT_TRUE(watch.expired());
}

TEST(CborBorrowed, WipeStringsLeavesTheOwnersBufferToItsOwner) {
  Bytes in = hex_decode("a2617842abcd617962c3a9");  // {"x": h'abcd', "y": "é"}
  Value v = cbor::decode_borrowed(in);
  v.wipe_strings();
  EXPECT_EQ(v.find("y")->as_text(), std::string(2, '\0'));  // owned text: wiped
  EXPECT_EQ(to_bytes(v.find("x")->bytes_view()), Bytes({0xab, 0xcd}));  // borrowed: untouched
}
