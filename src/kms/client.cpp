#include "shield_nitro/kms/client.h"

#include <chrono>
#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms/sigv4.h"
#include "client_json.h"

namespace shield_nitro::kms {

namespace detail {

Bytes b64_field(const nlohmann::json& j, const char* name, const std::string& op) {
  if (!j.contains(name) || !j[name].is_string())
    throw Error(Errc::kFormat, "KMS " + op + ": response lacks " + name);
  try {
    return base64_decode(j[name].get<std::string>());
  } catch (const Error& e) {
    throw Error(Errc::kFormat, "KMS " + op + ": " + name + " is not base64: " + e.what());
  }
}

std::string str_field(const nlohmann::json& j, const char* name) {
  return j.contains(name) && j[name].is_string() ? j[name].get<std::string>() : "";
}

nlohmann::json context_json(const EncryptionContext& ctx) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : ctx) j[k] = v;
  return j;
}

SecureBytes take_secret(nlohmann::json& j, const char* name, const std::string& op) {
  Bytes raw;
  try {
    raw = b64_field(j, name, op);
  } catch (...) {
    if (j.contains(name)) wipe_json_strings(j[name]);
    throw;
  }
  SecureBytes out(raw);
  secure_wipe(raw.data(), raw.size());
  wipe_json_strings(j[name]);
  return out;
}

std::vector<std::string> text_list(const nlohmann::json& j, const char* name) {
  std::vector<std::string> out;
  if (j.contains(name) && j[name].is_array())
    for (const auto& v : j[name])
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

void refuse_clear_secret(nlohmann::json& j, const char* name, const std::string& op) {
  if (!j.contains(name) || j[name].is_null()) return;
  wipe_json_strings(j[name]);
  throw Error(Errc::kVerify, "KMS " + op + ": response carries " + name +
                                 " in clear where it must not (protocol violation; not used)");
}

}  // namespace detail

namespace {

using detail::b64_field;
using detail::context_json;
using detail::str_field;
using detail::wipe_json_strings;

std::string partition_suffix(const std::string& region) {
  const std::pair<const char*, const char*> table[] = {
      {"cn-", "amazonaws.com.cn"}, {"eusc-", "amazonaws.eu"},      {"us-isob-", "sc2s.sgov.gov"},
      {"us-isof-", "csp.hci.ic.gov"}, {"us-iso-", "c2s.ic.gov"}, {"eu-isoe-", "cloud.adc-e.uk"}};
  for (auto [prefix, suffix] : table)
    if (region.rfind(prefix, 0) == 0) return suffix;
  return "amazonaws.com";
}

// Host header value for a URL: host, plus ":port" when the URL names one.
std::string host_of(const std::string& url) {
  try {
    return parse_http_url(url).host_header();
  } catch (const Error& e) {
    throw Error(Errc::kUsage, "malformed KMS endpoint URL: " + std::string(e.what()));
  }
}

// Runs f when the scope ends, however it ends: wipes the strings a secret had to pass through.
template <class F>
struct OnExit {
  F f;
  ~OnExit() { f(); }
};
template <class F>
OnExit(F) -> OnExit<F>;

// One JSON object and nothing else, checked without building it (no copy of a secret in it).
bool is_json_object(const std::string& text) {
  size_t i = text.find_first_not_of(" \t\r\n");
  return i != std::string::npos && text[i] == '{' && nlohmann::json::accept(text);
}

void wipe_values(HeaderList& headers) {
  for (auto& [name, value] : headers) wipe_string(value);
}

void add_key_size(nlohmann::json& req, int n) {
  if (n == 32) req["KeySpec"] = "AES_256";
  else if (n == 16) req["KeySpec"] = "AES_128";
  else req["NumberOfBytes"] = n;
}

KmsError error_from_response(const HttpResponse& r, const std::string& op) {
  std::string request_id = find_header(r.headers, "x-amzn-RequestId").value_or("");
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  std::string type, message;
  if (j.is_object()) {
    type = normalize_aws_type(str_field(j, "__type"));
    message = str_field(j, "message");
    if (message.empty()) message = str_field(j, "Message");
  }
  if (type.empty()) type = find_header(r.headers, "x-amzn-ErrorType").value_or("");
  type = normalize_aws_type(type);
  // A body that is not KMS's JSON (a proxy's page, say) is shown; a JSON error without a
  // message gets the meaning of its type instead (KmsError).
  if (message.empty() && !j.is_object() && !r.body.empty()) message = "body: " + r.body.substr(0, 200);
  return KmsError(static_cast<int>(r.status), type, message, request_id, op);
}

}  // namespace

std::string kms_endpoint_for_region(const std::string& region, bool fips) {
  if (region.empty()) throw Error(Errc::kUsage, "no AWS region: pass --region or set AWS_REGION");
  for (char c : region)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-'))
      throw Error(Errc::kUsage, "malformed region '" + region + "'");
  return std::string(fips ? "kms-fips." : "kms.") + region + "." + partition_suffix(region);
}

KmsClient::KmsClient(KmsClientOptions options, std::shared_ptr<CredentialsProvider> credentials, const Clock& clock)
    : options_(std::move(options)), credentials_(std::move(credentials)), clock_(clock) {
  check_via(options_.transport.via);
  url_ = options_.endpoint.empty() ? "https://" + kms_endpoint_for_region(options_.region, options_.fips) + "/"
                                   : options_.endpoint;
  if (url_.rfind("https://", 0) != 0 && url_.rfind("http://", 0) != 0)
    throw Error(Errc::kUsage, "KMS endpoint must be an http(s):// URL, got '" + url_ + "'");
  host_ = host_of(url_);
}

std::string KmsClient::call_once(const std::string& op, const std::string& body) {
  Credentials creds = credentials_->get();
  SignableRequest req{"POST", "/", "", {{"Host", host_}, {"Content-Type", "application/x-amz-json-1.1"},
                                        {"X-Amz-Target", "TrentService." + op}}, as_bytes(body)};
  // The secret key stays in SecureBytes (sigv4 takes a view). The session token must become
  // a header, and SigV4 and the transport take headers as std::strings: every string it lands in
  // (the params, the signed canonical request, the header lists) is wiped when this returns.
  SigV4Params p{creds.access_key_id, creds.secret_access_key.view(), to_string(creds.session_token.view()),
                options_.region, "kms", amz_date(clock_.now_s())};
  SigV4Result sig;
  HeaderList headers;
  HttpResponse r;  // a Plaintext (no Recipient) comes back in its body: handed on, or wiped
  OnExit wipe{[&] {
    wipe_string(p.session_token);
    wipe_string(sig.canonical_request);
    wipe_values(sig.added_headers);
    wipe_values(headers);
    wipe_string(r.body);
  }};
  sig = sigv4_sign(req, p);
  headers = req.headers;
  for (auto& h : sig.added_headers) headers.push_back(h);
  headers.emplace_back("Authorization", sig.authorization);
  headers.emplace_back("User-Agent", "shield-nitro/0.1");
  r = http_request("POST", url_, headers, as_bytes(body), options_.transport);
  if (r.status < 200 || r.status >= 300) throw error_from_response(r, op);
  if (!is_json_object(r.body))
    throw Error(Errc::kFormat, "KMS " + op + ": HTTP " + std::to_string(r.status) + " with a body that is not a JSON object");
  return std::move(r.body);  // moved out before the wipe runs: the caller owns the only copy
}

std::string KmsClient::call_text(const std::string& op, const std::string& body) {
  if (!is_json_object(body))
    throw Error(Errc::kUsage, "KMS " + op + ": the request body is not one JSON object (e.g. {\"KeyId\": \"alias/x\"})");
  bool refreshed = false;
  for (int attempt = 1;; ++attempt) {
    try {
      return call_once(op, body);
    } catch (const KmsError& e) {
      if (e.type() == "ExpiredTokenException" && !refreshed) {
        refreshed = true;
        credentials_->invalidate();
        continue;
      }
      if (!e.retryable() || attempt >= options_.max_attempts) throw;
      int cap = std::min(options_.max_backoff_ms, options_.base_backoff_ms << std::min(attempt, 10));
      int sleep_ms = static_cast<int>(os_random().uniform_small(0, 255) * static_cast<uint32_t>(cap) / 255);
      log_debug("KMS " + op + ": " + e.what() + "; retry " + std::to_string(attempt) + " after " +
                std::to_string(sleep_ms) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    }
  }
}

namespace detail {

nlohmann::json call_json(KmsClient& client, const std::string& op, const nlohmann::json& request) {
  std::string body, answer;  // compact; these exact bytes are signed and sent
  OnExit wipe{[&] {            // Encrypt's plaintext is in body (base64), a Plaintext in answer
    wipe_string(body);
    wipe_string(answer);
  }};
  try {
    body = request.dump();
  } catch (const nlohmann::json::exception&) {
    throw Error(Errc::kUsage, "KMS " + op + ": request holds a string that is not UTF-8 (encryption context?)");
  }
  answer = client.call_text(op, body);
  return nlohmann::json::parse(answer);  // checked to be a JSON object by call_text
}

nlohmann::json call_with_recipient(KmsClient& client, const std::string& op, nlohmann::json request,
                                   const Recipient* recipient, SecureBytes& released) {
  if (!recipient) {
    nlohmann::json resp = call_json(client, op, request);
    // The caller gets the response without the key in it.
    if (resp.contains("Plaintext") && resp["Plaintext"].is_string()) released = take_secret(resp, "Plaintext", op);
    return resp;
  }
  if (!recipient->attestation || !recipient->keys) throw Error(Errc::kUsage, "Recipient needs an attestation source and key pair");
  auto pair = recipient->keys->current();
  Bytes doc = recipient->attestation->attestation_document(pair->spki_der());
  request["Recipient"] = {{"AttestationDocument", base64_encode(doc)}, {"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"}};
  nlohmann::json resp = call_json(client, op, request);
  refuse_clear_secret(resp, "Plaintext", op);
  Bytes envelope = b64_field(resp, "CiphertextForRecipient", op);
  if (envelope.size() > 6144) throw Error(Errc::kFormat, "KMS " + op + ": CiphertextForRecipient exceeds 6144 bytes");
  released = pair->open(envelope);
  return resp;
}

}  // namespace detail

EncryptResult KmsClient::encrypt(const std::string& key_id, ByteView plaintext, const EncryptionContext& context) {
  nlohmann::json req = {{"KeyId", key_id}, {"Plaintext", base64_encode(plaintext)}};
  OnExit wipe{[&] { wipe_json_strings(req["Plaintext"]); }};
  if (!context.empty()) req["EncryptionContext"] = context_json(context);
  auto resp = detail::call_json(*this, "Encrypt", req);
  return {str_field(resp, "KeyId"), b64_field(resp, "CiphertextBlob", "Encrypt")};
}

DecryptResult KmsClient::decrypt(ByteView blob, const EncryptionContext& context, const std::string& key_id,
                                 const Recipient* recipient) {
  nlohmann::json req = {{"CiphertextBlob", base64_encode(blob)}};
  if (!context.empty()) req["EncryptionContext"] = context_json(context);
  if (!key_id.empty()) req["KeyId"] = key_id;
  DecryptResult out;
  auto resp = detail::call_with_recipient(*this, "Decrypt", req, recipient, out.plaintext);
  if (out.plaintext.empty()) throw Error(Errc::kFormat, "KMS Decrypt: response has neither Plaintext nor CiphertextForRecipient");
  out.key_id = str_field(resp, "KeyId");
  out.encryption_algorithm = str_field(resp, "EncryptionAlgorithm");
  return out;
}

DataKeyResult KmsClient::generate_data_key(const std::string& key_id, int n, const EncryptionContext& context,
                                           const Recipient* recipient) {
  nlohmann::json req = {{"KeyId", key_id}};
  add_key_size(req, n);
  if (!context.empty()) req["EncryptionContext"] = context_json(context);
  DataKeyResult out;
  auto resp = detail::call_with_recipient(*this, "GenerateDataKey", req, recipient, out.plaintext);
  if (out.plaintext.size() != static_cast<size_t>(n))
    throw Error(Errc::kFormat, "KMS GenerateDataKey: released key has " + std::to_string(out.plaintext.size()) +
                                   " bytes, asked for " + std::to_string(n));
  out.key_id = str_field(resp, "KeyId");
  out.ciphertext_blob = b64_field(resp, "CiphertextBlob", "GenerateDataKey");
  return out;
}

DataKeyResult KmsClient::generate_data_key_without_plaintext(const std::string& key_id, int n,
                                                             const EncryptionContext& context) {
  nlohmann::json req = {{"KeyId", key_id}};
  add_key_size(req, n);
  if (!context.empty()) req["EncryptionContext"] = context_json(context);
  auto resp = detail::call_json(*this, "GenerateDataKeyWithoutPlaintext", req);
  return {str_field(resp, "KeyId"), b64_field(resp, "CiphertextBlob", "GenerateDataKeyWithoutPlaintext"), {}};
}

SecureBytes KmsClient::generate_random(int n, const Recipient* recipient) {
  SecureBytes out;
  detail::call_with_recipient(*this, "GenerateRandom", {{"NumberOfBytes", n}}, recipient, out);
  if (out.size() != static_cast<size_t>(n))
    throw Error(Errc::kFormat, "KMS GenerateRandom: got " + std::to_string(out.size()) + " bytes, asked for " + std::to_string(n));
  return out;
}

KeyMetadata KmsClient::describe_key(const std::string& key_id) {
  const std::string op = "DescribeKey";
  nlohmann::json resp = detail::call_json(*this, op, {{"KeyId", key_id}});
  if (!resp.contains("KeyMetadata") || !resp["KeyMetadata"].is_object())
    throw Error(Errc::kFormat, "KMS " + op + ": response lacks KeyMetadata");
  const nlohmann::json& m = resp["KeyMetadata"];
  auto flag = [&m](const char* name) { return m.contains(name) && m[name].is_boolean() && m[name].get<bool>(); };
  auto date = [&m](const char* name) {  // epoch seconds, a JSON number (KMS sends fractions)
    return m.contains(name) && m[name].is_number() ? static_cast<int64_t>(m[name].get<double>()) : int64_t{0};
  };
  KeyMetadata out;
  out.key_id = str_field(m, "KeyId");
  out.arn = str_field(m, "Arn");
  out.aws_account_id = str_field(m, "AWSAccountId");
  out.description = str_field(m, "Description");
  out.key_state = str_field(m, "KeyState");
  out.key_usage = str_field(m, "KeyUsage");
  out.key_spec = str_field(m, "KeySpec");
  if (out.key_spec.empty()) out.key_spec = str_field(m, "CustomerMasterKeySpec");  // older name, same values
  out.origin = str_field(m, "Origin");
  out.key_manager = str_field(m, "KeyManager");
  out.enabled = flag("Enabled");
  out.multi_region = flag("MultiRegion");
  out.creation_date_s = date("CreationDate");
  out.deletion_date_s = date("DeletionDate");
  out.encryption_algorithms = detail::text_list(m, "EncryptionAlgorithms");
  out.signing_algorithms = detail::text_list(m, "SigningAlgorithms");
  out.key_agreement_algorithms = detail::text_list(m, "KeyAgreementAlgorithms");
  return out;
}

}  // namespace shield_nitro::kms
