#include "shield_nitro/kms_local/local_kms.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <mutex>

#include "local_store.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/kms/cms.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/kms/key_policy.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms_local/policy_eval.h"
#include "shield_nitro/kms/sigv4.h"

namespace shield_nitro::kms {

namespace {

using json = nlohmann::json;

constexpr char kBlobMagic[] = "SNK1";
constexpr size_t kMaxPlaintext = 4096;

// Messages may quote untrusted bytes that are not UTF-8: replace them rather than throw.
std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

[[noreturn]] void serialization(const std::string& message) { throw KmsError(400, "SerializationException", message); }

// ---- typed access to request members ----

const json* member(const json& body, const char* name, json::value_t type, const char* type_name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  if (it->type() != type && !(type == json::value_t::number_integer && it->is_number_unsigned()))
    serialization(std::string("Unexpected type for ") + name + ": expected " + type_name);
  return &*it;
}

std::string opt_string(const json& body, const char* name) {
  const json* v = member(body, name, json::value_t::string, "a string");
  return v ? v->get<std::string>() : "";
}

std::string req_string(const json& body, const char* name) {
  std::string s = opt_string(body, name);
  if (s.empty()) throw_validation(std::string("1 validation error detected: Value at '") + name + "' failed to satisfy constraint: Member must not be null");
  return s;
}

Bytes blob_member(const json& body, const char* name, bool required) {
  std::string text = opt_string(body, name);
  if (text.empty()) {
    if (required) req_string(body, name);
    return {};
  }
  try {
    return base64_decode(text);
  } catch (const Error&) {
    serialization(std::string("Value for ") + name + " is not valid base64");
  }
}

std::optional<int64_t> opt_int(const json& body, const char* name) {
  const json* v = member(body, name, json::value_t::number_integer, "an integer");
  if (!v) return std::nullopt;
  return v->get<int64_t>();
}

std::map<std::string, std::string> encryption_context(const json& body) {
  std::map<std::string, std::string> ctx;
  const json* v = member(body, "EncryptionContext", json::value_t::object, "a map of strings");
  if (!v) return ctx;
  for (const auto& [k, val] : v->items()) {
    if (!val.is_string()) serialization("EncryptionContext values must be strings");
    ctx[k] = val.get<std::string>();
  }
  return ctx;
}

// ---- self-describing ciphertext blob: SNK1 | len | key id | nonce(12) | ct | tag(16) ----

Bytes blob_header(const std::string& key_id) {
  Bytes h(kBlobMagic, kBlobMagic + 4);
  h.push_back(static_cast<uint8_t>(key_id.size()));
  h.insert(h.end(), key_id.begin(), key_id.end());
  return h;
}

Bytes blob_aad(const Bytes& header, const std::map<std::string, std::string>& ctx) {
  Bytes aad = header;
  std::string c = dump_json(ctx);  // std::map: sorted keys, so order-independent
  aad.insert(aad.end(), c.begin(), c.end());
  return aad;
}

Bytes seal_blob(const LocalKey& key, ByteView plaintext, const std::map<std::string, std::string>& ctx) {
  Bytes header = blob_header(key.key_id), aad = blob_aad(header, ctx), nonce = os_random().bytes(12);
  Bytes out = header;
  out.insert(out.end(), nonce.begin(), nonce.end());
  size_t ct_at = out.size();
  out.resize(ct_at + plaintext.size() + 16);
  ossl::Ptr<EVP_CIPHER_CTX> c(EVP_CIPHER_CTX_new());
  int n = 0, fin = 0;
  if (!c || EVP_EncryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, key.material.data(), nonce.data()) != 1 ||
      EVP_EncryptUpdate(c.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(c.get(), out.data() + ct_at, &n, plaintext.data(), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(c.get(), out.data() + ct_at + n, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, 16, out.data() + ct_at + plaintext.size()) != 1)
    throw_openssl("AES-256-GCM seal");
  return out;
}

std::string blob_key_id(ByteView blob) {
  if (blob.size() < 5 + 36 + 12 + 16 || std::memcmp(blob.data(), kBlobMagic, 4) != 0 || blob[4] != 36)
    throw KmsError(400, "InvalidCiphertextException", "");
  return std::string(reinterpret_cast<const char*>(blob.data() + 5), 36);
}

SecureBytes open_blob(const LocalKey& key, ByteView blob, const std::map<std::string, std::string>& ctx) {
  Bytes header = blob_header(key.key_id), aad = blob_aad(header, ctx);
  ByteView nonce = blob.subspan(header.size(), 12);
  ByteView body = blob.subspan(header.size() + 12);
  size_t ct_len = body.size() - 16;
  SecureBytes out(ct_len);
  ossl::Ptr<EVP_CIPHER_CTX> c(EVP_CIPHER_CTX_new());
  Bytes tag(body.end() - 16, body.end());
  int n = 0, fin = 0;
  bool ok = c && EVP_DecryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, key.material.data(), nonce.data()) == 1 &&
            EVP_DecryptUpdate(c.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(c.get(), out.data(), &n, body.data(), static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(c.get(), out.data() + n, &fin) == 1;
  if (!ok) throw KmsError(400, "InvalidCiphertextException", "");
  return out;
}

json key_metadata(const LocalKey& k, const std::string& account) {
  return {{"AWSAccountId", account},
          {"KeyId", k.key_id},
          {"Arn", k.arn},
          {"CreationDate", k.creation_date},
          {"Enabled", true},
          {"Description", k.description},
          {"KeyUsage", "ENCRYPT_DECRYPT"},
          {"KeyState", "Enabled"},
          {"Origin", "AWS_KMS"},
          {"KeyManager", "CUSTOMER"},
          {"CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"},
          {"KeySpec", "SYMMETRIC_DEFAULT"},
          {"EncryptionAlgorithms", {"SYMMETRIC_DEFAULT"}},
          {"MultiRegion", false}};
}

std::string random_secret() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s;
  for (uint8_t b : os_random().bytes(40)) s += kAlphabet[b & 63];
  return s;
}

std::string random_access_key_id() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string s = "AKIA";
  for (uint8_t b : os_random().bytes(16)) s += kAlphabet[b & 31];
  return s;
}

}  // namespace

// ---- principals from the credentials file ----

struct Principal {
  SecureBytes secret;
  std::string session_token;
  std::string arn;
};

struct LocalKms::Impl {
  LocalKmsOptions opt;
  const Clock& clock;
  LocalStore store;
  std::mutex creds_mu;
  int64_t creds_mtime = -1;
  std::map<std::string, Principal> principals;  // access key id -> principal

  explicit Impl(LocalKmsOptions o)
      : opt(std::move(o)),
        clock(opt.clock ? *opt.clock : system_clock()),
        store((make_dirs(opt.state_dir, 0700), opt.state_dir), "arn:aws:kms:" + opt.region + ":" + opt.account + ":") {
    ensure_credentials_file();
  }

  std::string credentials_path() const { return opt.state_dir + "/credentials"; }

  void ensure_credentials_file() {
    if (file_exists(credentials_path())) return;
    std::string text;
    for (const char* profile : {"admin", "enclave"}) {
      text += std::string("[") + profile + "]\naws_access_key_id = " + random_access_key_id() +
              "\naws_secret_access_key = " + random_secret() + "\nprincipal_arn = arn:aws:iam::" + opt.account +
              ":role/shield-" + profile + "\n\n";
    }
    write_file_atomic(credentials_path(), as_bytes(text), 0600);
  }

  // Re-reads the credentials file when it changed, so principals can be added live.
  std::optional<VerifierSecret> lookup(const std::string& akid, std::string& principal_arn) {
    std::lock_guard lock(creds_mu);
    struct stat st{};
    if (::stat(credentials_path().c_str(), &st) == 0 && st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != creds_mtime) {
      creds_mtime = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
      principals.clear();
      for (const auto& entry : read_ini_profiles(credentials_path())) {
        const std::string& profile = entry.first;
        const auto& values = entry.second;
        auto get = [&](const char* k) { auto it = values.find(k); return it == values.end() ? std::string() : it->second; };
        if (get("aws_access_key_id").empty() || get("aws_secret_access_key").empty()) continue;
        std::string arn = get("principal_arn").empty() ? "arn:aws:iam::" + opt.account + ":user/" + profile : get("principal_arn");
        principals[get("aws_access_key_id")] = Principal{SecureBytes(as_bytes(get("aws_secret_access_key"))),
                                                         get("aws_session_token"), arn};
      }
    }
    auto it = principals.find(akid);
    if (it == principals.end()) return std::nullopt;
    principal_arn = it->second.arn;
    return VerifierSecret{it->second.secret.clone(), it->second.session_token};
  }

  std::string authenticate(const HttpServerRequest& req) {
    SignableRequest sreq{req.method, req.path, req.query, req.headers, as_bytes(req.body)};
    std::string principal;
    sigv4_verify(sreq, [&](const std::string& akid) { return lookup(akid, principal); },
                 {opt.region, "kms", clock.now_s()});
    return principal;
  }

  // ---- authorization ----

  std::string account_of(const std::string& principal) {
    try {
      return account_of_arn(principal);
    } catch (const Error&) {
      return "";
    }
  }

  void authorize(const LocalKey& key, const std::string& action, const std::string& principal,
                 std::map<std::string, std::string> context) {
    PolicyRequest pr{principal, account_of(principal), action, key.arn, std::move(context)};
    pr.context["aws:principalarn"] = principal;
    pr.context["kms:calleraccount"] = pr.account;
    PolicyResult r = evaluate_key_policy(json::parse(key.policy), pr);
    if (r.decision == PolicyDecision::kAllow) return;
    std::string why = r.decision == PolicyDecision::kExplicitDeny
                          ? " with an explicit deny in a resource-based policy"
                          : " because no resource-based policy allows the " + action + " action";
    throw_access_denied("User: " + principal + " is not authorized to perform: " + action + " on resource: " + key.arn + why);
  }

  void authorize_account(const std::string& principal, const std::string& action) {
    if (account_of(principal) != opt.account)
      throw_access_denied("User: " + principal + " is not authorized to perform: " + action);
  }

  static std::map<std::string, std::string> context_keys(const std::map<std::string, std::string>& ec) {
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : ec) out["kms:encryptioncontext:" + k] = v;
    return out;
  }

  // ---- Recipient ----

  struct RecipientInfo {
    Bytes public_key;
    std::map<std::string, std::string> conditions;
  };

  std::optional<RecipientInfo> recipient(const json& body) {
    const json* r = member(body, "Recipient", json::value_t::object, "a structure");
    if (!r) return std::nullopt;
    std::string alg = opt_string(*r, "KeyEncryptionAlgorithm");
    if (alg != "RSAES_OAEP_SHA_256")
      throw_validation("1 validation error detected: Value '" + alg.substr(0, 64) +
                       "' at 'recipient.keyEncryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [RSAES_OAEP_SHA_256]");
    Bytes doc = blob_member(*r, "AttestationDocument", true);
    if (doc.empty() || doc.size() > 262144) throw_validation("AttestationDocument must be 1..262144 bytes");
    if (!opt.verifier) throw_validation("kms-local has no --trust-root, so it cannot verify the attestation document");
    VerifiedRecipient v;
    try {
      v = opt.verifier(doc);
    } catch (const Error& e) {
      throw_validation(std::string("The attestation document is not valid: ") + e.what());
    }
    if (v.public_key.empty()) throw_validation("The attestation document carries no public_key");
    RecipientInfo info{v.public_key, {}};
    for (const auto& [i, value] : v.pcrs) info.conditions["kms:recipientattestation:pcr" + std::to_string(i)] = hex_encode(value);
    if (v.pcrs.count(0)) info.conditions["kms:recipientattestation:imagesha384"] = hex_encode(v.pcrs.at(0));
    return info;
  }

  static void release(json& resp, ByteView secret, const std::optional<RecipientInfo>& rcpt) {
    if (rcpt) {
      try {
        resp["CiphertextForRecipient"] = base64_encode(build_recipient_envelope(secret, rcpt->public_key));
      } catch (const Error& e) {
        throw_validation(std::string("The attestation document's public_key cannot be used: ") + e.what());
      }
    } else {
      resp["Plaintext"] = base64_encode(secret);
    }
  }

  static int data_key_size(const json& body) {
    std::string spec = opt_string(body, "KeySpec");
    auto n = opt_int(body, "NumberOfBytes");
    if (!spec.empty() && n) throw_validation("Please specify either number of bytes or key spec.");
    if (spec == "AES_256") return 32;
    if (spec == "AES_128") return 16;
    if (!spec.empty()) throw_validation("1 validation error detected: Value '" + spec.substr(0, 32) + "' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]");
    if (!n) throw_validation("Please specify either number of bytes or key spec.");
    if (*n < 1 || *n > 1024) throw_validation("NumberOfBytes must be between 1 and 1024");
    return static_cast<int>(*n);
  }

  // ---- operations ----

  json create_key(const json& body, const std::string& principal) {
    authorize_account(principal, "kms:CreateKey");
    std::string usage = opt_string(body, "KeyUsage"), spec = opt_string(body, "KeySpec");
    if (spec.empty()) spec = opt_string(body, "CustomerMasterKeySpec");
    if (!usage.empty() && usage != "ENCRYPT_DECRYPT") throw KmsError(400, "UnsupportedOperationException", "kms-local supports ENCRYPT_DECRYPT keys only");
    if (!spec.empty() && spec != "SYMMETRIC_DEFAULT") throw KmsError(400, "UnsupportedOperationException", "kms-local supports SYMMETRIC_DEFAULT keys only");
    std::string policy = opt_string(body, "Policy");
    if (policy.empty()) policy = default_key_policy(opt.account).dump(2);
    else check_new_policy(policy, principal, body);
    const LocalKey& k = store.create_key(opt_string(body, "Description"), policy, static_cast<double>(clock.now_s()));
    return {{"KeyMetadata", key_metadata(k, opt.account)}};
  }

  void check_new_policy(const std::string& policy, const std::string& principal, const json& body) {
    json p = json::parse(policy, nullptr, false);
    if (p.is_discarded()) throw KmsError(400, "MalformedPolicyDocumentException", "The key policy is not valid JSON");
    validate_key_policy(p);
    auto bypass = member(body, "BypassPolicyLockoutSafetyCheck", json::value_t::boolean, "a boolean");
    if (bypass && bypass->get<bool>()) return;
    PolicyRequest pr{principal, account_of(principal), "kms:PutKeyPolicy", "*", {{"aws:principalarn", principal}}};
    if (evaluate_key_policy(p, pr).decision != PolicyDecision::kAllow)
      throw KmsError(400, "MalformedPolicyDocumentException",
                     "The new key policy will not allow you to update the key policy in the future.");
  }

  json describe_key(const json& body, const std::string& principal) {
    LocalKey k = store.resolve(req_string(body, "KeyId"));
    authorize(k, "kms:DescribeKey", principal, {});
    return {{"KeyMetadata", key_metadata(k, opt.account)}};
  }

  json list_keys(const json& body, const std::string& principal) {
    authorize_account(principal, "kms:ListKeys");
    opt_int(body, "Limit");
    json keys = json::array();
    for (const auto& k : store.keys()) keys.push_back({{"KeyId", k.key_id}, {"KeyArn", k.arn}});
    return {{"Keys", keys}, {"Truncated", false}};
  }

  json create_alias(const json& body, const std::string& principal) {
    std::string name = req_string(body, "AliasName");
    LocalKey k = store.resolve(req_string(body, "TargetKeyId"));
    if (name.rfind("alias/", 0) != 0 || name.size() <= 6 || name.size() > 256)
      throw_validation("Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html");
    if (name.rfind("alias/aws/", 0) == 0) throw_validation("Cannot create alias with prefix 'alias/aws/'");
    for (char c : name.substr(6))
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-'))
        throw_validation("Alias name contains invalid characters");
    authorize(k, "kms:CreateAlias", principal, {});
    store.create_alias(name, k.key_id, static_cast<double>(clock.now_s()));
    return json::object();
  }

  json list_aliases(const json& body, const std::string& principal) {
    authorize_account(principal, "kms:ListAliases");
    std::string filter = opt_string(body, "KeyId");
    std::string filter_id = filter.empty() ? "" : store.resolve(filter).key_id;
    json aliases = json::array();
    for (const auto& a : store.aliases())
      if (filter_id.empty() || a.target_key_id == filter_id)
        aliases.push_back({{"AliasName", a.name}, {"AliasArn", store.arn_prefix() + a.name}, {"TargetKeyId", a.target_key_id}});
    return {{"Aliases", aliases}, {"Truncated", false}};
  }

  json put_key_policy(const json& body, const std::string& principal) {
    LocalKey k = store.resolve(req_string(body, "KeyId"));
    std::string name = opt_string(body, "PolicyName");
    if (!name.empty() && name != "default") throw_not_found("Policy name '" + name.substr(0, 64) + "' does not exist; only 'default'");
    std::string policy = req_string(body, "Policy");
    if (policy.size() > 32768) throw_validation("Policy exceeds 32768 characters");
    authorize(k, "kms:PutKeyPolicy", principal, {});
    check_new_policy(policy, principal, body);
    store.put_policy(k.key_id, policy);
    return json::object();
  }

  json get_key_policy(const json& body, const std::string& principal) {
    LocalKey k = store.resolve(req_string(body, "KeyId"));
    std::string name = opt_string(body, "PolicyName");
    if (!name.empty() && name != "default") throw_not_found("Policy name '" + name.substr(0, 64) + "' does not exist; only 'default'");
    authorize(k, "kms:GetKeyPolicy", principal, {});
    return {{"Policy", k.policy}, {"PolicyName", "default"}};
  }

  json encrypt(const json& body, const std::string& principal) {
    Bytes plaintext = blob_member(body, "Plaintext", true);
    LocalKey k = store.resolve(req_string(body, "KeyId"));
    if (plaintext.empty() || plaintext.size() > kMaxPlaintext) throw_validation("Plaintext must be 1..4096 bytes");
    check_algorithm(body);
    if (body.contains("Recipient")) throw_validation("Recipient is not supported by Encrypt");
    auto ec = encryption_context(body);
    authorize(k, "kms:Encrypt", principal, context_keys(ec));
    Bytes blob = seal_blob(k, plaintext, ec);
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return {{"CiphertextBlob", base64_encode(blob)}, {"KeyId", k.arn}, {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
  }

  static void check_algorithm(const json& body) {
    std::string alg = opt_string(body, "EncryptionAlgorithm");
    if (!alg.empty() && alg != "SYMMETRIC_DEFAULT")
      throw KmsError(400, "InvalidKeyUsageException", "Only SYMMETRIC_DEFAULT is supported for this key");
  }

  json decrypt(const json& body, const std::string& principal) {
    Bytes blob = blob_member(body, "CiphertextBlob", true);
    if (blob.size() > 6144) throw_validation("CiphertextBlob must be at most 6144 bytes");
    check_algorithm(body);
    std::string blob_id = blob_key_id(blob);
    LocalKey k = store.resolve(blob_id);
    std::string want = opt_string(body, "KeyId");
    if (!want.empty() && store.resolve(want).key_id != k.key_id)
      throw KmsError(400, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.");
    auto ec = encryption_context(body);
    auto rcpt = recipient(body);
    auto ctx = context_keys(ec);
    if (rcpt) ctx.insert(rcpt->conditions.begin(), rcpt->conditions.end());
    authorize(k, "kms:Decrypt", principal, ctx);
    SecureBytes plaintext = open_blob(k, blob, ec);
    json resp = {{"KeyId", k.arn}, {"EncryptionAlgorithm", "SYMMETRIC_DEFAULT"}};
    release(resp, plaintext.view(), rcpt);
    return resp;
  }

  json generate_data_key(const json& body, const std::string& principal, bool with_plaintext) {
    LocalKey k = store.resolve(req_string(body, "KeyId"));
    int n = data_key_size(body);
    auto ec = encryption_context(body);
    std::optional<RecipientInfo> rcpt;
    if (with_plaintext) rcpt = recipient(body);
    else if (body.contains("Recipient")) throw_validation("Recipient is not supported by GenerateDataKeyWithoutPlaintext");
    auto ctx = context_keys(ec);
    if (rcpt) ctx.insert(rcpt->conditions.begin(), rcpt->conditions.end());
    authorize(k, with_plaintext ? "kms:GenerateDataKey" : "kms:GenerateDataKeyWithoutPlaintext", principal, ctx);
    SecureBytes data_key(static_cast<size_t>(n));
    os_random().fill(data_key.span());
    json resp = {{"CiphertextBlob", base64_encode(seal_blob(k, data_key.view(), ec))}, {"KeyId", k.arn}};
    if (with_plaintext) release(resp, data_key.view(), rcpt);
    return resp;
  }

  json generate_random(const json& body, const std::string& principal) {
    authorize_account(principal, "kms:GenerateRandom");
    auto n = opt_int(body, "NumberOfBytes");
    if (!n || *n < 1 || *n > 1024) throw_validation("NumberOfBytes must be between 1 and 1024");
    auto rcpt = recipient(body);
    SecureBytes bytes(static_cast<size_t>(*n));
    os_random().fill(bytes.span());
    json resp = json::object();
    release(resp, bytes.view(), rcpt);
    return resp;
  }
};

LocalKms::LocalKms(LocalKmsOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
LocalKms::~LocalKms() = default;

std::string LocalKms::credentials_path() const { return impl_->credentials_path(); }

json LocalKms::dispatch(const std::string& op, const json& body, const std::string& principal) {
  Impl& m = *impl_;
  if (op == "CreateKey") return m.create_key(body, principal);
  if (op == "DescribeKey") return m.describe_key(body, principal);
  if (op == "ListKeys") return m.list_keys(body, principal);
  if (op == "CreateAlias") return m.create_alias(body, principal);
  if (op == "ListAliases") return m.list_aliases(body, principal);
  if (op == "PutKeyPolicy") return m.put_key_policy(body, principal);
  if (op == "GetKeyPolicy") return m.get_key_policy(body, principal);
  if (op == "Encrypt") return m.encrypt(body, principal);
  if (op == "Decrypt") return m.decrypt(body, principal);
  if (op == "GenerateDataKey") return m.generate_data_key(body, principal, true);
  if (op == "GenerateDataKeyWithoutPlaintext") return m.generate_data_key(body, principal, false);
  if (op == "GenerateRandom") return m.generate_random(body, principal);
  throw KmsError(400, "UnknownOperationException", "Operation " + op.substr(0, 64) + " is not supported by kms-local");
}

HttpServerResponse LocalKms::handle(const HttpServerRequest& req) {
  std::string request_id = random_uuid();
  HttpServerResponse resp{200, {{"x-amzn-RequestId", request_id}, {"Content-Type", "application/x-amz-json-1.1"}}, ""};
  std::string op = "?";
  try {
    if (req.method != "POST" || req.path != "/") throw KmsError(404, "UnknownOperationException", "kms-local accepts POST / only");
    std::string principal = impl_->authenticate(req);
    std::string target = find_header(req.headers, "x-amz-target").value_or("");
    if (target.rfind("TrentService.", 0) != 0) throw KmsError(400, "UnknownOperationException", "");
    op = target.substr(13);
    json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) serialization("The request body is not a JSON object");
    resp.body = dump_json(dispatch(op, body, principal));
    log_debug("kms-local: " + op + " by " + principal + " ok");
  } catch (const KmsError& e) {
    resp.status = e.http_status();
    resp.body = dump_json({{"__type", e.type()}, {"message", e.aws_message()}});
    log_debug("kms-local: " + op + " " + e.type() + ": " + e.aws_message());
  } catch (const std::exception& e) {
    resp.status = 500;
    resp.body = dump_json({{"__type", "KMSInternalException"}, {"message", std::string("kms-local: ") + e.what()}});
    log_warn(std::string("kms-local: internal error in ") + op + ": " + e.what());
  }
  return resp;
}

}  // namespace shield_nitro::kms
