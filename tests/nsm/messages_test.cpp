// NSM message codec: every byte vector of nsm.md §3, and the reply parser's refusals.
#include <gtest/gtest.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/nsm/messages.h"
#include "support/expect_error.h"

using namespace shield_nitro;
using namespace shield_nitro::nsm;

namespace {

Bytes hx(std::string hex) {
  std::erase(hex, ' ');
  return hex_decode(hex);
}

std::string enc(const Request& r) { return hex_encode(encode_request(r)); }
std::string flat(std::string hex) {
  std::erase(hex, ' ');
  return hex;
}

ErrorCode nsm_code_of(const std::function<void()>& f) {
  auto e = test_support::thrown<NsmError>(f);
  return e ? e->nsm_code() : ErrorCode::kSuccess;
}

}  // namespace

TEST(NsmRequests, SpecVectors) {
  EXPECT_EQ(enc(DescribePcrRequest{0}), flat("a1 6b 4465736372696265504352 a1 65 696e646578 00"));
  EXPECT_EQ(enc(ExtendPcrRequest{16, {1, 2, 3}}),
            flat("a1 69 457874656e64504352 a2 65 696e646578 10 64 64617461 43 010203"));
  EXPECT_EQ(enc(LockPcrRequest{16}), flat("a1 67 4c6f636b504352 a1 65 696e646578 10"));
  EXPECT_EQ(enc(LockPcrsRequest{32}), flat("a1 68 4c6f636b50435273 a1 65 72616e6765 18 20"));
  EXPECT_EQ(enc(DescribeNsmRequest{}), flat("6b 44657363726962654e534d"));
  EXPECT_EQ(enc(AttestationRequest{}),
            flat("a1 6b 4174746573746174696f6e a3 69 757365725f64617461 f6 65 6e6f6e6365 f6 6a 7075626c69635f6b6579 f6"));
  EXPECT_EQ(enc(AttestationRequest{Bytes{0x75, 0x64}, Bytes{0x6e}, std::nullopt}),
            flat("a1 6b 4174746573746174696f6e a3 69 757365725f64617461 42 7564 65 6e6f6e6365 41 6e 6a "
                 "7075626c69635f6b6579 f6"));
  EXPECT_EQ(enc(GetRandomRequest{}), flat("69 47657452616e646f6d"));
}

TEST(NsmRequests, EmptyBytesDifferFromNullAndHeadersAreShortest) {
  std::string empty = enc(AttestationRequest{Bytes{}, std::nullopt, std::nullopt});
  EXPECT_NE(empty.find(flat("69 757365725f64617461 40")), std::string::npos);
  std::string b24 = enc(AttestationRequest{std::nullopt, Bytes(24, 7), std::nullopt});
  EXPECT_NE(b24.find(flat("65 6e6f6e6365 58 18 07")), std::string::npos);
  std::string b256 = enc(AttestationRequest{std::nullopt, std::nullopt, Bytes(1024, 1)});
  EXPECT_NE(b256.find(flat("6a 7075626c69635f6b6579 59 0400 01")), std::string::npos);
  EXPECT_EQ(enc(DescribePcrRequest{300}), flat("a1 6b 4465736372696265504352 a1 65 696e646578 19 012c"));
}

TEST(NsmRequests, DecodeRoundTripsEveryVariant) {
  std::vector<Request> all = {DescribeNsmRequest{},    DescribePcrRequest{5},  ExtendPcrRequest{17, {9, 9}},
                              LockPcrRequest{20},      LockPcrsRequest{32},    AttestationRequest{Bytes{}, Bytes{1}, std::nullopt},
                              GetRandomRequest{}};
  for (const Request& r : all) {
    Bytes wire = encode_request(r);
    Request back = decode_request(wire);
    EXPECT_EQ(back.index(), r.index());
    EXPECT_EQ(encode_request(back), wire) << request_name(r);
  }
  auto att = std::get<AttestationRequest>(decode_request(encode_request(AttestationRequest{Bytes{}, std::nullopt, std::nullopt})));
  ASSERT_TRUE(att.user_data.has_value());
  EXPECT_TRUE(att.user_data->empty());
  EXPECT_FALSE(att.nonce.has_value());
}

TEST(NsmRequests, DecodeRejectsMalformed) {
  const char* bad[] = {
      "",                                                               // nothing
      "6b 44657363726962654e534e",                                      // unknown unit variant
      "a1 6b 4465736372696265504352 a1 65 696e646578 1a 00010000",       // index overflows u16
      "a1 6b 4465736372696265504352 a1 65 696e646578 20",               // negative index
      "a1 6b 4465736372696265504352 a0",                                // missing index
      "a1 6b 4465736372696265504352 a2 65 696e646578 00 61 78 00",       // unknown field
      "a1 69 457874656e64504352 a2 65 696e646578 10 64 64617461 63 616263",  // data as text
      "bf 6b 4465736372696265504352 a1 65 696e646578 00 ff",            // indefinite envelope
      "a2 67 4c6f636b504352 a1 65 696e646578 10 67 4c6f636b504352 a1 65 696e646578 11",  // two entries
      "6b 44657363726962654e534d 00",                                   // trailing byte
      "a1 67 4c6f636b504352 a1 65 696e646578",                          // truncated
      "c1 6b 44657363726962654e534d",                                   // tagged
      "a1 6b 4174746573746174696f6e a1 65 6e6f6e6365 f7",               // undefined
  };
  for (const char* h : bad)
    EXPECT_EQ(nsm_code_of([&] { decode_request(hx(h)); }), ErrorCode::kInvalidArgument) << h;
  EXPECT_EQ(nsm_code_of([&] { decode_request(Bytes(4097, 0x40)); }), ErrorCode::kInputTooLarge);
}

TEST(NsmResponses, SpecVectorsParse) {
  auto pcr = parse_describe_pcr(hx("a1 6b 4465736372696265504352 a2 64 6c6f636b f5 64 64617461 42 0000"));
  EXPECT_TRUE(pcr.lock);
  EXPECT_EQ(pcr.data, (Bytes{0, 0}));
  EXPECT_EQ(parse_extend_pcr(hx("a1 69 457874656e64504352 a1 64 64617461 41 aa")).data, Bytes{0xaa});
  parse_lock_pcr(hx("67 4c6f636b504352"));
  parse_lock_pcrs(hx("68 4c6f636b50435273"));
  auto d = parse_describe_nsm(
      hx("a1 6b 44657363726962654e534d a7 6d 76657273696f6e5f6d616a6f72 01 6d 76657273696f6e5f6d696e6f72 00 6d "
         "76657273696f6e5f7061746368 00 69 6d6f64756c655f6964 61 6d 68 6d61785f70637273 18 20 6b 6c6f636b65645f70637273 "
         "82 00 01 66 646967657374 66 534841333834"));
  EXPECT_EQ(d.version_major, 1);
  EXPECT_EQ(d.module_id, "m");
  EXPECT_EQ(d.max_pcrs, 32);
  EXPECT_EQ(d.locked_pcrs, (std::vector<uint16_t>{0, 1}));
  EXPECT_EQ(d.digest, "SHA384");
  EXPECT_EQ(parse_get_random(hx("a1 69 47657452616e646f6d a1 66 72616e646f6d 42 0102")).random, (Bytes{1, 2}));
}

TEST(NsmResponses, EncoderMatchesSpecVectors) {
  EXPECT_EQ(hex_encode(encode_response(DescribePcrResponse{true, {0, 0}})),
            flat("a1 6b 4465736372696265504352 a2 64 6c6f636b f5 64 64617461 42 0000"));
  EXPECT_EQ(hex_encode(encode_response(LockPcrsResponse{})), flat("68 4c6f636b50435273"));
  EXPECT_EQ(hex_encode(encode_response(DescribeNsmResponse{1, 0, 0, "m", 32, {0, 1}, "SHA384"})),
            flat("a1 6b 44657363726962654e534d a7 6d 76657273696f6e5f6d616a6f72 01 6d 76657273696f6e5f6d696e6f72 00 6d "
                 "76657273696f6e5f7061746368 00 69 6d6f64756c655f6964 61 6d 68 6d61785f70637273 18 20 6b "
                 "6c6f636b65645f70637273 82 00 01 66 646967657374 66 534841333834"));
  EXPECT_EQ(hex_encode(encode_response(GetRandomResponse{{1, 2}})), flat("a1 69 47657452616e646f6d a1 66 72616e646f6d 42 0102"));
  EXPECT_EQ(hex_encode(encode_response(ErrorResponse{ErrorCode::kInvalidIndex})),
            flat("a1 65 4572726f72 6c 496e76616c6964496e646578"));
}

TEST(NsmResponses, DocumentBytesAreHandedOnExactly) {
  // A "document" whose own CBOR is non-canonical (a 1-byte uint written with a 2-byte head):
  // the client must not decode or re-encode it.
  Bytes doc = hx("84 19 0001 a0 40 40");
  Bytes reply = encode_response(AttestationResponse{doc});
  EXPECT_EQ(hex_encode(Bytes(reply.begin(), reply.begin() + 24)),
            flat("a1 6b 4174746573746174696f6e a1 68 646f63756d656e74 47"));
  EXPECT_EQ(parse_attestation(reply).document, doc);
  Bytes big(5000, 0x5a);
  Bytes reply2 = encode_response(AttestationResponse{big});
  EXPECT_EQ(reply2[23], 0x59);  // 59 LLLL as in the spec table
  EXPECT_EQ(parse_attestation(reply2).document, big);
}

TEST(NsmResponses, ErrorVariantBecomesTypedError) {
  const char* codes[] = {"InvalidArgument", "InvalidIndex", "ReadOnlyIndex", "InvalidOperation", "InputTooLarge",
                         "InternalError"};
  for (const char* c : codes) {
    Bytes reply = encode_response(ErrorResponse{*error_code_from_name(c)});
    try {
      parse_describe_pcr(reply);
      ADD_FAILURE() << c;
    } catch (const NsmError& e) {
      EXPECT_STREQ(error_code_name(e.nsm_code()), c);
      EXPECT_EQ(e.code(), Errc::kRemote);
      EXPECT_NE(std::string(e.what()).find(c), std::string::npos);
    }
  }
  // An error code the API does not define is not trusted either.
  EXPECT_EQ(nsm_code_of([] { parse_lock_pcr(hx("a1 65 4572726f72 63 666f6f")); }), ErrorCode::kInvalidResponse);
  EXPECT_EQ(nsm_code_of([] { parse_lock_pcr(hx("a1 65 4572726f72 02")); }), ErrorCode::kInvalidResponse);
}

TEST(NsmResponses, RejectsWhatDoesNotAnswerTheRequest) {
  Bytes pcr_reply = hx("a1 6b 4465736372696265504352 a2 64 6c6f636b f5 64 64617461 42 0000");
  struct Case {
    const char* what;
    Bytes reply;
  } cases[] = {
      {"wrong variant", pcr_reply},
      {"unit in place of struct", hx("67 4c6f636b504352")},
      {"indefinite envelope", hx("bf 6b 4174746573746174696f6e a1 68 646f63756d656e74 41 00 ff")},
      {"indefinite body", hx("a1 6b 4174746573746174696f6e bf 68 646f63756d656e74 41 00 ff")},
      {"trailing byte", hx("a1 6b 4174746573746174696f6e a1 68 646f63756d656e74 41 00 00")},
      {"truncated", hx("a1 6b 4174746573746174696f6e a1 68 646f63756d656e74 42 00")},
      {"document as text", hx("a1 6b 4174746573746174696f6e a1 68 646f63756d656e74 61 00")},
      {"missing document", hx("a1 6b 4174746573746174696f6e a0")},
      {"empty document", hx("a1 6b 4174746573746174696f6e a1 68 646f63756d656e74 40")},
      {"empty reply", Bytes{}},
      {"two-entry envelope", hx("a2 6b 4174746573746174696f6e a0 61 78 a0")},
      {"array envelope", hx("81 6b 4174746573746174696f6e")},
      {"oversized reply", Bytes(0x3001, 0)},
  };
  for (const auto& c : cases) EXPECT_EQ(nsm_code_of([&] { parse_attestation(c.reply); }), ErrorCode::kInvalidResponse) << c.what;

  EXPECT_EQ(nsm_code_of([] { parse_lock_pcrs(hx("67 4c6f636b504352")); }), ErrorCode::kInvalidResponse);
  EXPECT_EQ(nsm_code_of([] { parse_lock_pcr(hx("a1 67 4c6f636b504352 a0")); }), ErrorCode::kInvalidResponse);
  // DescribeNSM: unknown digest, u16 overflow, non-integer locked PCR.
  auto nsm = [](DescribeNsmResponse d) { return encode_response(d); };
  EXPECT_EQ(nsm_code_of([&] { parse_describe_nsm(nsm({1, 0, 0, "m", 32, {}, "MD5"})); }), ErrorCode::kInvalidResponse);
  Bytes overflow = hx("a1 6b 44657363726962654e534d a7 6d 76657273696f6e5f6d616a6f72 1a 00010000 6d 76657273696f6e5f6d696e6f72 00 6d "
                      "76657273696f6e5f7061746368 00 69 6d6f64756c655f6964 61 6d 68 6d61785f70637273 18 20 6b "
                      "6c6f636b65645f70637273 80 66 646967657374 66 534841333834");
  EXPECT_EQ(nsm_code_of([&] { parse_describe_nsm(overflow); }), ErrorCode::kInvalidResponse);
  // The truncation pitfall: every strict prefix of a valid reply is refused.
  Bytes good = nsm({1, 0, 0, "module", 32, {0, 1, 2}, "SHA384"});
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_EQ(nsm_code_of([&] { parse_describe_nsm(ByteView(good).first(n)); }), ErrorCode::kInvalidResponse) << n;
  EXPECT_EQ(parse_describe_nsm(good).locked_pcrs.size(), 3u);
}

TEST(NsmErrors, NamesRoundTripAndMapToErrc) {
  for (int i = 0; i <= 8; ++i) {
    auto code = static_cast<ErrorCode>(i);
    EXPECT_EQ(error_code_from_name(error_code_name(code)), code);
  }
  EXPECT_FALSE(error_code_from_name("invalidindex").has_value());
  EXPECT_EQ(NsmError(ErrorCode::kInvalidResponse, "x").code(), Errc::kFormat);
  EXPECT_EQ(NsmError(ErrorCode::kReadOnlyIndex, "x").code(), Errc::kRemote);
  EXPECT_EQ(NsmIoError(ETIMEDOUT, "x").code(), Errc::kTimeout);
  EXPECT_EQ(NsmIoError(EIO, "x").code(), Errc::kIo);
}
