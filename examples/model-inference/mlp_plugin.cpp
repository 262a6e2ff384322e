// mlp_plugin: a multi-layer perceptron classifier as a shield-nitro code plugin
// (include/shield_nitro/plugin_abi.h, docs/plugin-abi.md).
//
// init takes one artifact: the weights in the SNML format (README.md), parsed strictly.
// invoke takes a batch of float32 feature vectors and returns each one's class (argmax of the
// output layer) and, on request, the output scores. The parsed model is read-only after init,
// so invoke is thread-safe without locks.
//
// Self-contained on purpose: only libc, libstdc++ and libm, so it loads in any enclave image.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "shield_nitro/plugin_abi.h"

namespace {

constexpr char kWeightsMagic[4] = {'S', 'N', 'M', 'L'};
constexpr char kRequestMagic[4] = {'S', 'N', 'M', 'I'};
constexpr char kReplyMagic[4] = {'S', 'N', 'M', 'O'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxLayers = 16;
constexpr uint32_t kMaxDim = 65536;
constexpr uint64_t kMaxParams = 64ull << 20;   // 256 MiB of float32
constexpr uint32_t kMaxBatch = 1u << 20;
constexpr uint32_t kFlagScores = 1;

// Bounds-checked little-endian reader over untrusted bytes: every getter fails (and consumes
// nothing) when fewer bytes remain than asked.
class Reader {
 public:
  Reader(const uint8_t* data, size_t len) : p_(data), left_(len) {}
  bool u32(uint32_t& out) {
    if (left_ < 4) return false;
    out = uint32_t(p_[0]) | uint32_t(p_[1]) << 8 | uint32_t(p_[2]) << 16 | uint32_t(p_[3]) << 24;
    advance(4);
    return true;
  }
  bool magic(const char (&m)[4]) {
    if (left_ < 4 || std::memcmp(p_, m, 4) != 0) return false;
    advance(4);
    return true;
  }
  // n float32 values; false if short or any is not finite.
  bool floats(uint64_t n, std::vector<float>& out) {
    if (n > left_ / 4) return false;
    out.resize(static_cast<size_t>(n));
    for (size_t i = 0; i < out.size(); ++i) {
      uint32_t bits = 0;
      if (!u32(bits)) return false;
      std::memcpy(&out[i], &bits, 4);
      if (!std::isfinite(out[i])) return false;
    }
    return true;
  }
  size_t remaining() const { return left_; }

 private:
  void advance(size_t n) {
    p_ += n;
    left_ -= n;
  }
  const uint8_t* p_;
  size_t left_;
};

struct Layer {
  uint32_t in = 0, out = 0;
  std::vector<float> w;  // [out][in]
  std::vector<float> b;  // [out]
};

struct Model {
  std::vector<Layer> layers;
  uint32_t input_dim() const { return layers.front().in; }
  uint32_t output_dim() const { return layers.back().out; }
};

void set_err(char* err, size_t err_len, const char* fmt, ...) {
  if (!err || err_len == 0) return;
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
}

// Header: magic, version, layer count, dims[count + 1]. Returns "" or the reason.
std::string parse_dims(Reader& r, std::vector<uint32_t>& dims) {
  uint32_t version = 0, count = 0;
  if (!r.magic(kWeightsMagic)) return "weights: bad magic (want SNML)";
  if (!r.u32(version) || !r.u32(count)) return "weights: truncated header";
  if (version != kVersion) return "weights: unsupported version " + std::to_string(version);
  if (count == 0 || count > kMaxLayers) return "weights: layer count " + std::to_string(count) + " not in 1..16";
  dims.resize(count + 1);
  uint64_t params = 0;
  for (auto& d : dims) {
    if (!r.u32(d)) return "weights: truncated dimensions";
    if (d == 0 || d > kMaxDim) return "weights: dimension " + std::to_string(d) + " not in 1..65536";
  }
  for (uint32_t i = 0; i < count; ++i) params += uint64_t(dims[i]) * dims[i + 1] + dims[i + 1];
  if (params > kMaxParams) return "weights: too many parameters";
  if (params * 4 != r.remaining()) return "weights: size does not match the dimensions";
  return "";
}

std::string parse_model(const uint8_t* data, size_t len, Model& model) {
  Reader r(data, len);
  std::vector<uint32_t> dims;
  std::string why = parse_dims(r, dims);
  if (!why.empty()) return why;
  model.layers.resize(dims.size() - 1);
  for (size_t i = 0; i < model.layers.size(); ++i) {
    Layer& l = model.layers[i];
    l.in = dims[i];
    l.out = dims[i + 1];
    if (!r.floats(uint64_t(l.in) * l.out, l.w) || !r.floats(l.out, l.b))
      return "weights: layer " + std::to_string(i) + " has a non-finite value";
  }
  return "";
}

// One layer: float64 accumulation per neuron (bias first), rounded to float32 once; ReLU on
// hidden layers. train.py's reference forward pass does exactly this.
void apply(const Layer& l, const float* in, float* out, bool relu) {
  for (uint32_t o = 0; o < l.out; ++o) {
    const float* w = &l.w[size_t(o) * l.in];
    double acc = l.b[o];
    for (uint32_t i = 0; i < l.in; ++i) acc += double(w[i]) * double(in[i]);
    float v = static_cast<float>(acc);
    out[o] = relu && v < 0 ? 0.0f : v;
  }
}

// Returns the output scores of one input in out (output_dim values).
void forward(const Model& m, const float* x, std::vector<float>& a, std::vector<float>& b) {
  a.assign(x, x + m.input_dim());
  for (size_t i = 0; i < m.layers.size(); ++i) {
    b.resize(m.layers[i].out);
    apply(m.layers[i], a.data(), b.data(), i + 1 < m.layers.size());
    a.swap(b);
  }
}

uint32_t argmax(const std::vector<float>& v) {
  return static_cast<uint32_t>(std::max_element(v.begin(), v.end()) - v.begin());  // first maximum
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

struct Request {
  uint32_t count = 0, dim = 0, flags = 0;
  std::vector<float> x;
};

std::string parse_request(const Model& m, const uint8_t* input, size_t len, Request& req) {
  Reader r(input, len);
  if (!r.magic(kRequestMagic)) return "request: bad magic (want SNMI)";
  if (!r.u32(req.count) || !r.u32(req.dim) || !r.u32(req.flags)) return "request: truncated header";
  if (req.dim != m.input_dim())
    return "request: vectors have " + std::to_string(req.dim) + " features, the model takes " + std::to_string(m.input_dim());
  if (req.count == 0 || req.count > kMaxBatch) return "request: batch size not in 1..1048576";
  if (req.flags & ~kFlagScores) return "request: unknown flags";
  if (uint64_t(req.count) * req.dim * 4 != r.remaining()) return "request: size does not match count x dim";
  if (!r.floats(uint64_t(req.count) * req.dim, req.x)) return "request: a feature is not finite";
  return "";
}

std::vector<uint8_t> classify(const Model& m, const Request& req) {
  bool scores = req.flags & kFlagScores;
  std::vector<uint8_t> out(kReplyMagic, kReplyMagic + 4);
  put_u32(out, req.count);
  put_u32(out, scores ? m.output_dim() : 0);
  std::vector<float> a, b, all_scores;
  for (uint32_t n = 0; n < req.count; ++n) {
    forward(m, &req.x[size_t(n) * req.dim], a, b);
    put_u32(out, argmax(a));
    if (scores) all_scores.insert(all_scores.end(), a.begin(), a.end());
  }
  for (float s : all_scores) {
    uint32_t bits;
    std::memcpy(&bits, &s, 4);
    put_u32(out, bits);
  }
  return out;
}

}  // namespace

extern "C" {

int sn_plugin_abi_version(void) { return SN_PLUGIN_ABI_VERSION; }

int sn_plugin_init(const sn_artifact* artifacts, size_t n_artifacts, void** state, char* err, size_t err_len) {
  if (!state) return set_err(err, err_len, "init: no state pointer"), 1;
  *state = nullptr;
  if (n_artifacts != 1 || !artifacts || !artifacts[0].data)
    return set_err(err, err_len, "init: expected exactly one artifact (the SNML weights), got %zu", n_artifacts), 1;
  try {
    auto* model = new Model;
    std::string why = parse_model(artifacts[0].data, artifacts[0].len, *model);
    if (!why.empty()) {
      delete model;
      return set_err(err, err_len, "%s", why.c_str()), 1;
    }
    *state = model;
    return 0;
  } catch (const std::bad_alloc&) {
    return set_err(err, err_len, "init: out of memory"), 1;
  }
}

int sn_plugin_invoke(void* state, const uint8_t* input, size_t input_len, uint8_t** output, size_t* output_len,
                     char* err, size_t err_len) {
  if (!state || !output || !output_len || (!input && input_len)) return set_err(err, err_len, "invoke: bad arguments"), 1;
  try {
    const Model& m = *static_cast<const Model*>(state);
    Request req;
    std::string why = parse_request(m, input, input_len, req);
    if (!why.empty()) return set_err(err, err_len, "%s", why.c_str()), 1;
    std::vector<uint8_t> reply = classify(m, req);
    *output = static_cast<uint8_t*>(std::malloc(reply.size()));
    if (!*output) return set_err(err, err_len, "invoke: out of memory"), 1;
    std::memcpy(*output, reply.data(), reply.size());
    *output_len = reply.size();
    return 0;
  } catch (const std::bad_alloc&) {
    return set_err(err, err_len, "invoke: out of memory"), 1;
  }
}

void sn_plugin_free_output(void* state, uint8_t* output, size_t output_len) { std::free(output); }

void sn_plugin_fini(void* state) {
  auto* model = static_cast<Model*>(state);
  if (!model) return;
  // The weights are the secret the enclave protects: wipe them before freeing.
  for (auto& l : model->layers) {
    volatile float* w = l.w.data();
    for (size_t i = 0; i < l.w.size(); ++i) w[i] = 0;
    volatile float* b = l.b.data();
    for (size_t i = 0; i < l.b.size(); ++i) b[i] = 0;
  }
  delete model;
}

}  // extern "C"
