// A tiny code plugin for the enclave tests: init keeps the model artifacts' names and sizes,
// invoke answers "<model name>:<model size>|<input reversed>". "fail" as input fails.
#include <cstdlib>
#include <cstring>
#include <string>

#include "shield_nitro/plugin_abi.h"

namespace {
struct State {
  std::string models;
};
void set_err(char* err, size_t len, const char* msg) {
  if (len) {
    std::strncpy(err, msg, len - 1);
    err[len - 1] = 0;
  }
}
}  // namespace

extern "C" {
int sn_plugin_abi_version(void) { return SN_PLUGIN_ABI_VERSION; }

int sn_plugin_init(const sn_artifact* arts, size_t n, void** state, char* err, size_t err_len) {
  auto* s = new State;
  for (size_t i = 0; i < n; ++i) s->models += std::string(arts[i].name) + ":" + std::to_string(arts[i].len);
  if (n == 1 && arts[0].len == 0) {
    delete s;
    set_err(err, err_len, "empty model");
    return 1;
  }
  *state = s;
  return 0;
}

int sn_plugin_invoke(void* state, const uint8_t* in, size_t in_len, uint8_t** out, size_t* out_len, char* err,
                     size_t err_len) {
  std::string input(reinterpret_cast<const char*>(in), in_len);
  if (input == "fail") {
    set_err(err, err_len, "asked to fail");
    return 1;
  }
  std::string r = static_cast<State*>(state)->models + "|" + std::string(input.rbegin(), input.rend());
  *out = static_cast<uint8_t*>(std::malloc(r.size() + 1));
  std::memcpy(*out, r.data(), r.size());
  *out_len = r.size();
  return 0;
}

void sn_plugin_free_output(void*, uint8_t* out, size_t) { std::free(out); }
void sn_plugin_fini(void* state) { delete static_cast<State*>(state); }
}
