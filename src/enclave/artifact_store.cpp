#include "shield_nitro/enclave/artifact_store.h"

#include "shield_nitro/core/error.h"

namespace shield_nitro::enclave {

const char* kind_name(ArtifactKind k) { return k == ArtifactKind::kModel ? "model" : "code"; }

ArtifactKind parse_kind(const std::string& s) {
  if (s == "model") return ArtifactKind::kModel;
  if (s == "code") return ArtifactKind::kCode;
  throw Error(Errc::kUsage, "artifact kind must be 'model' or 'code', got '" + s + "'");
}

std::string ArtifactStore::next_handle_locked() { return "art-" + std::to_string(next_++); }

std::string ArtifactStore::add_model(std::string name, SecureBytes plaintext) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string handle = next_handle_locked();
  Entry e;
  e.info = {handle, std::move(name), ArtifactKind::kModel, plaintext.size()};
  e.model = std::make_shared<const SecureBytes>(std::move(plaintext));
  items_.emplace(handle, std::move(e));
  return handle;
}

std::shared_ptr<const SecureBytes> ArtifactStore::model_locked(const std::string& handle) const {
  auto it = items_.find(handle);
  if (it == items_.end()) throw Error(Errc::kNotFound, "no artifact loaded under handle '" + handle + "'");
  if (!it->second.model) throw Error(Errc::kUsage, "artifact '" + handle + "' is code, not a model");
  return it->second.model;
}

std::string ArtifactStore::add_code(std::string name, const SecureBytes& object, const std::vector<std::string>& model_handles) {
  Entry e;
  std::vector<PluginInput> inputs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& h : model_handles) {
      e.inputs.push_back(model_locked(h));
      inputs.push_back({items_.at(h).info.name, e.inputs.back()->view()});
    }
  }
  e.plugin = Plugin::load(object, name, inputs);
  e.info = {"", std::move(name), ArtifactKind::kCode, object.size()};
  std::lock_guard<std::mutex> lock(mu_);
  std::string handle = next_handle_locked();
  e.info.handle = handle;
  items_.emplace(handle, std::move(e));
  return handle;
}

std::shared_ptr<const Plugin> ArtifactStore::plugin(const std::string& handle) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find(handle);
  if (it == items_.end()) throw Error(Errc::kNotFound, "no artifact loaded under handle '" + handle + "'");
  if (!it->second.plugin) throw Error(Errc::kUsage, "artifact '" + handle + "' is a model; invoke needs a code artifact");
  return it->second.plugin;
}

bool ArtifactStore::remove(const std::string& handle) {
  std::lock_guard<std::mutex> lock(mu_);
  return items_.erase(handle) > 0;
}

std::vector<ArtifactInfo> ArtifactStore::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ArtifactInfo> out;
  for (const auto& [h, e] : items_) out.push_back(e.info);
  return out;
}

}  // namespace shield_nitro::enclave
