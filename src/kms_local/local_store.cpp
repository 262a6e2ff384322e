#include "local_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <openssl/crypto.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/kms/kms_error.h"

namespace shield_nitro::kms {

namespace {

using json = nlohmann::json;

// The *.json files of dir. Temporary files of an atomic write interrupted by kill -9 are
// removed: they were never renamed into place, so no answer ever depended on them.
std::vector<std::string> list_json_files(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) out.push_back(dir + "/" + name);
    else if (name.find(".tmp") != std::string::npos) ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
  return out;
}

LocalKey key_from_json(const json& j) {
  LocalKey k;
  k.key_id = j.at("KeyId");
  k.arn = j.at("Arn");
  k.creation_date = j.at("CreationDate");
  k.description = j.value("Description", "");
  k.policy = j.at("Policy");
  // Files written before key state, tags and asymmetric keys existed lack these members:
  // they are enabled, untagged symmetric keys.
  k.key_spec = j.value("KeySpec", "SYMMETRIC_DEFAULT");
  k.key_usage = j.value("KeyUsage", "ENCRYPT_DECRYPT");
  k.key_state = j.value("KeyState", "Enabled");
  k.deletion_date = j.value("DeletionDate", 0.0);
  k.pending_window_days = j.value("PendingWindowInDays", 0);
  if (j.contains("Tags")) k.tags = j.at("Tags").get<std::map<std::string, std::string>>();
  k.material = SecureBytes(base64_decode(j.at("Material").get<std::string>()));
  if (k.key_spec == "SYMMETRIC_DEFAULT" && k.material.size() != 32) throw Error(Errc::kFormat, "key material is not 32 bytes");
  if (k.material.size() == 0) throw Error(Errc::kFormat, "key material is empty");
  return k;
}

// Takes DIR/kms-local.lock (flock, released when the fd closes, also on kill -9) and writes
// our pid into it, so a refused second server can say who holds the folder.
UniqueFd lock_state_folder(const std::string& dir) {
  std::string path = dir + "/kms-local.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) throw Error(Errc::kIo, "kms-local: cannot open " + path + ": " + std::strerror(errno));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char pid[32] = {};
    ssize_t n = ::pread(fd.get(), pid, sizeof pid - 1, 0);
    if (err != EWOULDBLOCK) throw Error(Errc::kIo, "kms-local: cannot lock " + path + ": " + std::strerror(err));
    std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "";
    while (!holder.empty() && !std::isdigit(static_cast<unsigned char>(holder.back()))) holder.pop_back();
    throw Error(Errc::kEnvironment, "kms-local: state folder " + dir + " is in use by another kms-local" +
                                        (holder.empty() ? "" : " (pid " + holder + ")") +
                                        "; stop it or choose another --state");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    log_warn("kms-local: cannot write the pid into " + path + ": " + std::strerror(errno));
  return fd;
}

void remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw Error(Errc::kIo, "kms-local: cannot remove " + path + ": " + std::strerror(errno));
}

// fsync of a folder, so an unlink in it survives a crash.
void sync_dir(const std::string& dir) {
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) ::fsync(d.get());
}

bool is_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace

LocalKey LocalKey::clone() const {
  LocalKey k;
  k.key_id = key_id;
  k.arn = arn;
  k.creation_date = creation_date;
  k.description = description;
  k.policy = policy;
  k.key_spec = key_spec;
  k.key_usage = key_usage;
  k.key_state = key_state;
  k.deletion_date = deletion_date;
  k.pending_window_days = pending_window_days;
  k.tags = tags;
  k.material = material.clone();
  return k;
}

LocalStore::LocalStore(std::string dir, std::string arn_prefix) : dir_(std::move(dir)), arn_prefix_(std::move(arn_prefix)) {
  make_dirs(dir_, 0700);
  lock_fd_ = lock_state_folder(dir_);
  make_dirs(dir_ + "/keys", 0700);
  make_dirs(dir_ + "/aliases", 0700);
  load();
}

void LocalStore::load() {
  for (const auto& path : list_json_files(dir_ + "/keys")) {
    try {
      LocalKey k = key_from_json(json::parse(read_text_file(path)));
      keys_.emplace(k.key_id, std::move(k));
    } catch (const std::exception& e) {
      log_warn("kms-local: skipping unreadable key file " + path + ": " + e.what());
    }
  }
  for (const auto& path : list_json_files(dir_ + "/aliases")) {
    try {
      json j = json::parse(read_text_file(path));
      double created = j.at("CreationDate");
      LocalAlias a{j.at("AliasName"), j.at("TargetKeyId"), created, j.value("LastUpdatedDate", created)};
      aliases_.emplace(a.name, a);
    } catch (const std::exception& e) {
      log_warn("kms-local: skipping unreadable alias file " + path + ": " + e.what());
    }
  }
}

void LocalStore::write_key(const LocalKey& k) {
  json j = {{"KeyId", k.key_id}, {"Arn", k.arn}, {"CreationDate", k.creation_date}, {"Description", k.description},
            {"Policy", k.policy}, {"KeySpec", k.key_spec}, {"KeyUsage", k.key_usage}, {"KeyState", k.key_state},
            {"Tags", k.tags}, {"Material", base64_encode(k.material.view())}};
  if (k.key_state == "PendingDeletion") {
    j["DeletionDate"] = k.deletion_date;
    j["PendingWindowInDays"] = k.pending_window_days;
  }
  std::string text = j.dump(2);
  write_file_atomic(dir_ + "/keys/" + k.key_id + ".json", as_bytes(text), 0600);
  OPENSSL_cleanse(text.data(), text.size());
}

LocalKey LocalStore::create_key(LocalKey k, double now) {
  k.key_id = random_uuid();
  k.arn = arn_prefix_ + "key/" + k.key_id;
  k.creation_date = now;
  if (k.material.size() == 0) throw Error(Errc::kInternal, "kms-local: a new key needs its material");
  write_key(k);
  LocalKey copy = k.clone();
  std::unique_lock lock(mu_);
  keys_.emplace(k.key_id, std::move(k));
  return copy;
}

LocalKey LocalStore::update_key(const std::string& key_id, const std::function<void(LocalKey&)>& change) {
  std::unique_lock lock(mu_);
  auto it = keys_.find(key_id);
  if (it == keys_.end()) throw_not_found("Key '" + arn_prefix_ + "key/" + key_id + "' does not exist");
  LocalKey updated = it->second.clone();
  change(updated);
  write_key(updated);
  it->second = updated.clone();
  return updated;
}

void LocalStore::put_policy(const std::string& key_id, const std::string& policy) {
  update_key(key_id, [&](LocalKey& k) { k.policy = policy; });
}

void LocalStore::create_alias(const std::string& name, const std::string& key_id, double now) {
  std::unique_lock lock(mu_);
  if (aliases_.count(name)) throw KmsError(400, "AlreadyExistsException", "An alias with the name " + arn_prefix_ + name + " already exists");
  if (!keys_.count(key_id)) throw_not_found("Key '" + arn_prefix_ + "key/" + key_id + "' does not exist");
  json j = {{"AliasName", name}, {"TargetKeyId", key_id}, {"CreationDate", now}};
  write_file_atomic(dir_ + "/aliases/" + hex_encode(as_bytes(name)) + ".json", as_bytes(j.dump(2)), 0600);
  aliases_[name] = LocalAlias{name, key_id, now, now};
}

void LocalStore::update_alias(const std::string& name, const std::string& key_id, double now) {
  std::unique_lock lock(mu_);
  auto it = aliases_.find(name);
  if (it == aliases_.end()) throw_not_found("Alias " + arn_prefix_ + name + " is not found.");
  if (!keys_.count(key_id)) throw_not_found("Key '" + arn_prefix_ + "key/" + key_id + "' does not exist");
  json j = {{"AliasName", name}, {"TargetKeyId", key_id}, {"CreationDate", it->second.creation_date}, {"LastUpdatedDate", now}};
  write_file_atomic(dir_ + "/aliases/" + hex_encode(as_bytes(name)) + ".json", as_bytes(j.dump(2)), 0600);
  it->second.target_key_id = key_id;
  it->second.last_updated_date = now;
}

void LocalStore::delete_alias(const std::string& name) {
  std::unique_lock lock(mu_);
  if (!aliases_.count(name)) throw_not_found("Alias " + arn_prefix_ + name + " is not found.");
  remove_file(dir_ + "/aliases/" + hex_encode(as_bytes(name)) + ".json");
  sync_dir(dir_ + "/aliases");
  aliases_.erase(name);
}

void LocalStore::delete_key(const std::string& key_id) {
  std::unique_lock lock(mu_);
  for (auto it = aliases_.begin(); it != aliases_.end();) {
    if (it->second.target_key_id != key_id) {
      ++it;
      continue;
    }
    remove_file(dir_ + "/aliases/" + hex_encode(as_bytes(it->first)) + ".json");
    it = aliases_.erase(it);
  }
  remove_file(dir_ + "/keys/" + key_id + ".json");
  keys_.erase(key_id);
  // The removals are durable before the caller answers "not found".
  sync_dir(dir_ + "/keys");
  sync_dir(dir_ + "/aliases");
}

LocalKey LocalStore::resolve(const std::string& ref) const {
  std::shared_lock lock(mu_);
  std::string id = ref;
  if (id.rfind(arn_prefix_, 0) == 0) id = id.substr(arn_prefix_.size());
  if (id.rfind("key/", 0) == 0) id = id.substr(4);
  if (id.rfind("alias/", 0) == 0) {
    auto a = aliases_.find(id);
    if (a == aliases_.end()) throw_not_found("Alias " + arn_prefix_ + id + " is not found.");
    id = a->second.target_key_id;
  } else if (!is_uuid(id)) {
    throw KmsError(400, "NotFoundException", "Invalid keyId '" + ref.substr(0, 256) + "'");
  }
  auto it = keys_.find(id);
  if (it == keys_.end()) throw_not_found("Key '" + arn_prefix_ + "key/" + id + "' does not exist");
  return it->second.clone();
}

std::vector<LocalKey> LocalStore::keys() const {
  std::shared_lock lock(mu_);
  std::vector<LocalKey> out;
  for (const auto& [id, k] : keys_) {
    LocalKey copy;
    copy.key_id = k.key_id;
    copy.arn = k.arn;
    copy.key_state = k.key_state;
    copy.deletion_date = k.deletion_date;
    out.push_back(std::move(copy));
  }
  return out;
}

std::vector<LocalAlias> LocalStore::aliases() const {
  std::shared_lock lock(mu_);
  std::vector<LocalAlias> out;
  for (const auto& [n, a] : aliases_) out.push_back(a);
  return out;
}

}  // namespace shield_nitro::kms
