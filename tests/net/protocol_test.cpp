#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/net/frame.h"
#include "shield_nitro/net/message.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;
using net::Request;
using net::Response;

namespace {

Bytes message_bytes(std::string hex) {
  std::erase(hex, ' ');
  return hex_decode(hex);
}

void expect_protocol_error(const Bytes& payload, bool request, uint64_t id, Errc code, const std::string& why) {
  try {
    if (request) net::decode_request(payload);
    else net::decode_response(payload);
    ADD_FAILURE() << hex_encode(payload) << " decoded, expected: " << why;
  } catch (const net::ProtocolError& e) {
    EXPECT_EQ(e.request_id(), id) << e.what();
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

Bytes msg(Value v) { return cbor::encode(v); }

// "<length> <message>" in hex, the layout docs/protocol.md uses for examples.
std::string frame_hex(const Bytes& message) {
  Bytes header;
  put_u32be(header, static_cast<uint32_t>(message.size()));
  return hex_encode(header) + " " + hex_encode(message);
}

}  // namespace

TEST(Frame, DecodesAnySplitOfTheStream) {
  Bytes stream;
  std::vector<Bytes> payloads = {Bytes{0xa0}, Bytes(300, 0x41), Bytes(70000, 0x42)};
  for (auto& p : payloads) net::append_frame(stream, p);
  for (size_t step : {size_t{1}, size_t{3}, size_t{4096}, stream.size()}) {
    net::FrameDecoder dec(1 << 20);
    std::vector<Bytes> got;
    for (size_t off = 0; off < stream.size(); off += step) {
      dec.feed(ByteView(stream).subspan(off, std::min(step, stream.size() - off)));
      while (auto f = dec.next()) got.push_back(std::move(*f));
    }
    EXPECT_EQ(got, payloads) << "step " << step;
    EXPECT_FALSE(dec.partial());
  }
}

TEST(Frame, RejectsOversizeBeforeBufferingAndEmptyFrames) {
  net::FrameDecoder dec(100);
  dec.feed(hex_decode("00000065"));  // 101 bytes announced, none sent
  try {
    dec.next();
    ADD_FAILURE() << "oversize frame accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kFormat);
    EXPECT_NE(std::string(e.what()).find("frame of 101 bytes exceeds the limit of 100 bytes"), std::string::npos);
  }
  net::FrameDecoder exact(100);
  exact.feed(net::encode_frame(Bytes(100, 1)));
  EXPECT_EQ(exact.next()->size(), 100u);
  net::FrameDecoder empty;
  empty.feed(hex_decode("00000000"));
  EXPECT_THROW(empty.next(), Error);
  net::FrameDecoder partial;
  partial.feed(hex_decode("000000"));
  EXPECT_FALSE(partial.next());
  EXPECT_TRUE(partial.partial());
}

TEST(Message, RequestAndResponseRoundTrip) {
  Request r;
  r.id = 42;
  r.op = "encrypt";
  r.body = Value::map({entry("sealed", Value::bytes(Bytes{0, 1, 2, 255}))});
  Request back = net::decode_request(net::encode_request(r));
  EXPECT_EQ(back.id, 42u);
  EXPECT_EQ(back.op, "encrypt");
  EXPECT_FALSE(back.more);
  EXPECT_EQ(back.body, r.body);  // opaque bytes pass through unchanged

  Request cont;
  cont.id = 42;
  cont.more = true;
  cont.body = Value::map({entry("data", Value::bytes(Bytes(10, 7)))});
  Request cback = net::decode_request(net::encode_request(cont));
  EXPECT_TRUE(cback.continuation());
  EXPECT_TRUE(cback.more);
  EXPECT_EQ(cback.body, cont.body);

  Response ok = Response::success(Value::map({entry("n", Value::uint(7))}));
  ok.id = 9;
  Response okb = net::decode_response(net::encode_response(ok));
  EXPECT_TRUE(okb.ok);
  EXPECT_EQ(okb.id, 9u);
  EXPECT_EQ(okb.body, ok.body);

  Response err = Response::failure(Errc::kPolicy, "key id not allowed");
  err.id = 10;
  Response errb = net::decode_response(net::encode_response(err));
  EXPECT_FALSE(errb.ok);
  EXPECT_EQ(errb.code, Errc::kPolicy);
  EXPECT_EQ(errb.message, "key id not allowed");
  EXPECT_THROW(errb.value_or_throw(), Error);

  Bytes framed;
  net::append_response_frame(framed, err);
  EXPECT_EQ(framed, net::encode_frame(net::encode_response(err)));
}

TEST(Message, RejectsWrongShapesWithTheRequestId) {
  expect_protocol_error(message_bytes("ff"), true, 0, Errc::kFormat, "not valid CBOR");
  expect_protocol_error(msg(Value::array()), true, 0, Errc::kFormat, "must be a CBOR map, got array");
  expect_protocol_error(msg(Value::map({entry("v", Value::uint(1))})), true, 0, Errc::kFormat, "needs \"id\"");
  expect_protocol_error(msg(Value::map({entry("id", Value::text("1"))})), true, 0, Errc::kFormat, "needs \"id\"");
  expect_protocol_error(msg(Value::map({entry("id", Value::uint(5))})), true, 5, Errc::kFormat, "needs \"v\"");
  expect_protocol_error(msg(Value::map({entry("v", Value::uint(2)), entry("id", Value::uint(5)), entry("op", Value::text("x"))})),
                        true, 5, Errc::kUnsupported, "protocol version 2");
  auto base = [](Value op, Value body) {
    return msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(6)), entry("op", std::move(op)),
                           entry("body", std::move(body))}));
  };
  expect_protocol_error(base(Value::uint(1), Value::map()), true, 6, Errc::kFormat, "\"op\" must be text");
  expect_protocol_error(base(Value::text(""), Value::map()), true, 6, Errc::kFormat, "must not be empty");
  expect_protocol_error(base(Value::text("x"), Value::bytes(Bytes{1})), true, 6, Errc::kFormat, "\"body\" must be map");
  // A continuation frame must say whether more follow.
  expect_protocol_error(msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(7))})), true, 7,
                        Errc::kFormat, "needs \"more\"");
  expect_protocol_error(msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(7)),
                                        entry("op", Value::text("x")), entry("more", Value::uint(1))})),
                        true, 7, Errc::kFormat, "\"more\" must be bool");
  expect_protocol_error(msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(8)), entry("ok", Value::boolean(true))})),
                        true, 8, Errc::kFormat, "must not carry \"ok\"");
  // Responses.
  expect_protocol_error(msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(3))})), false, 3,
                        Errc::kFormat, "needs \"ok\"");
  expect_protocol_error(msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(3)), entry("ok", Value::boolean(false))})),
                        false, 3, Errc::kFormat, "needs \"error\"");
  expect_protocol_error(msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(3)), entry("ok", Value::boolean(false)),
                                        entry("error", Value::map({entry("code", Value::uint(1))}))})),
                        false, 3, Errc::kFormat, "\"code\" must be text");
  // Duplicate keys are a CBOR-level error.
  expect_protocol_error(message_bytes("a2 6169 01 6169 02"), true, 0, Errc::kFormat, "not valid CBOR");
}

TEST(Message, UnknownErrorCodesAndKeys) {
  Bytes m = msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(3)), entry("ok", Value::boolean(false)),
                            entry("error", Value::map({entry("code", Value::text("quota")), entry("message", Value::text("m"))}))}));
  EXPECT_EQ(net::decode_response(m).code, Errc::kRemote);
  Bytes extra = msg(Value::map({entry("v", Value::uint(1)), entry("id", Value::uint(3)), entry("op", Value::text("x")),
                                entry("trace", Value::text("t"))}));
  Request r = net::decode_request(extra);
  EXPECT_EQ(r.op, "x");
  EXPECT_EQ(r.body, Value::map());
}

// The hex examples in docs/protocol.md are produced here; if the encoder or the examples
// change, this test names the line to paste.
TEST(Message, DocumentedExamplesAreCurrent) {
  std::vector<std::pair<std::string, Bytes>> examples;
  Request describe;
  describe.id = 1;
  describe.op = "describe";
  examples.emplace_back("describe request", net::encode_request(describe));
  Request enc;
  enc.id = 2;
  enc.op = "encrypt";
  enc.body = Value::map({entry("key", Value::text("k1")), entry("plaintext", Value::bytes(as_bytes("hello")))});
  examples.emplace_back("encrypt request", net::encode_request(enc));
  Response ok = Response::success(Value::map({entry("ciphertext", Value::bytes(hex_decode("13a1b2c3")))}));
  ok.id = 2;
  examples.emplace_back("ok response", net::encode_response(ok));
  Response err = Response::failure(Errc::kUnsupported, "unknown operation 'frobnicate'");
  err.id = 3;
  examples.emplace_back("error response", net::encode_response(err));
  Request open;
  open.id = 4;
  open.op = "load-artifact";
  open.more = true;
  open.body = Value::map({entry("kind", Value::text("model"))});
  examples.emplace_back("stream open", net::encode_request(open));
  Request part;
  part.id = 4;
  part.more = true;
  part.body = Value::map({entry("data", Value::bytes(hex_decode("00010203")))});
  examples.emplace_back("stream part", net::encode_request(part));
  Request last;
  last.id = 4;
  examples.emplace_back("stream end", net::encode_request(last));
  Response oversize = Response::failure(Errc::kFormat, "frame of 67108865 bytes exceeds the limit of 67108864 bytes");
  examples.emplace_back("connection error", net::encode_response(oversize));

  std::ifstream in(std::string(SN_SOURCE_DIR) + "/docs/protocol.md");
  std::stringstream doc;
  doc << in.rdbuf();
  for (auto& [name, m] : examples)
    EXPECT_NE(doc.str().find(frame_hex(m)), std::string::npos) << name << " missing from docs/protocol.md:\n"
                                                               << frame_hex(m) << "\n"
                                                               << cbor::encode(cbor::decode(m)).size();
}
