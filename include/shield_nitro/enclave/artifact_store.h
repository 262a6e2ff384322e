// Decrypted artifacts, held only in enclave memory under handles ("art-1").
//
// A model artifact is plaintext bytes in a SecureBytes (wiped on unload). A code artifact is
// a Plugin loaded from memory; it may hold references to model artifacts, which stay alive
// while it does.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/enclave/plugin.h"

namespace shield_nitro::enclave {

enum class ArtifactKind { kModel, kCode };
// "model" or "code".
const char* kind_name(ArtifactKind k);
// "model" or "code"; throws Error(kUsage) otherwise.
ArtifactKind parse_kind(const std::string& s);

struct ArtifactInfo {
  std::string handle;
  std::string name;
  ArtifactKind kind;
  uint64_t size;  // plaintext bytes
};

// Owns every loaded artifact; thread-safe. Unloading drops the store's reference: the bytes are
// wiped when the last user (a running invoke, a plugin holding a model) lets go.
class ArtifactStore {
 public:
  // Takes the plaintext and returns its new handle.
  std::string add_model(std::string name, SecureBytes plaintext);
  // Loads the plugin with the named model artifacts (handles) as its init inputs.
  std::string add_code(std::string name, const SecureBytes& object, const std::vector<std::string>& model_handles);

  // Throws Error(kNotFound) / Error(kUsage) when the handle is not code.
  std::shared_ptr<const Plugin> plugin(const std::string& handle) const;
  // Unloads; false when no such handle.
  bool remove(const std::string& handle);
  // Every loaded artifact, by handle.
  std::vector<ArtifactInfo> list() const;

 private:
  struct Entry {
    ArtifactInfo info;
    std::shared_ptr<const SecureBytes> model;
    std::vector<std::shared_ptr<const SecureBytes>> inputs;  // keeps a plugin's models alive
    std::shared_ptr<const Plugin> plugin;
  };
  std::shared_ptr<const SecureBytes> model_locked(const std::string& handle) const;
  std::string next_handle_locked();

  mutable std::mutex mu_;
  std::map<std::string, Entry> items_;
  uint64_t next_ = 1;
};

}  // namespace shield_nitro::enclave
