// score_plugin: the "encrypted code" example. A proprietary credit-style scoring function whose
// coefficients are compiled in: the plugin itself is the secret, shipped only as a sealed
// Shield artifact and opened inside the enclave. It takes no model artifact.
//
// Input: "SNSI", u32 count, then count records of 5 little-endian float32 features:
//   income (thousands per year), debt-to-income ratio (0..1+), years employed,
//   late payments in the last 24 months, credit utilisation (0..1+).
// Output: "SNSO", u32 count, then count records of {u32 score (300..850), u32 decision
//   (1 approve, 0 refer)}.
// Stateless, so invoke is trivially thread-safe. Only libc, libstdc++ and libm.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "shield_nitro/plugin_abi.h"

namespace {

constexpr size_t kFeatures = 5;
constexpr uint32_t kMaxBatch = 1u << 20;

// The secret: what the owner of this code does not want the cloud operator to read.
constexpr double kWeights[kFeatures] = {0.0185, -3.1, 0.142, -0.61, -1.75};
constexpr double kBias = 0.35;
constexpr double kIncomeCap = 250.0;  // thousands: beyond this, more income adds nothing
constexpr uint32_t kApproveAt = 670;

uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

float get_f32(const uint8_t* p) {
  uint32_t bits = get_u32(p);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t score(const float* x) {
  double z = kBias;
  for (size_t i = 0; i < kFeatures; ++i) {
    double v = x[i];
    if (i == 0) v = std::fmin(v, kIncomeCap);
    z += kWeights[i] * v;
  }
  double s = 300.0 + 550.0 / (1.0 + std::exp(-z));
  return static_cast<uint32_t>(std::lround(std::fmin(850.0, std::fmax(300.0, s))));
}

int fail(char* err, size_t err_len, const char* msg) {
  if (err && err_len) std::snprintf(err, err_len, "%s", msg);
  return 1;
}

}  // namespace

extern "C" {

int sn_plugin_abi_version(void) { return SN_PLUGIN_ABI_VERSION; }

int sn_plugin_init(const sn_artifact* artifacts, size_t n_artifacts, void** state, char* err, size_t err_len) {
  if (!state) return fail(err, err_len, "init: no state pointer");
  if (n_artifacts != 0) return fail(err, err_len, "init: score_plugin takes no artifacts");
  static int marker;  // no state to build; a non-null handle all the same
  *state = &marker;
  return 0;
}

int sn_plugin_invoke(void* state, const uint8_t* input, size_t input_len, uint8_t** output, size_t* output_len,
                     char* err, size_t err_len) {
  if (!output || !output_len || !input) return fail(err, err_len, "invoke: bad arguments");
  if (input_len < 8 || std::memcmp(input, "SNSI", 4) != 0) return fail(err, err_len, "request: bad magic (want SNSI)");
  uint32_t count = get_u32(input + 4);
  if (count == 0 || count > kMaxBatch) return fail(err, err_len, "request: count not in 1..1048576");
  if (input_len - 8 != size_t(count) * kFeatures * 4) return fail(err, err_len, "request: size does not match count");
  size_t out_len = 8 + size_t(count) * 8;
  auto* out = static_cast<uint8_t*>(std::malloc(out_len));
  if (!out) return fail(err, err_len, "invoke: out of memory");
  std::memcpy(out, "SNSO", 4);
  put_u32(out + 4, count);
  for (uint32_t n = 0; n < count; ++n) {
    float x[kFeatures];
    for (size_t i = 0; i < kFeatures; ++i) {
      x[i] = get_f32(input + 8 + (size_t(n) * kFeatures + i) * 4);
      if (!std::isfinite(x[i]) || x[i] < 0) {
        std::free(out);
        return fail(err, err_len, "request: features must be finite and non-negative");
      }
    }
    uint32_t s = score(x);
    put_u32(out + 8 + size_t(n) * 8, s);
    put_u32(out + 12 + size_t(n) * 8, s >= kApproveAt ? 1 : 0);
  }
  *output = out;
  *output_len = out_len;
  return 0;
}

void sn_plugin_free_output(void* state, uint8_t* output, size_t output_len) { std::free(output); }

void sn_plugin_fini(void* state) {}

}  // extern "C"
