// A code plugin loaded from memory (docs/plugin-abi.md).
//
// The decrypted shared object is written into an anonymous memfd (RAM only, its size sealed)
// and opened with dlopen("/proc/self/fd/N"): the plaintext never reaches a filesystem. The
// object must export the C ABI of shield_nitro/plugin_abi.h. On destruction the plugin is
// closed and the memfd wiped, unless the object could not be unloaded (see plugin.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro::enclave {

struct PluginInput {
  std::string name;
  ByteView data;  // must stay valid until the plugin is destroyed
};

// One loaded plugin. invoke may run on several threads at once: the ABI requires plugins to
// allow it (docs/plugin-abi.md, Threading).
class Plugin {
 public:
  // Loads the object and calls sn_plugin_init with the given model artifacts.
  // Throws Error(kFormat) if it is not a loadable object or lacks the ABI,
  // Error(kUnsupported) for another ABI version, Error(kRemote) if init fails (its reason).
  static std::unique_ptr<Plugin> load(const SecureBytes& object, std::string name, const std::vector<PluginInput>& models);
  ~Plugin();
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  // Thread-safe per the ABI. Throws Error(kRemote) with the plugin's reason on failure.
  SecureBytes invoke(ByteView input) const;
  const std::string& name() const { return name_; }

 private:
  Plugin() = default;
  struct Abi;
  std::string name_;
  void* handle_ = nullptr;
  UniqueFd memfd_;
  void* state_ = nullptr;
  std::unique_ptr<Abi> abi_;
};

}  // namespace shield_nitro::enclave
