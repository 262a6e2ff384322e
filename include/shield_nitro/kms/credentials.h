// AWS credentials and where they come from.
//
// Order (as the AWS CLI): an explicit profile -> that profile of the shared credentials file
// only; otherwise environment variables, then the shared credentials file ([default] or
// AWS_PROFILE), then IMDSv2 (role credentials on an EC2 parent). Inside an enclave there is no
// IMDS and no network: the parent pushes credentials into a PushedCredentials holder.
// Secrets live in SecureBytes and are never logged; describe() names only the source and key id.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::kms {

struct Credentials {
  std::string access_key_id;
  SecureBytes secret_access_key;
  SecureBytes session_token;  // empty for long-term keys
  int64_t expiration_s = 0;   // Unix seconds; 0 = does not expire
  std::string source;         // "environment", "profile admin", "imds role R", "pushed"

  // A deep copy (the secrets copied into fresh SecureBytes).
  Credentials clone() const;
  std::string describe() const;  // "AKID... from <source>" (never the secret)
};

// Where credentials come from (environment, profile, IMDS, static); implementations cache
// and refresh as they need. Thread-safe.
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Throws Error(kEnvironment) when this source has no credentials.
  virtual Credentials get() = 0;
  // Called after KMS answered ExpiredTokenException: drop any cache.
  virtual void invalidate() {}
};

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN.
std::optional<Credentials> credentials_from_environment();

// The shared credentials file: AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials.
std::string default_credentials_file();
// One profile of an INI credentials file (aws_access_key_id, aws_secret_access_key,
// aws_session_token). nullopt when the file or profile is missing; kFormat when malformed.
std::optional<Credentials> credentials_from_file(const std::string& path, const std::string& profile);
// Every [profile] of an INI file as profile -> key -> value ("[profile x]" names x).
using IniProfiles = std::map<std::string, std::map<std::string, std::string>>;
IniProfiles read_ini_profiles(const std::string& path);
// Reads any key of a profile (kms-local reads principal_arn this way).
std::optional<std::string> profile_value(const std::string& path, const std::string& profile, const std::string& key);

// IMDSv2: token PUT, role name, role credentials JSON with Expiration. endpoint defaults to
// AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254. Disabled when
// AWS_EC2_METADATA_DISABLED=true. Caches until 5 minutes before expiry.
class ImdsCredentials final : public CredentialsProvider {
 public:
  explicit ImdsCredentials(std::string endpoint = "", const Clock& clock = system_clock());
  Credentials get() override;
  void invalidate() override;
  // The instance's region from the identity document.
  std::string region();

 private:
  std::string fetch_token();
  std::string get_path(const std::string& token, const std::string& path);
  std::string endpoint_;
  const Clock& clock_;
  std::mutex mu_;
  std::optional<Credentials> cached_;
};

// The usual chain. profile empty: environment, file ([AWS_PROFILE or default]), IMDSv2.
class DefaultCredentialsChain final : public CredentialsProvider {
 public:
  explicit DefaultCredentialsChain(std::string profile = "", const Clock& clock = system_clock());
  Credentials get() override;
  void invalidate() override;

 private:
  std::string profile_;
  ImdsCredentials imds_;
};

// Credentials pushed in by the parent. Rejects already-expired credentials; needs_refresh()
// turns true `margin_s` before expiry so the parent re-pushes well ahead of time.
class PushedCredentials final : public CredentialsProvider {
 public:
  explicit PushedCredentials(const Clock& clock = system_clock(), int64_t margin_s = 15 * 60);
  // Throws Error(kExpired) when creds are already expired.
  void update(Credentials creds);
  Credentials get() override;  // kEnvironment when none, kExpired when expired
  bool needs_refresh() const;
  void invalidate() override;  // marks the current ones stale: needs_refresh() becomes true

 private:
  const Clock& clock_;
  int64_t margin_s_;
  mutable std::mutex mu_;
  std::optional<Credentials> creds_;
  bool stale_ = false;
};

// A fixed set (tests, benches).
class StaticCredentials final : public CredentialsProvider {
 public:
  explicit StaticCredentials(Credentials c) : creds_(std::move(c)) {}
  Credentials get() override { return creds_.clone(); }

 private:
  Credentials creds_;
};

// "2026-01-02T03:04:05Z" -> Unix seconds; kFormat on anything else.
int64_t parse_iso8601_utc(const std::string& text);

// For the std::strings a library forces a secret into (HTTP bodies, JSON values, the
// SigV4 header values): zeroes s, its spare capacity included, keeping its size.
void wipe_string(std::string& s);

}  // namespace shield_nitro::kms
