// kms-local's durable key and alias store (internal).
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/kms/http_errors.h"  // random_uuid

namespace shield_nitro::kms {

struct LocalKey {
  std::string key_id;  // UUID
  std::string arn;
  double creation_date = 0;
  std::string description;
  std::string policy;  // JSON text, exactly as put
  std::string key_spec = "SYMMETRIC_DEFAULT";
  std::string key_usage = "ENCRYPT_DECRYPT";
  std::string key_state = "Enabled";  // Enabled | Disabled | PendingDeletion
  double deletion_date = 0;           // PendingDeletion only
  int pending_window_days = 0;        // PendingDeletion only
  std::map<std::string, std::string> tags;
  // SYMMETRIC_DEFAULT: 32 bytes of AES-256-GCM key; asymmetric: the private key, PKCS#8 DER.
  SecureBytes material;

  LocalKey clone() const;
};

struct LocalAlias {
  std::string name;  // alias/...
  std::string target_key_id;
  double creation_date = 0;
  double last_updated_date = 0;
};

class LocalStore {
 public:
  // arn_prefix: arn:aws:kms:REGION:ACCOUNT:. Holds an exclusive flock on DIR/kms-local.lock for
  // its life: a second store (another kms-local) on the same folder throws Error(kEnvironment).
  LocalStore(std::string dir, std::string arn_prefix);
  LocalStore(const LocalStore&) = delete;
  LocalStore& operator=(const LocalStore&) = delete;

  // Each mutation is durable (atomic write + fsync of file and folder) before it returns.
  // Stores proto under a fresh key id and ARN; proto.material must be set.
  LocalKey create_key(LocalKey proto, double now);
  void put_policy(const std::string& key_id, const std::string& policy);
  // Applies change to the stored key (under the lock) and persists it; returns the result.
  LocalKey update_key(const std::string& key_id, const std::function<void(LocalKey&)>& change);
  void create_alias(const std::string& name, const std::string& key_id, double now);
  // Points an existing alias at another key (LastUpdatedDate = now); NotFoundException when absent.
  void update_alias(const std::string& name, const std::string& key_id, double now);
  // Removes an alias; NotFoundException when absent.
  void delete_alias(const std::string& name);
  // Removes a key and the aliases that point at it, durably (files unlinked, folders fsynced).
  void delete_key(const std::string& key_id);

  // Resolves a key id, key ARN, alias name or alias ARN; throws NotFoundException.
  LocalKey resolve(const std::string& key_ref) const;
  // Every key (id, ARN, state and deletion date; no policy or material).
  std::vector<LocalKey> keys() const;
  std::vector<LocalAlias> aliases() const;
  const std::string& arn_prefix() const { return arn_prefix_; }

 private:
  void load();
  void write_key(const LocalKey& key);
  std::string dir_;
  std::string arn_prefix_;
  UniqueFd lock_fd_;  // holds the state folder's flock
  mutable std::shared_mutex mu_;
  std::map<std::string, LocalKey> keys_;
  std::map<std::string, LocalAlias> aliases_;
};

}  // namespace shield_nitro::kms
