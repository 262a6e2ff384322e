// The example plugins through their C ABI: the MLP reproduces the plaintext model's predictions
// on the held-out digits exactly, malformed weights and requests are refused with a reason (never
// a crash), invoke is thread-safe, and the plugins depend on nothing but the C/C++ runtime.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "plugin_host.h"

using plugin_test::Bytes;
using plugin_test::PluginHost;
using plugin_test::read_all;

namespace {

const std::string kModelDir = MODEL_DIR;

uint32_t get_u32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
void put_u32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_f32(Bytes& out, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  put_u32(out, bits);
}

struct TestSet {
  uint32_t count = 0, dim = 0;
  Bytes features;  // count * dim little-endian float32
  Bytes labels;
};

TestSet load_testset() {
  Bytes b = read_all(kModelDir + "/testset.bin");
  TestSet t;
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "SNTS");
  EXPECT_EQ(get_u32(&b[4]), 1u);
  t.count = get_u32(&b[8]);
  t.dim = get_u32(&b[12]);
  size_t fbytes = size_t(t.count) * t.dim * 4;
  EXPECT_EQ(b.size(), 16 + fbytes + t.count);
  t.features.assign(b.begin() + 16, b.begin() + 16 + fbytes);
  t.labels.assign(b.begin() + 16 + fbytes, b.end());
  return t;
}

nlohmann::json reference() { return nlohmann::json::parse(read_all(kModelDir + "/reference.json")); }

// An SNMI request for vectors [first, first + n) of the test set.
Bytes request(const TestSet& t, uint32_t first, uint32_t n, uint32_t flags = 0) {
  Bytes r = {'S', 'N', 'M', 'I'};
  put_u32(r, n);
  put_u32(r, t.dim);
  put_u32(r, flags);
  r.insert(r.end(), t.features.begin() + size_t(first) * t.dim * 4, t.features.begin() + size_t(first + n) * t.dim * 4);
  return r;
}

std::vector<uint32_t> classes(const Bytes& reply) {
  EXPECT_GE(reply.size(), 12u);
  EXPECT_EQ(std::string(reply.begin(), reply.begin() + 4), "SNMO");
  uint32_t n = get_u32(&reply[4]);
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < n; ++i) out.push_back(get_u32(&reply[12 + 4 * i]));
  return out;
}

class MlpPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(host.abi_version(), SN_PLUGIN_ABI_VERSION);
    auto r = host.init({{"mlp.weights", weights}});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  Bytes weights = read_all(kModelDir + "/mlp.weights");
  PluginHost host{MLP_PLUGIN};
  TestSet set = load_testset();
};

}  // namespace

TEST_F(MlpPlugin, ReproducesThePlaintextModelOnTheTestSet) {
  auto ref = reference();
  auto r = host.invoke(request(set, 0, set.count));
  ASSERT_EQ(r.rc, 0) << r.err;
  std::vector<uint32_t> got = classes(r.output);
  ASSERT_EQ(got.size(), set.count);
  EXPECT_EQ(got, ref["predictions"].get<std::vector<uint32_t>>());
  size_t correct = 0;
  for (uint32_t i = 0; i < set.count; ++i) correct += got[i] == set.labels[i];
  EXPECT_EQ(correct, ref["correct"].get<size_t>());
  EXPECT_DOUBLE_EQ(double(correct) / set.count, ref["accuracy"].get<double>());
  // The float32 artifact answers like scikit-learn's own float64 model on every test image.
  EXPECT_EQ(ref["sklearn_agreement"].get<uint32_t>(), set.count);
  EXPECT_DOUBLE_EQ(ref["accuracy"].get<double>(), ref["sklearn_accuracy"].get<double>());
  EXPECT_GT(ref["accuracy"].get<double>(), 0.9);  // a real model, not chance (10 classes)
}

TEST_F(MlpPlugin, BatchesAndScoresAgree) {
  auto whole = classes(host.invoke(request(set, 0, set.count)).output);
  auto r = host.invoke(request(set, 5, 7, 1));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto part = classes(r.output);
  uint32_t out_dim = get_u32(&r.output[8]);
  ASSERT_EQ(out_dim, 10u);
  ASSERT_EQ(r.output.size(), 12 + 7 * 4 + 7 * out_dim * 4);
  for (uint32_t i = 0; i < 7; ++i) {
    EXPECT_EQ(part[i], whole[5 + i]);
    const uint8_t* s = &r.output[12 + 7 * 4 + i * out_dim * 4];
    float best = -INFINITY;
    uint32_t best_k = 0;
    for (uint32_t k = 0; k < out_dim; ++k) {
      float v;
      uint32_t bits = get_u32(s + 4 * k);
      std::memcpy(&v, &bits, 4);
      if (v > best) best = v, best_k = k;
    }
    EXPECT_EQ(best_k, part[i]);
  }
}

TEST_F(MlpPlugin, ConcurrentInvokesGiveTheSameAnswers) {
  auto expected = classes(host.invoke(request(set, 0, set.count)).output);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t i = t; i < set.count; i += 4) {
        auto got = classes(host.invoke(request(set, i, 1)).output);
        mismatches[t] += got.size() != 1 || got[0] != expected[i];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST_F(MlpPlugin, MalformedRequestsAreRefusedWithAReason) {
  Bytes good = request(set, 0, 2);
  auto refused = [&](Bytes b, const char* what) {
    auto r = host.invoke(b);
    EXPECT_NE(r.rc, 0) << what;
    EXPECT_FALSE(r.err.empty()) << what;
  };
  refused({}, "empty");
  Bytes bad = good;
  bad[0] = 'X';
  refused(bad, "magic");
  bad = good;
  bad[8] = 63;  // 63 features, the model takes 64
  refused(bad, "dim");
  bad = good;
  bad[4] = 0;  // count 0
  refused(bad, "count 0");
  bad = good;
  bad[4] = 3;  // count 3 but two vectors
  refused(bad, "count mismatch");
  bad = good;
  bad[12] = 2;  // unknown flag
  refused(bad, "flags");
  bad = good;
  bad.pop_back();
  refused(bad, "truncated");
  bad = good;
  float nan = NAN;
  std::memcpy(&bad[16], &nan, 4);
  refused(bad, "NaN feature");
}

TEST(MlpPluginWeights, MalformedArtifactsAreRefusedNeverCrash) {
  PluginHost host(MLP_PLUGIN);
  Bytes w = read_all(kModelDir + "/mlp.weights");
  auto refused = [&](const Bytes& b, const std::string& what) {
    auto r = host.init({{"mlp.weights", b}});
    EXPECT_NE(r.rc, 0) << what;
    EXPECT_FALSE(r.err.empty()) << what;
    EXPECT_EQ(r.err.find("<"), std::string::npos) << what << ": " << r.err;
  };
  for (size_t n = 0; n < w.size(); n += (n < 64 ? 1 : 97)) refused(Bytes(w.begin(), w.begin() + n), "prefix " + std::to_string(n));
  Bytes extra = w;
  extra.push_back(0);
  refused(extra, "trailing byte");
  auto patched = [&](size_t off, uint32_t v) {
    Bytes b = w;
    for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
    return b;
  };
  refused(patched(0, 0x4c4d4e54), "magic");
  refused(patched(4, 2), "version");
  refused(patched(8, 0), "zero layers");
  refused(patched(8, 17), "too many layers");
  refused(patched(8, 0xffffffff), "huge layer count");
  refused(patched(12, 0), "zero dimension");
  refused(patched(12, 65), "inconsistent dimension");
  refused(patched(12, 0xffffffff), "huge dimension");
  refused(patched(16, 65536), "parameter count mismatch");
  uint32_t inf_bits = 0x7f800000;
  refused(patched(w.size() - 4, inf_bits), "infinite bias");
  // Artifact count and error-buffer contract.
  EXPECT_NE(host.init({}).rc, 0);
  EXPECT_NE(host.init({{"a", w}, {"b", w}}).rc, 0);
  auto small = host.init({{"x", Bytes{1, 2, 3}}}, 8);
  EXPECT_NE(small.rc, 0);
  EXPECT_LT(small.err.size(), 8u);
  EXPECT_EQ(small.err.find("<"), std::string::npos) << small.err;
  EXPECT_NE(host.init({{"x", Bytes{1, 2, 3}}}, 0).rc, 0);  // no error buffer at all: still safe
}

TEST(MlpPluginWeights, RandomCorruptionNeverCrashes) {
  PluginHost host(MLP_PLUGIN);
  Bytes w = read_all(kModelDir + "/mlp.weights");
  std::mt19937 rng(7);
  int refusals = 0;
  for (int i = 0; i < 3000; ++i) {
    Bytes b = w;
    size_t edits = 1 + rng() % 4;
    for (size_t e = 0; e < edits; ++e) b[rng() % (i % 2 ? 64 : b.size())] = static_cast<uint8_t>(rng());
    if (rng() % 5 == 0) b.resize(rng() % b.size());
    auto r = host.init({{"mlp.weights", b}});
    if (r.rc != 0) {
      ++refusals;
      EXPECT_FALSE(r.err.empty());
    }
  }
  EXPECT_GT(refusals, 0);
}

namespace {

Bytes score_request(const std::vector<std::array<float, 5>>& people) {
  Bytes r = {'S', 'N', 'S', 'I'};
  put_u32(r, static_cast<uint32_t>(people.size()));
  for (const auto& p : people)
    for (float f : p) put_f32(r, f);
  return r;
}

std::vector<std::pair<uint32_t, uint32_t>> scores(const Bytes& reply) {
  EXPECT_EQ(std::string(reply.begin(), reply.begin() + 4), "SNSO");
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (uint32_t i = 0; i < get_u32(&reply[4]); ++i) out.push_back({get_u32(&reply[8 + 8 * i]), get_u32(&reply[12 + 8 * i])});
  return out;
}

}  // namespace

TEST(ScorePlugin, ScoresAreBoundedMonotoneAndDecisionsFollowTheScore) {
  PluginHost host(SCORE_PLUGIN);
  ASSERT_EQ(host.init({}).rc, 0);
  std::vector<std::array<float, 5>> people;
  for (float late : {0.f, 1.f, 3.f, 8.f})
    for (float income : {20.f, 60.f, 150.f, 900.f}) people.push_back({income, 0.3f, 4.f, late, 0.4f});
  auto r = host.invoke(score_request(people));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto s = scores(r.output);
  ASSERT_EQ(s.size(), people.size());
  uint32_t lowest_approved = 851, highest_referred = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_GE(s[i].first, 300u);
    EXPECT_LE(s[i].first, 850u);
    ASSERT_LE(s[i].second, 1u);
    if (s[i].second) lowest_approved = std::min(lowest_approved, s[i].first);
    else highest_referred = std::max(highest_referred, s[i].first);
    if (i % 4) {
      EXPECT_GE(s[i].first, s[i - 1].first) << "more income lowered the score";
    }
    if (i >= 4) {
      EXPECT_LE(s[i].first, s[i - 4].first) << "more late payments raised the score";
    }
  }
  EXPECT_GT(lowest_approved, highest_referred);
  EXPECT_NE(s.front().first, s.back().first);  // the features matter
  EXPECT_EQ(scores(host.invoke(score_request(people)).output), s);  // deterministic
}

TEST(ScorePlugin, MalformedRequestsAreRefused) {
  PluginHost host(SCORE_PLUGIN);
  EXPECT_NE(host.init({{"unexpected", Bytes{1}}}).rc, 0);
  ASSERT_EQ(host.init({}).rc, 0);
  Bytes good = score_request({{50.f, 0.2f, 3.f, 0.f, 0.3f}});
  for (size_t n = 0; n < good.size(); ++n) EXPECT_NE(host.invoke(Bytes(good.begin(), good.begin() + n)).rc, 0) << n;
  Bytes bad = good;
  bad[0] = 'X';
  EXPECT_NE(host.invoke(bad).rc, 0);
  bad = good;
  bad[4] = 2;
  EXPECT_NE(host.invoke(bad).rc, 0);
  EXPECT_NE(host.invoke(score_request({{-1.f, 0.2f, 3.f, 0.f, 0.3f}})).rc, 0);
  EXPECT_NE(host.invoke(score_request({{NAN, 0.2f, 3.f, 0.f, 0.3f}})).rc, 0);
  EXPECT_EQ(host.invoke(good).rc, 0);
}

TEST(Plugins, DependOnlyOnTheCRuntimeAndExportOnlyTheAbi) {
  for (const std::string so : {MLP_PLUGIN, SCORE_PLUGIN}) {
    FILE* p = ::popen(("readelf -dW '" + so + "' 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    char line[512];
    int needed = 0;
    while (std::fgets(line, sizeof line, p)) {
      std::string l = line;
      if (l.find("(NEEDED)") == std::string::npos) continue;
      ++needed;
      bool ok = false;
      for (const char* lib : {"[libc.so", "[libstdc++.so", "[libm.so", "[libgcc_s.so", "[ld-linux", "[libasan", "[libubsan"})
        ok = ok || l.find(lib) != std::string::npos;
      EXPECT_TRUE(ok) << so << ": " << l;
    }
    ::pclose(p);
    EXPECT_GT(needed, 0);
    FILE* q = ::popen(("nm -D --defined-only '" + so + "' 2>&1").c_str(), "r");
    ASSERT_NE(q, nullptr);
    while (std::fgets(line, sizeof line, q)) {
      std::string l = line;
      if (l.find(" T ") != std::string::npos) {
        EXPECT_NE(l.find("sn_plugin_"), std::string::npos) << so << ": " << l;
      }
    }
    ::pclose(q);
  }
}
