#include "workload.h"

#include <nlohmann/json.hpp>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"

namespace sn_test {

using namespace shield_nitro;

namespace {

uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24; }
void put_le32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

#ifdef SN_MLP_PLUGIN
// The whole digits test set as one SNMI request; the reply's classes must be reference.json's.
Artifacts mlp() {
  Artifacts a;
  a.description = "digits MLP (examples/model-inference)";
  a.model = read_file(std::string(SN_MODEL_DIR) + "/mlp.weights");
  a.plugin = read_file(SN_MLP_PLUGIN);
  Bytes set = read_file(std::string(SN_MODEL_DIR) + "/testset.bin");
  uint32_t count = le32(&set[8]), dim = le32(&set[12]);
  a.input = {'S', 'N', 'M', 'I'};
  put_le32(a.input, count);
  put_le32(a.input, dim);
  put_le32(a.input, 0);
  a.input.insert(a.input.end(), set.begin() + 16, set.begin() + 16 + size_t(count) * dim * 4);
  auto expected = nlohmann::json::parse(read_text_file(std::string(SN_MODEL_DIR) + "/reference.json"))["predictions"]
                      .get<std::vector<uint32_t>>();
  a.check = [expected](ByteView out) -> std::string {
    if (out.size() < 12 || to_string(out.first(4)) != "SNMO") return "not an SNMO reply";
    uint32_t n = le32(&out[4]);
    if (n != expected.size() || out.size() < 12 + 4 * size_t(n)) return "wrong count " + std::to_string(n);
    for (uint32_t i = 0; i < n; ++i)
      if (le32(&out[12 + 4 * i]) != expected[i]) return "prediction " + std::to_string(i) + " differs from the plaintext model's";
    return "";
  };
  return a;
}
#endif

// tests/enclave's plugin answers "<model name>:<model size>|<input reversed>".
[[maybe_unused]] Artifacts test_plugin() {
  Artifacts a;
  a.description = "tests/enclave test plugin";
  a.model = os_random().bytes(20000);
  a.plugin = read_file(SN_TEST_PLUGIN);
  a.input = os_random().bytes(4096);
  Bytes rev(a.input.rbegin(), a.input.rend());
  std::string expected = "weights:20000|" + to_string(rev);
  a.check = [expected](ByteView out) -> std::string { return to_string(out) == expected ? "" : "unexpected output"; };
  return a;
}

}  // namespace

Artifacts example_artifacts() {
#ifdef SN_MLP_PLUGIN
  return mlp();
#else
  return test_plugin();
#endif
}

}  // namespace sn_test
