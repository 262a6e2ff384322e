// Large frames without copies: FrameDecoder receives a big frame's payload straight into its
// own buffer (read_area/commit), and ClientStream::send_bytes fills a part in place.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/net/server.h"
#include "support/net_util.h"

using namespace shield_nitro;
using namespace sn_test;
using cbor::entry;
using cbor::Value;

namespace {

constexpr size_t kBig = net::FrameDecoder::kDirectFrom;

// Receives `stream` through read_area()/commit() in reads of at most `step` bytes.
std::vector<Bytes> receive(net::FrameDecoder& dec, ByteView stream, size_t step) {
  std::vector<Bytes> got;
  for (size_t off = 0; off < stream.size();) {
    std::span<uint8_t> area = dec.read_area();
    EXPECT_FALSE(area.empty());
    size_t n = std::min({step, area.size(), stream.size() - off});
    std::memcpy(area.data(), stream.data() + off, n);
    dec.commit(n);
    off += n;
    while (auto f = dec.next()) got.push_back(std::move(*f));
  }
  return got;
}

}  // namespace

TEST(LargeFrame, ReceivedInPlaceBetweenSmallFramesInAnySplit) {
  std::vector<Bytes> payloads = {Bytes{0xa0}, os_random().bytes(kBig), Bytes(300, 0x41),
                                 os_random().bytes(3 * kBig + 7), os_random().bytes(kBig - 1), Bytes{0xa1}};
  Bytes stream;
  for (auto& p : payloads) net::append_frame(stream, p);
  for (size_t step : {size_t{1000}, size_t{4096}, size_t{65536}, size_t{1} << 20, stream.size()}) {
    net::FrameDecoder dec(4 * kBig);
    EXPECT_EQ(receive(dec, stream, step), payloads) << "step " << step;
    EXPECT_FALSE(dec.partial());
    EXPECT_EQ(dec.buffered(), 0u);
  }
}

TEST(LargeFrame, FeedAndReadAreaMixAndPartialIsReported) {
  Bytes big = os_random().bytes(2 * kBig);
  Bytes stream = net::encode_frame(big);
  net::append_frame(stream, Bytes{0xa0});
  net::FrameDecoder dec(4 * kBig);
  dec.feed(ByteView(stream).first(1000));
  EXPECT_FALSE(dec.next());  // the header is in: the rest goes to the frame's own buffer
  EXPECT_TRUE(dec.partial());
  EXPECT_EQ(dec.buffered(), 1000u - net::kFrameHeaderSize);
  std::span<uint8_t> area = dec.read_area();
  EXPECT_LE(area.size(), big.size() - (1000 - net::kFrameHeaderSize));  // never past this frame
  dec.feed(ByteView(stream).subspan(1000));  // the rest of it and the next frame at once
  EXPECT_EQ(*dec.next(), big);
  EXPECT_EQ(*dec.next(), Bytes{0xa0});
  EXPECT_FALSE(dec.next());
  EXPECT_FALSE(dec.partial());
}

TEST(LargeFrame, OversizeStillRefusedFromTheHeaderAlone) {
  net::FrameDecoder dec(kBig);
  Bytes header;
  put_u32be(header, static_cast<uint32_t>(kBig + 1));
  std::span<uint8_t> area = dec.read_area();
  std::memcpy(area.data(), header.data(), header.size());
  dec.commit(header.size());
  EXPECT_THROW(dec.next(), Error);
}

TEST(LargeFrame, SendBytesFillsPartsInPlace) {
  TempDir tmp;
  net::ServerOptions o;
  o.workers = 2;
  o.max_frame = 4 * kBig;
  net::Server s(net::Endpoint::unix_path(tmp.sock()), o);
  s.handle("upload", [](const net::Request&, net::RequestContext& ctx) {
    Bytes all;
    uint64_t parts = 0;
    while (auto part = ctx.next_part()) {
      if (const Value* d = part->find("data")) all.insert(all.end(), d->as_bytes().begin(), d->as_bytes().end());
      ++parts;
    }
    return net::Response::success(Value::map({entry("data", Value::bytes(std::move(all))), entry("parts", Value::uint(parts))}));
  });
  s.start();
  net::ClientOptions co;
  co.max_frame = 4 * kBig;
  net::Client c(s.endpoint(), co);
  Bytes source = os_random().bytes(2 * kBig + 10);
  size_t pos = 0;
  auto fill = [&](uint8_t* dst, size_t n) {
    n = std::min(n, source.size() - pos);
    std::memcpy(dst, source.data() + pos, n);
    pos += n;
    return n;
  };
  auto up = c.stream("upload");
  // Full parts, then a short last one whose length head is shorter than max's (1 byte, not 5).
  EXPECT_EQ(up.send_bytes("data", kBig, fill), kBig);
  EXPECT_EQ(up.send_bytes("data", kBig, fill), kBig);
  EXPECT_EQ(up.send_bytes("data", kBig, fill), 10u);
  EXPECT_EQ(up.send_bytes("data", kBig, fill), 0u);  // nothing left: nothing sent
  // A part over the frame limit is refused before anything is read or sent.
  EXPECT_THROW(up.send_bytes("data", 4 * kBig, fill), Error);
  net::Response r = up.finish();
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.body.find("data")->as_bytes(), source);
  EXPECT_EQ(r.body.find("parts")->as_uint(), 4u);  // three data parts + the empty last one
  EXPECT_THROW(up.send_bytes("data", 10, fill), Error);  // after finish
}

// next_view(): the payloads without a copy, in order, in any split; hold_last() keeps one
// beyond the next read, handing a large frame's own buffer over (same bytes, same address).
TEST(LargeFrame, ViewsAndHeldFramesMatchTheCopies) {
  Bytes small1(100, 1), big(kBig + 12345, 2), small2(3000, 3);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  Bytes stream = net::encode_frame(small1);
  for (const Bytes* p : {&big, &small2}) net::append_frame(stream, *p);
  for (size_t step : {size_t{1} << 20, size_t{4096}, size_t{777}}) {
    net::FrameDecoder dec;
    std::vector<Bytes> seen;
    std::vector<std::shared_ptr<const Bytes>> held;
    for (size_t off = 0; off < stream.size();) {
      std::span<uint8_t> area = dec.read_area();
      size_t n = std::min({step, area.size(), stream.size() - off});
      std::memcpy(area.data(), stream.data() + off, n);
      dec.commit(n);
      off += n;
      while (auto v = dec.next_view()) {
        seen.push_back(to_bytes(*v));
        const uint8_t* at = v->data();
        held.push_back(dec.hold_last());
        if (v->size() >= kBig) EXPECT_EQ(held.back()->data(), at) << "a large frame is handed over, not copied";
      }
    }
    ASSERT_EQ(seen.size(), 3u) << step;
    EXPECT_EQ(seen[0], small1);
    EXPECT_EQ(seen[1], big);
    EXPECT_EQ(seen[2], small2);
    EXPECT_EQ(*held[0], small1);  // still intact after the decoder moved on
    EXPECT_EQ(*held[1], big);
    EXPECT_EQ(*held[2], small2);
  }
}
