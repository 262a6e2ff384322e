// A minimal in-process host for code plugins (include/shield_nitro/plugin_abi.h): dlopen a
// .so, resolve the five entry points, and call them with std::vector buffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shield_nitro/plugin_abi.h"

namespace plugin_test {

using Bytes = std::vector<uint8_t>;

struct Result {
  int rc = 0;
  std::string err;
  Bytes output;
};

class PluginHost {
 public:
  explicit PluginHost(const std::string& path);  // throws std::runtime_error
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  int abi_version() const { return abi_version_(); }
  // init with the given named artifacts; on success the state is kept for invoke.
  Result init(const std::vector<std::pair<std::string, Bytes>>& artifacts, size_t err_len = 256);
  Result invoke(const Bytes& input) const;
  void fini();

 private:
  void* handle_ = nullptr;
  void* state_ = nullptr;
  bool has_state_ = false;
  decltype(&sn_plugin_abi_version) abi_version_ = nullptr;
  decltype(&sn_plugin_init) init_ = nullptr;
  decltype(&sn_plugin_invoke) invoke_ = nullptr;
  decltype(&sn_plugin_free_output) free_output_ = nullptr;
  decltype(&sn_plugin_fini) fini_ = nullptr;
};

Bytes read_all(const std::string& path);

}  // namespace plugin_test
