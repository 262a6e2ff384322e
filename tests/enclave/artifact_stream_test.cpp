// load-artifact with an announced size: the plaintext is allocated once and every chunk is
// verified as it lands; a stream of another size, or with a tampered chunk anywhere, leaves
// nothing loaded.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "support/expect_error.h"
#include "support/enclave_host.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/sealed/sealed.h"
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

// ---- sealed files: load-artifact without a key handle --------------------------------------

namespace {

constexpr const char* kReleasedArn = "arn:aws:kms:us-east-1:111122223333:key/test";  // what FakeReleaser reports

struct SealedArtifact : ::testing::Test, test_support::EnclaveHost {
  SealedArtifact() : EnclaveHost("sn-artsealed-") {}

  // A sealed file whose blob the stand-in KMS (FakeReleaser) opens to its data key.
  Bytes seal_file(ByteView plaintext, const sealed::EncryptionContext& context, const std::string& key_id = kReleasedArn,
                  uint32_t chunk = kChunk) {
    SecureBytes dk(os_random().bytes(sealed::kDataKeySize));
    Bytes blob = shield::Shield::with_key(kek).encrypt(dk.view());
    return sealed::seal(plaintext, {key_id, blob, std::move(dk)}, context, {.chunk_size = chunk});
  }

  void push_credentials() {
    client->call("set-credentials", Value::map({cbor::entry("access_key_id", Value::text("AKIDTEST")),
                                                cbor::entry("secret_access_key", Value::text("secret"))}));
  }

  // Sends file in parts of `part` bytes, with "key" only when key is not empty.
  net::Response load(ByteView file, size_t part, bool announce = true, const std::string& key = "", const char* kind = "model") {
    cbor::MapEntries first{cbor::entry("kind", Value::text(kind)), cbor::entry("name", Value::text("sealed-model"))};
    if (!key.empty()) first.push_back(cbor::entry("key", Value::text(key)));
    if (announce) first.push_back(cbor::entry("size", Value::uint(file.size())));
    auto up = client->stream("load-artifact", Value::map(std::move(first)));
    try {
      for (size_t off = 0; off < file.size(); off += part)
        up.send(Value::map({cbor::entry("data", Value::bytes(file.subspan(off, std::min(part, file.size() - off))))}));
    } catch (const Error&) {
      // answered early: the response says why
    }
    return up.finish();
  }

  size_t loaded_artifacts() { return client->call("describe").find("artifacts")->as_array().size(); }
};

}  // namespace

TEST_F(SealedArtifact, LoadsWithoutAKeyHandleWhateverTheCutAndWithOrWithoutItsSize) {
  start({});
  push_credentials();
  Bytes plain = os_random().bytes((3u << 20) + 777);
  Bytes file = seal_file(plain, {{"app", "models"}});
  const size_t header = sealed::parse_header(file).size();
  for (size_t part : {size_t{1000}, size_t{65536}, size_t{kChunk} + 16, header + 50}) {
    for (bool announce : {true, false}) {
      net::Response r = load(file, part, announce);
      ASSERT_TRUE(r.ok) << r.message << " part " << part;
      EXPECT_EQ(r.body.find("size")->as_uint(), plain.size());
    }
  }
  EXPECT_EQ(loaded_artifacts(), 8u);
  // Small chunks and an empty plaintext too.
  EXPECT_EQ(load(seal_file(Bytes(5000, 1), {}, kReleasedArn, 64), 333).body.find("size")->as_uint(), 5000u);
  EXPECT_EQ(load(seal_file({}, {}), 7).body.find("size")->as_uint(), 0u);
}

TEST_F(SealedArtifact, TamperingCuttingOrAWrongSizeLeavesNothingLoaded) {
  start({});
  push_credentials();
  Bytes file = seal_file(os_random().bytes(2u << 20), {{"app", "models"}});
  const size_t header = sealed::parse_header(file).size();
  Bytes bad_header = file;
  bad_header[header - 10] ^= 0x01;  // inside the header's tag
  EXPECT_EQ(code(load(bad_header, 4096)), Errc::kAuth);
  Bytes bad_context = seal_file(os_random().bytes(1000), {{"app", "models"}});
  const size_t at = std::search(bad_context.begin(), bad_context.end(), std::begin("models"), std::end("models") - 1) - bad_context.begin();
  bad_context[at] = 'M';  // another context: KMS would not release, and the header's tag fails
  EXPECT_EQ(code(load(bad_context, 4096)), Errc::kAuth);
  Bytes bad_chunk = file;
  bad_chunk[header + 66 + kChunk + 100] ^= 0x01;
  EXPECT_EQ(code(load(bad_chunk, 4096)), Errc::kAuth);
  EXPECT_EQ(code(load(bad_chunk, 4096, false)), Errc::kAuth);
  ByteView cut = ByteView(file).first(file.size() - 100);
  EXPECT_EQ(code(load(cut, 4096, false)), Errc::kAuth);
  EXPECT_EQ(code(load(ByteView(file).first(header - 3), 100, false)), Errc::kFormat);
  // Announced one byte short or long: refused as the wrong size.
  auto up = client->stream("load-artifact", Value::map({cbor::entry("kind", Value::text("model")), cbor::entry("name", Value::text("m")),
                                                        cbor::entry("size", Value::uint(file.size() + 1))}));
  up.send(Value::map({cbor::entry("data", Value::bytes(file))}));
  EXPECT_EQ(code(up.finish()), Errc::kFormat);
  EXPECT_EQ(loaded_artifacts(), 0u);
}

TEST_F(SealedArtifact, TheHeadersKeyIdAndContextGoThroughTheReleasePolicy) {
  enclave::ServiceOptions opts;
  opts.policy = enclave::ReleasePolicy::parse(std::string(R"({"kms_key_ids": [")") + kReleasedArn +
                                              R"("], "encryption_context": {"app": "models"}})");
  start(std::move(opts));
  push_credentials();
  Bytes plain = os_random().bytes(10000);
  EXPECT_EQ(code(load(seal_file(plain, {{"app", "other"}}), 4096)), Errc::kPolicy);
  EXPECT_EQ(code(load(seal_file(plain, {{"app", "models"}}, "arn:aws:kms:us-east-1:111122223333:key/other"), 4096)),
            Errc::kPolicy);
  net::Response r = load(seal_file(plain, {{"app", "models"}, {"team", "ml"}}), 4096);
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.body.find("size")->as_uint(), plain.size());
}

TEST_F(SealedArtifact, NeedsCredentialsAndRefusesAKeyHandleOrAnUnsealedArtifactWithoutOne) {
  start({});
  Bytes file = seal_file(os_random().bytes(1000), {});
  EXPECT_EQ(code(load(file, 4096)), Errc::kEnvironment);  // the release needs pushed credentials
  std::string key = load_data_key();                      // pushes them
  EXPECT_EQ(code(load(file, 4096, true, key)), Errc::kUsage);
  Bytes stream = shield::encrypt_stream(shield::Shield::with_key(data_key), Bytes(3000, 2), {.chunk_size = 1024});
  EXPECT_EQ(code(load(stream, 4096)), Errc::kUsage);
  Bytes v4 = shield::Shield::with_key(data_key).encrypt(as_bytes("v4"));
  EXPECT_EQ(code(load(v4, 4096)), Errc::kUsage);
  EXPECT_EQ(code(load(v4, 4096, false)), Errc::kUsage);
  EXPECT_EQ(loaded_artifacts(), 0u);
  net::Response r = load(file, 4096);
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(load(stream, 4096, true, key).body.find("size")->as_uint(), 3000u);
}
