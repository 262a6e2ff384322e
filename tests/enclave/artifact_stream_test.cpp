// load-artifact with an announced size: the plaintext is allocated once and every chunk is
// verified as it lands; a stream of another size, or with a tampered chunk anywhere, leaves
// nothing loaded.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "support/expect_error.h"
#include "support/enclave_host.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/shield/stream.h"

using namespace shield_nitro;
using cbor::Value;
using test_support::code_of;

namespace {

constexpr uint32_t kChunk = 1u << 20;

struct ArtifactStream : ::testing::Test, test_support::EnclaveHost {
  std::string key;

  ArtifactStream() : EnclaveHost("sn-artstream-") {}
  void SetUp() override {
    enclave::ServiceOptions opts;
    opts.policy = enclave::ReleasePolicy::parse(R"({"max_artifact_bytes": 67108864})");
    start(std::move(opts));
    key = load_data_key();
  }

  Bytes seal(size_t plaintext_bytes) {
    return shield::encrypt_stream(shield::Shield::with_key(data_key), Bytes(plaintext_bytes, 0x5a), {.chunk_size = kChunk});
  }

  // Sends sealed in parts of `part` bytes; the first body carries `size` unless it is null.
  net::Response load(ByteView sealed, Value size, size_t part) {
    auto up = client->stream("load-artifact", Value::map({cbor::entry("key", Value::text(key)),
                                                          cbor::entry("kind", Value::text("model")),
                                                          cbor::entry("name", Value::text("m")),
                                                          cbor::entry("size", std::move(size))}));
    size_t pos = 0;
    auto fill = [&](uint8_t* dst, size_t n) {
      n = std::min(n, sealed.size() - pos);
      std::memcpy(dst, sealed.data() + pos, n);
      pos += n;
      return n;
    };
    try {
      while (up.send_bytes("data", part, fill) > 0) {
      }
    } catch (const Error&) {
      // answered early: the response says why
    }
    return up.finish();
  }

  size_t loaded_artifacts() { return client->call("describe").find("artifacts")->as_array().size(); }
};

Errc code(const net::Response& r) {
  EXPECT_FALSE(r.ok) << "the enclave accepted it";
  return r.ok ? Errc::kInternal : r.code;
}

}  // namespace

TEST_F(ArtifactStream, AnnouncedSizeIsHonouredWhateverTheFrameCut) {
  Bytes sealed = seal((6u << 20) + 4321);  // past SecureBytes' mapped-allocation threshold
  for (size_t part : {size_t{kChunk} + 16, size_t{1000}, size_t{300000}}) {
    net::Response r = load(sealed, Value::uint(sealed.size()), part);
    ASSERT_TRUE(r.ok) << r.message;
    EXPECT_EQ(r.body.find("size")->as_uint(), (6u << 20) + 4321);
  }
  // Without the size it still loads (the plaintext grows as chunks arrive).
  net::Response r = load(sealed, Value::null(), 65536);
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.body.find("size")->as_uint(), (6u << 20) + 4321);
  EXPECT_EQ(loaded_artifacts(), 4u);
}

TEST_F(ArtifactStream, SizeMismatchIsRefusedAndNothingLoads) {
  Bytes sealed = seal(3u << 20);
  EXPECT_EQ(code(load(sealed, Value::uint(sealed.size() - 1), 65536)), Errc::kFormat);  // longer than announced
  EXPECT_EQ(code(load(sealed, Value::uint(sealed.size() + 1), 65536)), Errc::kFormat);  // shorter
  // A v4 message with a wrong size too.
  Bytes v4 = shield::Shield::with_key(data_key).encrypt(as_bytes("small model"));
  EXPECT_EQ(code(load(v4, Value::uint(v4.size() + 5), 1000)), Errc::kFormat);
  EXPECT_EQ(loaded_artifacts(), 0u);
  net::Response ok = load(v4, Value::uint(v4.size()), 7);
  ASSERT_TRUE(ok.ok) << ok.message;
  EXPECT_EQ(ok.body.find("size")->as_uint(), 11u);
}

TEST_F(ArtifactStream, SizeFieldIsCheckedAndBoundedByPolicy) {
  Bytes sealed = seal(1000);
  EXPECT_EQ(code(load(sealed, Value::text("1050"), 1000)), Errc::kFormat);
  EXPECT_EQ(code(load(sealed, Value::integer(-1), 1000)), Errc::kFormat);
  // A size implying more than max_artifact_bytes (64 MiB) is refused before any allocation.
  EXPECT_EQ(code(load(sealed, Value::uint(uint64_t{1} << 40), 1000)), Errc::kPolicy);
  Bytes v4 = shield::Shield::with_key(data_key).encrypt(as_bytes("x"));
  EXPECT_EQ(code(load(v4, Value::uint(uint64_t{1} << 40), 1000)), Errc::kPolicy);
  EXPECT_EQ(loaded_artifacts(), 0u);
}

TEST_F(ArtifactStream, TamperedChunkInTheMiddleOfALargeArtifactLeavesNothingLoaded) {
  Bytes sealed = seal(24u << 20);
  const size_t header = shield::peek_stream_geometry(sealed)->header_size;
  for (size_t chunk : {size_t{0}, size_t{12}, size_t{23}}) {
    Bytes bad = sealed;
    bad[header + chunk * (kChunk + 16) + 777] ^= 0x01;
    EXPECT_EQ(code(load(bad, Value::uint(bad.size()), kChunk + 16)), Errc::kAuth) << "chunk " << chunk;
    EXPECT_EQ(code(load(bad, Value::null(), kChunk + 16)), Errc::kAuth) << "chunk " << chunk;
  }
  // Two records swapped, and a stream cut at a record boundary with its size announced.
  Bytes swapped = sealed;
  std::swap_ranges(swapped.begin() + static_cast<long>(header + 3 * (kChunk + 16)),
                   swapped.begin() + static_cast<long>(header + 4 * (kChunk + 16)),
                   swapped.begin() + static_cast<long>(header + 4 * (kChunk + 16)));
  EXPECT_EQ(code(load(swapped, Value::uint(swapped.size()), kChunk + 16)), Errc::kAuth);
  ByteView cut = ByteView(sealed).first(header + 10 * (kChunk + 16));
  EXPECT_EQ(code(load(cut, Value::uint(cut.size()), kChunk + 16)), Errc::kAuth);
  EXPECT_EQ(loaded_artifacts(), 0u);
  // The service goes on: the intact artifact loads.
  net::Response r = load(sealed, Value::uint(sealed.size()), kChunk + 16);
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(loaded_artifacts(), 1u);
}

TEST_F(ArtifactStream, APartWhoseDataIsNotBytesIsRefusedOnceTheStreamStarted) {
  Bytes sealed = seal(3u << 20);
  auto up = client->stream("load-artifact", Value::map({cbor::entry("key", Value::text(key)), cbor::entry("kind", Value::text("model")),
                                                        cbor::entry("name", Value::text("m")),
                                                        cbor::entry("size", Value::uint(sealed.size()))}));
  try {
    up.send(Value::map({cbor::entry("data", Value::bytes(ByteView(sealed).first(kChunk)))}));
    up.send(Value::map({cbor::entry("data", Value::text("not bytes"))}));
  } catch (const Error&) {
  }
  EXPECT_EQ(code(up.finish()), Errc::kFormat);
  EXPECT_EQ(loaded_artifacts(), 0u);
}

// Each worker count of the service's option loads the artifact and refuses a tampered one.
struct ArtifactWorkers : ::testing::TestWithParam<unsigned>, test_support::EnclaveHost {
  ArtifactWorkers() : EnclaveHost("sn-artworkers-") {}
};

TEST_P(ArtifactWorkers, LoadsAndRefusesWithThisWorkerCount) {
  enclave::ServiceOptions opts;
  opts.artifact_workers = GetParam();
  start(std::move(opts));
  std::string key = load_data_key();
  Bytes sealed = shield::encrypt_stream(shield::Shield::with_key(data_key), Bytes((5u << 20) + 3, 0x33), {.chunk_size = 65536});
  for (bool tamper : {true, false}) {
    Bytes c = sealed;
    if (tamper) c[c.size() / 2] ^= 0x80;
    auto up = client->stream("load-artifact", Value::map({cbor::entry("key", Value::text(key)), cbor::entry("kind", Value::text("model")),
                                                          cbor::entry("name", Value::text("m")),
                                                          cbor::entry("size", Value::uint(c.size()))}));
    try {
      for (size_t off = 0; off < c.size(); off += 200000)
        up.send(Value::map({cbor::entry("data", Value::bytes(ByteView(c).subspan(off, std::min<size_t>(200000, c.size() - off))))}));
    } catch (const Error&) {
      // answered early: the response says why
    }
    net::Response r = up.finish();
    if (tamper) {
      EXPECT_EQ(code(r), Errc::kAuth);
    } else {
      ASSERT_TRUE(r.ok) << r.message;
      EXPECT_EQ(r.body.find("size")->as_uint(), (5u << 20) + 3);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(OneToFour, ArtifactWorkers, ::testing::Values(1u, 2u, 3u, 4u));
