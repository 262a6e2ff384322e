#include "shield_nitro/kms/credentials.h"

#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "client_json.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/http_client.h"

namespace shield_nitro::kms {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// A view, so that trimming a line of a credentials file makes no copy of the secret on it.
std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string_view() : s.substr(b, e - b + 1);
}

// Wipes strings that held credentials however the scope ends (a parse error included).
struct WipeOnExit {
  std::string* text = nullptr;
  IniProfiles* profiles = nullptr;
  nlohmann::json* json = nullptr;
  Bytes* raw = nullptr;
  ~WipeOnExit() {
    if (text) wipe_string(*text);
    if (raw) secure_wipe(raw->data(), raw->size());
    if (profiles)
      for (auto& [name, values] : *profiles)
        for (auto& [key, value] : values) wipe_string(value);
    if (json) detail::wipe_json_strings(*json);
  }
};

std::string imds_endpoint(std::string endpoint) {
  if (endpoint.empty()) endpoint = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (endpoint.empty()) endpoint = "http://169.254.169.254";
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint;
}

TransportOptions imds_transport() {
  TransportOptions t;
  t.timeout_ms = 2000;
  t.connect_timeout_ms = 1000;
  return t;
}

}  // namespace

void wipe_string(std::string& s) {
  size_t n = s.size();
  s.resize(s.capacity());  // never reallocates; makes the spare bytes ours to write
  secure_wipe(s.data(), s.size());
  s.resize(n);
}

void detail::wipe_json_strings(nlohmann::json& j) {
  if (j.is_string()) wipe_string(j.get_ref<std::string&>());
  else if (j.is_structured())
    for (auto& item : j) detail::wipe_json_strings(item);
}

Credentials Credentials::clone() const {
  return Credentials{access_key_id, secret_access_key.clone(), session_token.clone(), expiration_s, source};
}

std::string Credentials::describe() const {
  std::string s = access_key_id + " from " + source;
  if (!session_token.empty()) s += " (temporary)";
  return s;
}

int64_t parse_iso8601_utc(const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) throw Error(Errc::kFormat, "malformed ISO-8601 time '" + text + "'");
  std::string rest;
  std::getline(in, rest);
  if (rest != "Z" && rest != "+00:00" && rest.rfind(".", 0) != 0)
    throw Error(Errc::kFormat, "ISO-8601 time '" + text + "' is not UTC");
  return static_cast<int64_t>(timegm(&tm));
}

std::optional<Credentials> credentials_from_environment() {
  // Straight from the environment into SecureBytes (getenv's storage is the process's own).
  auto secret_env = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? SecureBytes(as_bytes(std::string_view(v))) : SecureBytes();
  };
  std::string akid = env("AWS_ACCESS_KEY_ID");
  SecureBytes secret = secret_env("AWS_SECRET_ACCESS_KEY");
  if (akid.empty() || secret.empty()) return std::nullopt;
  return Credentials{akid, std::move(secret), secret_env("AWS_SESSION_TOKEN"), 0, "environment"};
}

std::string default_credentials_file() {
  std::string path = env("AWS_SHARED_CREDENTIALS_FILE");
  if (!path.empty()) return path;
  std::string home = env("HOME");
  return home.empty() ? "" : home + "/.aws/credentials";
}

namespace {

// Parses INI text into profiles with views of the text, so each value is copied once, into
// the map (whose caller wipes it when it may hold a secret).
IniProfiles parse_ini(const std::string& path, std::string_view text) {
  IniProfiles profiles;
  std::string section;
  int lineno = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++lineno;
    std::string_view t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      if (t.back() != ']') throw Error(Errc::kFormat, path + ":" + std::to_string(lineno) + ": malformed section header");
      std::string_view name = trim(t.substr(1, t.size() - 2));
      if (name.rfind("profile ", 0) == 0) name = trim(name.substr(8));
      section = std::string(name);
      profiles[section];
      continue;
    }
    auto eq = t.find('=');
    if (eq == std::string_view::npos || section.empty())
      throw Error(Errc::kFormat, path + ":" + std::to_string(lineno) + ": expected key = value inside a [profile]");
    profiles[section][std::string(trim(t.substr(0, eq)))] = std::string(trim(t.substr(eq + 1)));
  }
  return profiles;
}

}  // namespace

IniProfiles read_ini_profiles(const std::string& path) {
  Bytes raw = read_file(path);  // read at its size in one buffer: no partial copies left behind
  WipeOnExit wipe{.raw = &raw};  // the file holds secret keys
  return parse_ini(path, std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
}

std::optional<std::string> profile_value(const std::string& path, const std::string& profile, const std::string& key) {
  if (!file_exists(path)) return std::nullopt;
  IniProfiles all = read_ini_profiles(path);
  WipeOnExit wipe{.profiles = &all};  // the other values of the file may be secrets
  auto it = all.find(profile);
  if (it == all.end() || !it->second.count(key)) return std::nullopt;
  return it->second.at(key);
}

std::optional<Credentials> credentials_from_file(const std::string& path, const std::string& profile) {
  if (!file_exists(path)) return std::nullopt;
  IniProfiles all = read_ini_profiles(path);
  WipeOnExit wipe{.profiles = &all};
  auto it = all.find(profile);
  if (it == all.end()) return std::nullopt;
  auto& v = it->second;
  if (v["aws_access_key_id"].empty() || v["aws_secret_access_key"].empty())
    throw Error(Errc::kFormat, path + ": profile '" + profile + "' lacks aws_access_key_id or aws_secret_access_key");
  return Credentials{v["aws_access_key_id"], SecureBytes(as_bytes(v["aws_secret_access_key"])),
                     SecureBytes(as_bytes(v["aws_session_token"])), 0, "profile " + profile};
}

// ---- IMDSv2 ----

ImdsCredentials::ImdsCredentials(std::string endpoint, const Clock& clock)
    : endpoint_(imds_endpoint(std::move(endpoint))), clock_(clock) {}

std::string ImdsCredentials::fetch_token() {
  HttpResponse r = http_request("PUT", endpoint_ + "/latest/api/token",
                                {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}}, {}, imds_transport());
  if (r.status != 200 || r.body.empty())
    throw Error(Errc::kEnvironment, "IMDSv2 token request answered HTTP " + std::to_string(r.status));
  return r.body;
}

std::string ImdsCredentials::get_path(const std::string& token, const std::string& path) {
  HttpResponse r = http_request("GET", endpoint_ + path, {{"X-aws-ec2-metadata-token", token}}, {}, imds_transport());
  if (r.status != 200) throw Error(Errc::kEnvironment, "IMDS GET " + path + " answered HTTP " + std::to_string(r.status));
  return r.body;
}

Credentials ImdsCredentials::get() {
  std::lock_guard lock(mu_);
  if (cached_ && cached_->expiration_s - clock_.now_s() > 5 * 60) return cached_->clone();
  if (env("AWS_EC2_METADATA_DISABLED") == "true") throw Error(Errc::kEnvironment, "IMDS is disabled (AWS_EC2_METADATA_DISABLED)");
  std::string token = fetch_token();
  std::string role(trim(get_path(token, "/latest/meta-data/iam/security-credentials/")));
  if (auto nl = role.find('\n'); nl != std::string::npos) role = role.substr(0, nl);
  if (role.empty()) throw Error(Errc::kEnvironment, "IMDS: the instance has no IAM role attached");
  // The transport's body and nlohmann::json need std::strings: both are wiped when this returns,
  // and the secrets are read from them by reference, into SecureBytes.
  std::string body = get_path(token, "/latest/meta-data/iam/security-credentials/" + role);
  auto j = nlohmann::json::parse(body, nullptr, false);
  WipeOnExit wipe{.text = &body, .json = &j};
  if (j.is_discarded() || !j.is_object() || j.value("Code", "") != "Success" || !j["AccessKeyId"].is_string() ||
      !j["SecretAccessKey"].is_string() || !j["Expiration"].is_string())
    throw Error(Errc::kEnvironment, "IMDS: role '" + role + "' credentials document is malformed or not Success");
  auto secret = [&](const char* name) {
    const nlohmann::json& v = j[name];
    return v.is_string() ? SecureBytes(as_bytes(v.get_ref<const std::string&>())) : SecureBytes();
  };
  Credentials c{j["AccessKeyId"], secret("SecretAccessKey"), secret("Token"), parse_iso8601_utc(j["Expiration"]),
                "imds role " + role};
  cached_ = c.clone();
  return c;
}

void ImdsCredentials::invalidate() {
  std::lock_guard lock(mu_);
  cached_.reset();
}

std::string ImdsCredentials::region() {
  auto j = nlohmann::json::parse(get_path(fetch_token(), "/latest/dynamic/instance-identity/document"), nullptr, false);
  if (j.is_discarded() || !j.contains("region") || !j["region"].is_string())
    throw Error(Errc::kEnvironment, "IMDS identity document has no region");
  return j["region"];
}

// ---- chain ----

DefaultCredentialsChain::DefaultCredentialsChain(std::string profile, const Clock& clock)
    : profile_(std::move(profile)), imds_("", clock) {}

Credentials DefaultCredentialsChain::get() {
  std::string file = default_credentials_file();
  if (!profile_.empty()) {
    auto c = credentials_from_file(file, profile_);
    if (!c) throw Error(Errc::kEnvironment, "profile '" + profile_ + "' not found in " + (file.empty() ? "~/.aws/credentials" : file));
    return std::move(*c);
  }
  if (auto c = credentials_from_environment()) return std::move(*c);
  std::string profile = env("AWS_PROFILE").empty() ? "default" : env("AWS_PROFILE");
  if (!file.empty())
    if (auto c = credentials_from_file(file, profile)) return std::move(*c);
  try {
    return imds_.get();
  } catch (const Error& e) {
    throw Error(Errc::kEnvironment,
                "no AWS credentials: none in the environment, no profile '" + profile + "' in " + file + ", and " + e.what());
  }
}

void DefaultCredentialsChain::invalidate() { imds_.invalidate(); }

// ---- pushed ----

PushedCredentials::PushedCredentials(const Clock& clock, int64_t margin_s) : clock_(clock), margin_s_(margin_s) {}

void PushedCredentials::update(Credentials creds) {
  if (creds.access_key_id.empty() || creds.secret_access_key.empty())
    throw Error(Errc::kFormat, "pushed credentials lack an access key id or secret");
  if (creds.expiration_s != 0 && creds.expiration_s <= clock_.now_s())
    throw Error(Errc::kExpired, "pushed credentials for " + creds.access_key_id + " are already expired");
  std::lock_guard lock(mu_);
  creds.source = "pushed";
  creds_ = std::move(creds);
  stale_ = false;
}

Credentials PushedCredentials::get() {
  std::lock_guard lock(mu_);
  if (!creds_) throw Error(Errc::kEnvironment, "no credentials pushed yet (the parent pushes them over vsock)");
  if (creds_->expiration_s != 0 && creds_->expiration_s <= clock_.now_s())
    throw Error(Errc::kExpired, "pushed credentials for " + creds_->access_key_id + " expired; waiting for a refresh");
  return creds_->clone();
}

bool PushedCredentials::needs_refresh() const {
  std::lock_guard lock(mu_);
  return !creds_ || stale_ || (creds_->expiration_s != 0 && creds_->expiration_s - clock_.now_s() < margin_s_);
}

void PushedCredentials::invalidate() {
  std::lock_guard lock(mu_);
  stale_ = true;
}

}  // namespace shield_nitro::kms
