#include "plugin_host.h"

#include <dlfcn.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace plugin_test {

namespace {
template <typename Fn>
Fn resolve(void* handle, const char* name) {
  void* sym = ::dlsym(handle, name);
  if (!sym) throw std::runtime_error(std::string("plugin lacks ") + name);
  return reinterpret_cast<Fn>(sym);
}
}  // namespace

PluginHost::PluginHost(const std::string& path) {
  handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) throw std::runtime_error(std::string("dlopen: ") + ::dlerror());
  abi_version_ = resolve<decltype(abi_version_)>(handle_, "sn_plugin_abi_version");
  init_ = resolve<decltype(init_)>(handle_, "sn_plugin_init");
  invoke_ = resolve<decltype(invoke_)>(handle_, "sn_plugin_invoke");
  free_output_ = resolve<decltype(free_output_)>(handle_, "sn_plugin_free_output");
  fini_ = resolve<decltype(fini_)>(handle_, "sn_plugin_fini");
}

PluginHost::~PluginHost() {
  fini();
  ::dlclose(handle_);
}

Result PluginHost::init(const std::vector<std::pair<std::string, Bytes>>& artifacts, size_t err_len) {
  fini();
  std::vector<sn_artifact> list;
  for (const auto& [name, data] : artifacts) list.push_back({name.c_str(), data.data(), data.size()});
  std::string err(err_len + 16, '\x7f');  // bytes past err_len must stay untouched
  Result r;
  r.rc = init_(list.data(), list.size(), &state_, err.data(), err_len);
  if (err.find('\0') < err_len) r.err = err.substr(0, err.find('\0'));
  else if (err_len > 0) r.err = "<not NUL-terminated within err_len>";
  for (size_t i = err_len; i < err.size(); ++i)
    if (err[i] != '\x7f') r.err = "<wrote past err_len>";
  has_state_ = r.rc == 0;
  return r;
}

Result PluginHost::invoke(const Bytes& input) const {
  Result r;
  char err[256] = {0};
  uint8_t* out = nullptr;
  size_t out_len = 0;
  r.rc = invoke_(state_, input.data(), input.size(), &out, &out_len, err, sizeof err);
  r.err = err;
  if (r.rc == 0) {
    r.output.assign(out, out + out_len);
    free_output_(state_, out, out_len);
  }
  return r;
}

void PluginHost::fini() {
  if (has_state_) fini_(state_);
  has_state_ = false;
  state_ = nullptr;
}

Bytes read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace plugin_test
