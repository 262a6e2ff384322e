#include "shield_nitro/kms_endpoint/endpoint.h"

#include <openssl/crypto.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/kms/http_errors.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms/sigv4.h"
#include "shield_nitro/net/http_server.h"

namespace shield_nitro::kms_endpoint {

namespace {

using json = nlohmann::json;
using net::HttpServerRequest;
using net::HttpServerResponse;

// A string whose characters are wiped when it goes (plaintexts in base64, request bodies).
struct WipedString {
  std::string s;
  WipedString() = default;
  explicit WipedString(std::string v) : s(std::move(v)) {}
  WipedString(const WipedString&) = delete;
  WipedString& operator=(const WipedString&) = delete;
  ~WipedString() { kms::wipe_string(s); }
};

// Wipes every string inside a JSON value (a request or answer carrying a secret).
void wipe_json(json& j) {
  if (j.is_string()) {
    kms::wipe_string(j.get_ref<std::string&>());
  } else if (j.is_structured()) {
    for (auto& v : j) wipe_json(v);
  }
}

// Base32 (RFC 4648 alphabet, no padding) of random bytes: AWS-looking access key ids.
std::string random_base32(size_t chars) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  Bytes b = os_random().bytes(chars);
  std::string out;
  for (uint8_t v : b) out += kAlphabet[v & 31];
  return out;
}

// One set of local credentials the app signs with.
struct LocalCredentials {
  std::string access_key_id;
  SecureBytes secret;  // the secret access key's characters
  SecureBytes token;   // the session token's characters
  int64_t issued_s = 0;
  int64_t expires_s = 0;
};

[[noreturn]] void validation(const std::string& message) {
  throw kms::KmsError(400, "ValidationException", message);
}
[[noreturn]] void serialization(const std::string& message) {
  throw kms::KmsError(400, "SerializationException", message);
}

const json& field(const json& body, const char* name) {
  static const json kNull;
  auto it = body.find(name);
  return it == body.end() ? kNull : *it;
}

std::string string_field(const json& body, const char* name, bool required) {
  const json& v = field(body, name);
  if (v.is_null()) {
    if (required) validation(std::string("1 validation error detected: Value null at '") + name +
                             "' failed to satisfy constraint: Member must not be null");
    return "";
  }
  if (!v.is_string()) serialization(std::string("Start of structure or map found where not expected: ") + name);
  return v.get<std::string>();
}

Bytes blob_field(const json& body, const char* name, bool required) {
  std::string text = string_field(body, name, required);
  if (text.empty()) return {};
  try {
    return base64_decode(text);
  } catch (const Error&) {
    serialization(std::string("'") + name + "' is not valid base64");
  }
}

std::optional<int> int_field(const json& body, const char* name) {
  const json& v = field(body, name);
  if (v.is_null()) return std::nullopt;
  if (!v.is_number_integer()) serialization(std::string("NUMBER_VALUE cannot be converted to Integer: ") + name);
  auto n = v.get<int64_t>();
  if (n < 1 || n > 1024)
    validation(std::string("1 validation error detected: Value '") + std::to_string(n) + "' at '" + name +
               "' failed to satisfy constraint: Member must have value between 1 and 1024");
  return static_cast<int>(n);
}

kms::EncryptionContext context_field(const json& body) {
  const json& v = field(body, "EncryptionContext");
  kms::EncryptionContext out;
  if (v.is_null()) return out;
  if (!v.is_object()) serialization("EncryptionContext must be a map of strings");
  for (const auto& [k, val] : v.items()) {
    if (!val.is_string()) serialization("EncryptionContext must be a map of strings");
    out[k] = val.get<std::string>();
  }
  return out;
}

// The typed client carries these fields of op; anything else is refused, never dropped (a
// GrantTokens or DryRun silently ignored would change what the app asked for).
void check_fields(const json& body, const std::string& op, std::initializer_list<const char*> known) {
  for (const auto& [k, v] : body.items()) {
    bool ok = false;
    for (const char* name : known) ok = ok || k == name;
    if (!ok)
      validation("the enclave's KMS endpoint does not support '" + k.substr(0, 64) + "' on " + op +
                 " (it adds the attestation Recipient itself)");
  }
}

std::string b64(ByteView v) { return base64_encode(v); }

}  // namespace

struct KmsEndpoint::State {
  EndpointOptions opt;
  const Clock& clock;
  std::unique_ptr<kms::KmsClient> client;
  kms::Recipient recipient;
  std::unique_ptr<net::HttpServer> server;

  mutable std::mutex mu;
  SecureBytes auth_token;
  std::deque<LocalCredentials> creds;  // newest last; at most two (current and the one before)

  std::atomic<uint64_t> credentials_served{0}, credentials_refused{0}, kms_calls{0}, attested_calls{0},
      kms_refused{0}, kms_errors{0};

  explicit State(EndpointOptions o) : opt(std::move(o)), clock(opt.clock ? *opt.clock : system_clock()) {}

  // ---- local credentials ----

  LocalCredentials mint() const {
    LocalCredentials c;
    c.access_key_id = "ASIA" + random_base32(16);
    std::string secret = base64_encode(os_random().bytes(30));  // 40 characters
    std::string token = base64_encode(os_random().bytes(96));
    c.secret = SecureBytes(as_bytes(secret));
    c.token = SecureBytes(as_bytes(token));
    kms::wipe_string(secret);
    kms::wipe_string(token);
    c.issued_s = clock.now_s();
    c.expires_s = c.issued_s + opt.local_credentials_lifetime_s;
    return c;
  }

  // The credentials to hand out now: renewed once half their lifetime has passed (SDKs refresh
  // minutes before Expiration; the previous set stays valid until its own expiry).
  const LocalCredentials& current_locked() {
    int64_t now = clock.now_s();
    if (creds.empty() || now >= creds.back().issued_s + opt.local_credentials_lifetime_s / 2) {
      creds.push_back(mint());
      while (creds.size() > 2) creds.pop_front();
    }
    return creds.back();
  }

  std::optional<kms::VerifierSecret> lookup(const std::string& access_key_id) const {
    std::lock_guard lock(mu);
    for (const auto& c : creds) {
      if (c.access_key_id != access_key_id) continue;
      if (clock.now_s() >= c.expires_s)
        throw kms::KmsError(400, "ExpiredTokenException", "The security token included in the request is expired");
      return kms::VerifierSecret{c.secret.clone(), std::string(reinterpret_cast<const char*>(c.token.data()), c.token.size())};
    }
    return std::nullopt;
  }

  HttpServerResponse credentials(const HttpServerRequest& req) {
    auto refuse = [&](int status, const std::string& code, const std::string& message) {
      ++credentials_refused;
      log_warn("kms endpoint: credentials request refused: " + message);
      return HttpServerResponse{status, {{"Content-Type", "application/json"}}, json{{"code", code}, {"message", message}}.dump()};
    };
    if (req.method != "GET") return refuse(405, "MethodNotAllowed", "the credentials endpoint answers GET only");
    auto given = net::find_header(req.headers, "authorization");
    if (!given) return refuse(401, "Unauthorized", "no Authorization header (AWS_CONTAINER_AUTHORIZATION_TOKEN)");
    std::lock_guard lock(mu);
    if (!ct_equal(as_bytes(*given), auth_token.view()))
      return refuse(403, "Forbidden", "the Authorization token is not this endpoint's");
    const LocalCredentials& c = current_locked();
    json body = {{"AccessKeyId", c.access_key_id},
                 {"SecretAccessKey", std::string(reinterpret_cast<const char*>(c.secret.data()), c.secret.size())},
                 {"Token", std::string(reinterpret_cast<const char*>(c.token.data()), c.token.size())},
                 {"Expiration", format_utc(c.expires_s, "%Y-%m-%dT%H:%M:%SZ")}};
    HttpServerResponse resp{200, {{"Content-Type", "application/json"}}, body.dump()};
    wipe_json(body);
    ++credentials_served;
    return resp;
  }

  // ---- KMS ----

  HttpServerResponse kms_call(const HttpServerRequest& req) {
    std::string op = "?";
    try {
      if (req.method != "POST" || req.path != "/")
        throw kms::KmsError(404, "UnknownOperationException", "the enclave's KMS endpoint accepts POST / only");
      std::string target = net::find_header(req.headers, "x-amz-target").value_or("");
      if (target.rfind("TrentService.", 0) == 0) op = target.substr(13, 64);
      kms::SignableRequest signable{req.method, req.path, req.query, req.headers, as_bytes(req.body)};
      kms::VerifyOptions vo;
      vo.region = opt.region;
      vo.now_s = clock.now_s();
      kms::sigv4_verify(signable, [this](const std::string& id) { return lookup(id); }, vo);
      if (target.rfind("TrentService.", 0) != 0)
        throw kms::KmsError(400, "UnknownOperationException", "X-Amz-Target must be TrentService.<Operation>");
      op = target.substr(13);
      json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
      if (body.is_discarded() || !body.is_object()) serialization("The request body is not a JSON object");
      WipedString answer(dispatch(op, body));
      wipe_json(body);
      return {200, {{"Content-Type", "application/x-amz-json-1.1"}}, answer.s};
    } catch (const kms::KmsError& e) {
      // Refused here (no request id: the signature, the protocol) or by KMS (its request id).
      (e.request_id().empty() ? kms_refused : kms_errors)++;
      log_info("kms endpoint: " + op + ": " + e.type() + ": " + e.aws_message());
      HttpServerResponse r = kms::kms_error_response(e);
      if (!e.request_id().empty()) r.headers.emplace_back("x-amzn-RequestId", e.request_id());
      return r;
    } catch (const Error& e) {
      if (e.code() == Errc::kUsage) {
        ++kms_refused;
        return kms::kms_error_response(400, "ValidationException", e.what());
      }
      ++kms_errors;
      log_warn("kms endpoint: " + op + " failed: " + e.what());
      return kms::kms_error_response(500, "KMSInternalException", std::string("the enclave's KMS endpoint: ") + e.what());
    }
  }

  // The verified call, with the role credentials. Returns KMS's answer (JSON text).
  std::string dispatch(const std::string& op, const json& body) {
    static const std::set<std::string> kAttested = {"Decrypt", "GenerateDataKey", "GenerateDataKeyPair",
                                                    "DeriveSharedSecret", "GenerateRandom"};
    ++kms_calls;
    if (!kAttested.count(op) || body.contains("Recipient")) return forward(op, body);
    ++attested_calls;
    if (op == "Decrypt") {
      check_fields(body, op, {"CiphertextBlob", "EncryptionContext", "KeyId", "EncryptionAlgorithm"});
      std::string algorithm = string_field(body, "EncryptionAlgorithm", false);
      if (!algorithm.empty() && algorithm != "SYMMETRIC_DEFAULT")
        validation("the enclave's KMS endpoint supports EncryptionAlgorithm SYMMETRIC_DEFAULT only");
      kms::DecryptResult r = client->decrypt(blob_field(body, "CiphertextBlob", true), context_field(body),
                                             string_field(body, "KeyId", false), &recipient);
      WipedString plain(b64(r.plaintext.view()));
      return json{{"KeyId", r.key_id}, {"Plaintext", plain.s}, {"EncryptionAlgorithm", r.encryption_algorithm}}.dump();
    }
    if (op == "GenerateDataKey") {
      check_fields(body, op, {"KeyId", "KeySpec", "NumberOfBytes", "EncryptionContext"});
      std::string spec = string_field(body, "KeySpec", false);
      auto n = int_field(body, "NumberOfBytes");
      if (spec.empty() == !n) validation("Please specify either number of bytes or key spec.");
      if (!spec.empty() && spec != "AES_256" && spec != "AES_128")
        validation("1 validation error detected: Value '" + spec.substr(0, 32) +
                   "' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]");
      int bytes = n ? *n : spec == "AES_128" ? 16 : 32;
      kms::DataKeyResult r = client->generate_data_key(string_field(body, "KeyId", true), bytes, context_field(body), &recipient);
      WipedString plain(b64(r.plaintext.view()));
      return json{{"KeyId", r.key_id}, {"CiphertextBlob", b64(r.ciphertext_blob)}, {"Plaintext", plain.s}}.dump();
    }
    if (op == "GenerateDataKeyPair") {
      check_fields(body, op, {"KeyId", "KeyPairSpec", "EncryptionContext"});
      kms::DataKeyPairResult r = client->generate_data_key_pair(
          string_field(body, "KeyId", true), string_field(body, "KeyPairSpec", true), context_field(body), &recipient);
      WipedString priv(b64(r.private_key.view()));
      return json{{"KeyId", r.key_id},
                  {"KeyPairSpec", r.key_pair_spec},
                  {"PublicKey", b64(r.public_key)},
                  {"PrivateKeyCiphertextBlob", b64(r.private_key_ciphertext_blob)},
                  {"PrivateKeyPlaintext", priv.s}}
          .dump();
    }
    if (op == "DeriveSharedSecret") {
      check_fields(body, op, {"KeyId", "KeyAgreementAlgorithm", "PublicKey"});
      kms::SharedSecretResult r =
          client->derive_shared_secret(string_field(body, "KeyId", true), blob_field(body, "PublicKey", true), &recipient,
                                       string_field(body, "KeyAgreementAlgorithm", true));
      WipedString secret(b64(r.shared_secret.view()));
      return json{{"KeyId", r.key_id}, {"KeyAgreementAlgorithm", r.key_agreement_algorithm}, {"SharedSecret", secret.s}}.dump();
    }
    // GenerateRandom
    check_fields(body, op, {"NumberOfBytes"});
    auto n = int_field(body, "NumberOfBytes");
    if (!n) validation("1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: Member must not be null");
    SecureBytes random = client->generate_random(*n, &recipient);
    WipedString plain(b64(random.view()));
    return json{{"Plaintext", plain.s}}.dump();
  }

  // Any other operation, or one carrying the app's own Recipient: re-signed, unchanged.
  std::string forward(const std::string& op, const json& body) {
    json answer = client->call(op, body);
    std::string text = answer.dump(-1, ' ', false, json::error_handler_t::replace);
    wipe_json(answer);  // e.g. a Plaintext the app asked for without a Recipient
    return text;
  }
};

KmsEndpoint::KmsEndpoint(EndpointOptions options) {
  auto missing = [](const char* what) { throw Error(Errc::kUsage, std::string("kms endpoint: ") + what + " is required"); };
  if (options.region.empty()) missing("a region");
  if (!options.role_credentials) missing("a role credentials provider");
  if (!options.attestation) missing("an attestation source");
  if (!options.recipient_keys) missing("the enclave's recipient key pair");
  if (options.port < 0 || options.port > 65535) throw Error(Errc::kUsage, "kms endpoint: port out of range");
  if (options.local_credentials_lifetime_s < 120)
    throw Error(Errc::kUsage, "kms endpoint: local credentials must live at least 120 s");
  state_ = std::make_unique<State>(std::move(options));
  State& s = *state_;
  s.opt.kms.region = s.opt.region;
  s.client = std::make_unique<kms::KmsClient>(s.opt.kms, s.opt.role_credentials, s.clock);
  s.recipient = {s.opt.attestation, s.opt.recipient_keys};
}

KmsEndpoint::~KmsEndpoint() { stop(); }

AppEnvironment KmsEndpoint::start() {
  State& s = *state_;
  if (s.server) throw Error(Errc::kUsage, "kms endpoint: already started");
  std::string token;
  {
    std::lock_guard lock(s.mu);
    token = hex_encode(os_random().bytes(32));
    s.auth_token = SecureBytes(as_bytes(token));
    s.creds.clear();
    s.current_locked();
  }
  net::HttpServerOptions so;
  so.listen = "127.0.0.1:" + std::to_string(s.opt.port);
  so.workers = s.opt.workers;
  so.name = "kms endpoint";
  // KMS requests are small (a 4 KiB Encrypt plaintext, a 32 KiB key policy); the buffers that
  // carried plaintexts and the local credentials are wiped.
  so.limits.max_body_bytes = 64 * 1024;
  so.wipe_buffers = true;
  so = kms::kms_http_options(std::move(so));
  s.server = std::make_unique<net::HttpServer>(so, [&s](const HttpServerRequest& r) {
    if (r.path == kCredentialsPath) return s.credentials(r);
    return s.kms_call(r);
  });
  try {
    s.server->start();
  } catch (...) {
    s.server.reset();
    kms::wipe_string(token);
    throw;
  }
  std::string url = s.server->url();
  log_info("kms endpoint: serving the app at " + url + " (region " + s.opt.region + ", KMS at " + s.client->url() + ")");
  AppEnvironment env = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url + kCredentialsPath},
                        {"AWS_CONTAINER_AUTHORIZATION_TOKEN", token},
                        {"AWS_ENDPOINT_URL_KMS", url},
                        {"AWS_REGION", s.opt.region},
                        {"AWS_DEFAULT_REGION", s.opt.region},
                        {"AWS_EC2_METADATA_DISABLED", "true"}};
  kms::wipe_string(token);
  return env;
}

void KmsEndpoint::stop() {
  if (!state_ || !state_->server) return;
  state_->server->stop();
  state_->server.reset();
  std::lock_guard lock(state_->mu);
  state_->auth_token = SecureBytes();
  state_->creds.clear();
}

int KmsEndpoint::port() const { return state_->server ? state_->server->port() : 0; }

std::string KmsEndpoint::url() const { return state_->server ? state_->server->url() : ""; }

EndpointStats KmsEndpoint::stats() const {
  const State& s = *state_;
  return {s.credentials_served, s.credentials_refused, s.kms_calls, s.attested_calls, s.kms_refused, s.kms_errors};
}

}  // namespace shield_nitro::kms_endpoint
