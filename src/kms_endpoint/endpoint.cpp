#include "shield_nitro/kms_endpoint/endpoint.h"

#include <openssl/crypto.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/kms/http_errors.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms/sigv4.h"
#include "shield_nitro/net/http_server.h"
#include "request.h"

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
      if (body.is_discarded() || !body.is_object())
        throw kms::KmsError(400, "SerializationException", "The request body is not a JSON object");
      WipedString answer(dispatch(op, body, req.body.empty() ? std::string("{}") : req.body));
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

  // The verified call, with the role credentials: body parsed, text as the app sent it.
  // Returns KMS's answer (JSON text).
  std::string dispatch(const std::string& op, const json& body, const std::string& text) {
    ++kms_calls;
    if (!detail::is_attested(op) || body.contains("Recipient")) return forward(op, text);
    detail::AttestedRequest q = detail::parse_attested_request(op, body);
    ++attested_calls;
    if (op == "Decrypt") {
      kms::DecryptResult r = client->decrypt(q.blob, q.context, q.key_id, &recipient);
      WipedString plain(b64(r.plaintext.view()));
      return json{{"KeyId", r.key_id}, {"Plaintext", plain.s}, {"EncryptionAlgorithm", r.encryption_algorithm}}.dump();
    }
    if (op == "GenerateDataKey") {
      kms::DataKeyResult r = client->generate_data_key(q.key_id, q.number_of_bytes, q.context, &recipient);
      WipedString plain(b64(r.plaintext.view()));
      return json{{"KeyId", r.key_id}, {"CiphertextBlob", b64(r.ciphertext_blob)}, {"Plaintext", plain.s}}.dump();
    }
    if (op == "GenerateDataKeyPair") {
      kms::DataKeyPairResult r = client->generate_data_key_pair(q.key_id, q.spec, q.context, &recipient);
      WipedString priv(b64(r.private_key.view()));
      return json{{"KeyId", r.key_id},
                  {"KeyPairSpec", r.key_pair_spec},
                  {"PublicKey", b64(r.public_key)},
                  {"PrivateKeyCiphertextBlob", b64(r.private_key_ciphertext_blob)},
                  {"PrivateKeyPlaintext", priv.s}}
          .dump();
    }
    if (op == "DeriveSharedSecret") {
      kms::SharedSecretResult r = client->derive_shared_secret(q.key_id, q.blob, &recipient, q.spec);
      WipedString secret(b64(r.shared_secret.view()));
      return json{{"KeyId", r.key_id}, {"KeyAgreementAlgorithm", r.key_agreement_algorithm}, {"SharedSecret", secret.s}}.dump();
    }
    SecureBytes random = client->generate_random(q.number_of_bytes, &recipient);  // GenerateRandom
    WipedString plain(b64(random.view()));
    return json{{"Plaintext", plain.s}}.dump();
  }

  // Any other operation, or one carrying the app's own Recipient: re-signed, the app's bytes
  // sent unchanged, KMS's answer returned as it came (wiped by the caller once sent: it may
  // hold a Plaintext the app asked for without a Recipient).
  std::string forward(const std::string& op, const std::string& text) { return client->call_text(op, text); }
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
