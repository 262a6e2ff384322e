#include "shield_nitro/kms_local/local_kms.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <mutex>

#include "local_store.h"
#include "shield_nitro/core/clock.h"
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

// Opaque pagination markers: base64 of "sn1:" + the name the next page starts at.
std::string make_marker(const std::string& next) { return base64_encode(as_bytes("sn1:" + next)); }

std::string parse_marker(const std::string& marker) {
  std::string text;
  try {
    Bytes b = base64_decode(marker);
    text.assign(b.begin(), b.end());
  } catch (const Error&) {
  }
  if (text.rfind("sn1:", 0) != 0 || text.size() == 4) throw KmsError(400, "InvalidMarkerException", "Invalid marker: " + marker.substr(0, 64));
  return text.substr(4);
}

// Limit as KMS checks it: 1..max (1000 for ListKeys/ListAliases).
size_t page_limit(const json& body, int64_t max, size_t fallback) {
  auto n = opt_int(body, "Limit");
  if (!n) return fallback;
  if (*n < 1) throw_validation("1 validation error detected: Value '" + std::to_string(*n) + "' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1");
  if (*n > max) throw_validation("1 validation error detected: Value '" + std::to_string(*n) + "' at 'limit' failed to satisfy constraint: Member must have value less than or equal to " + std::to_string(max));
  return static_cast<size_t>(*n);
}

// One page of items sorted by name, starting at the body's Marker; sets Truncated/NextMarker.
template <typename T, typename Name, typename Emit>
json paginate(const json& body, const std::vector<T>& items, int64_t max, size_t fallback, Name name, Emit emit,
              const char* list_member) {
  size_t limit = page_limit(body, max, fallback);
  std::string marker = opt_string(body, "Marker");
  std::string from = marker.empty() ? "" : parse_marker(marker);
  json list = json::array();
  json out = json::object();
  for (const auto& item : items) {
    if (name(item) < from) continue;
    if (list.size() == limit) {
      out["NextMarker"] = make_marker(name(item));
      break;
    }
    list.push_back(emit(item));
  }
  out[list_member] = list;
  out["Truncated"] = out.contains("NextMarker");
  return out;
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

// ---- key specs and usages (KMS's enums; the ones kms-local implements) ----

const std::vector<std::string> kKeySpecs = {"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
                                            "ECC_NIST_P521", "ECC_SECG_P256K1", "SYMMETRIC_DEFAULT", "HMAC_224",
                                            "HMAC_256", "HMAC_384", "HMAC_512", "SM2", "ML_DSA_44", "ML_DSA_65",
                                            "ML_DSA_87", "ECC_NIST_EDWARDS25519"};
const std::vector<std::string> kKeyUsages = {"SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"};
const std::vector<std::string> kKeyPairSpecs = {"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
                                                "ECC_NIST_P521", "ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519"};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// KMS's wording for a value outside a member's enum.
void check_enum(const std::string& value, const char* member_path, const std::vector<std::string>& allowed) {
  if (value.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
  throw_validation("1 validation error detected: Value '" + value.substr(0, 64) + "' at '" + member_path +
                   "' failed to satisfy constraint: Member must satisfy enum value set: [" + join(allowed) + "]");
}

bool is_rsa(const std::string& spec) { return spec.rfind("RSA_", 0) == 0; }

// The OpenSSL curve of an ECC spec, or "" when this OpenSSL build lacks it.
std::string curve_of(const std::string& spec) {
  const char* name = spec == "ECC_NIST_P256"   ? "P-256"
                     : spec == "ECC_NIST_P384" ? "P-384"
                     : spec == "ECC_NIST_P521" ? "P-521"
                     : spec == "ECC_SECG_P256K1" ? "secp256k1"
                                                 : "";
  return name;
}

// A new private key of spec (RSA_n or ECC_*), as PKCS#8 DER.
SecureBytes generate_private_key(const std::string& spec) {
  ossl::Ptr<EVP_PKEY> pkey;
  if (is_rsa(spec)) {
    size_t bits = std::stoul(spec.substr(4));
    pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  } else {
    std::string curve = curve_of(spec);
    if (!curve.empty()) pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve.c_str()));
  }
  if (!pkey) throw KmsError(400, "UnsupportedOperationException", "kms-local cannot generate " + spec + " keys (OpenSSL lacks it)");
  std::unique_ptr<PKCS8_PRIV_KEY_INFO, decltype(&PKCS8_PRIV_KEY_INFO_free)> p8(EVP_PKEY2PKCS8(pkey.get()),
                                                                            &PKCS8_PRIV_KEY_INFO_free);
  int n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8.get(), nullptr) : -1;
  if (n <= 0) throw_openssl("PKCS#8 encoding of a " + spec + " key");
  SecureBytes der(static_cast<size_t>(n));
  unsigned char* out = der.data();
  i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &out);
  return der;
}

ossl::Ptr<EVP_PKEY> load_private_key(ByteView pkcs8) {
  const unsigned char* in = pkcs8.data();
  ossl::Ptr<EVP_PKEY> pkey(d2i_AutoPrivateKey(nullptr, &in, static_cast<long>(pkcs8.size())));
  if (!pkey) throw_openssl("loading a stored private key");
  return pkey;
}

Bytes public_key_der(EVP_PKEY* pkey) {
  int n = i2d_PUBKEY(pkey, nullptr);
  if (n <= 0) throw_openssl("SubjectPublicKeyInfo encoding");
  Bytes der(static_cast<size_t>(n));
  unsigned char* out = der.data();
  i2d_PUBKEY(pkey, &out);
  return der;
}

std::vector<std::string> encryption_algorithms(const LocalKey& k) {
  if (k.key_spec == "SYMMETRIC_DEFAULT") return {"SYMMETRIC_DEFAULT"};
  if (is_rsa(k.key_spec) && k.key_usage == "ENCRYPT_DECRYPT") return {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"};
  return {};
}

std::vector<std::string> signing_algorithms(const LocalKey& k) {
  if (k.key_usage != "SIGN_VERIFY") return {};
  if (is_rsa(k.key_spec))
    return {"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
            "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512"};
  if (k.key_spec == "ECC_NIST_P384") return {"ECDSA_SHA_384"};
  if (k.key_spec == "ECC_NIST_P521") return {"ECDSA_SHA_512"};
  return {"ECDSA_SHA_256"};
}

json key_metadata(const LocalKey& k, const std::string& account) {
  json m = {{"AWSAccountId", account},
            {"KeyId", k.key_id},
            {"Arn", k.arn},
            {"CreationDate", k.creation_date},
            {"Enabled", k.key_state == "Enabled"},
            {"Description", k.description},
            {"KeyUsage", k.key_usage},
            {"KeyState", k.key_state},
            {"Origin", "AWS_KMS"},
            {"KeyManager", "CUSTOMER"},
            {"CustomerMasterKeySpec", k.key_spec},
            {"KeySpec", k.key_spec},
            {"MultiRegion", false}};
  if (auto e = encryption_algorithms(k); !e.empty()) m["EncryptionAlgorithms"] = e;
  if (auto s = signing_algorithms(k); !s.empty()) m["SigningAlgorithms"] = s;
  if (k.key_usage == "KEY_AGREEMENT") m["KeyAgreementAlgorithms"] = {"ECDH"};
  if (k.key_state == "PendingDeletion") {
    m["DeletionDate"] = k.deletion_date;
    m["PendingDeletionWindowInDays"] = k.pending_window_days;
  }
  return m;
}

// RFC 7231 IMF-fixdate, the HTTP Date header.
std::string http_date(int64_t unix_s) { return format_utc(unix_s, "%a, %d %b %Y %H:%M:%S GMT"); }


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
    // KMS refuses a signature more than 5 minutes from its clock, either way.
    sigv4_verify(sreq, [&](const std::string& akid) { return lookup(akid, principal); },
                 {opt.region, "kms", clock.now_s()});
    return principal;
  }

  // ---- keys past their DeletionDate are deleted (as KMS does when the waiting period ends) ----

  bool expired(const LocalKey& k) const {
    return k.key_state == "PendingDeletion" && k.deletion_date <= static_cast<double>(clock.now_s());
  }

  LocalKey resolve(const std::string& ref) {
    LocalKey k = store.resolve(ref);
    if (!expired(k)) return k;
    store.delete_key(k.key_id);
    throw_not_found("Key '" + k.arn + "' does not exist");
  }

  void delete_expired() {
    for (const auto& k : store.keys())
      if (expired(k)) store.delete_key(k.key_id);
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
    // Condition keys are case-insensitive, the context key in them too (the policy side is
    // lower-cased by the evaluator): "App" in a request matches kms:EncryptionContext:app.
    for (const auto& [k, v] : ec) {
      std::string key = "kms:encryptioncontext:" + k;
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out[key] = v;
    }
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

  [[noreturn]] static void unsupported(const std::string& message) { throw KmsError(400, "UnsupportedOperationException", message); }

  json create_key(const json& body, const std::string& principal) {
    authorize_account(principal, "kms:CreateKey");
    std::string usage = opt_string(body, "KeyUsage"), spec = opt_string(body, "KeySpec");
    std::string cmk_spec = opt_string(body, "CustomerMasterKeySpec");
    check_enum(usage, "keyUsage", kKeyUsages);
    check_enum(spec, "keySpec", kKeySpecs);
    check_enum(cmk_spec, "customerMasterKeySpec", kKeySpecs);
    if (!spec.empty() && !cmk_spec.empty()) throw_validation("You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec parameter is deprecated. Use KeySpec parameter instead.");
    if (spec.empty()) spec = cmk_spec.empty() ? "SYMMETRIC_DEFAULT" : cmk_spec;
    std::string origin = opt_string(body, "Origin");
    check_enum(origin, "origin", {"AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"});
    if (!origin.empty() && origin != "AWS_KMS") unsupported("kms-local supports Origin AWS_KMS only, not " + origin);
    if (auto mr = member(body, "MultiRegion", json::value_t::boolean, "a boolean"); mr && mr->get<bool>())
      unsupported("kms-local does not support multi-Region keys");
    if (!opt_string(body, "CustomKeyStoreId").empty()) unsupported("kms-local does not support custom key stores");
    std::string description = opt_string(body, "Description");
    if (description.size() > 8192)
      throw_validation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192");
    if (spec.rfind("HMAC_", 0) == 0 || spec == "SM2" || spec.rfind("ML_DSA", 0) == 0 || spec == "ECC_NIST_EDWARDS25519" ||
        usage == "GENERATE_VERIFY_MAC")
      unsupported("kms-local does not support " + spec + (usage.empty() ? "" : "/" + usage) + " keys");
    if (usage.empty()) usage = "ENCRYPT_DECRYPT";
    // The key usages KMS allows for each spec.
    bool allowed = spec == "SYMMETRIC_DEFAULT" ? usage == "ENCRYPT_DECRYPT"
                   : is_rsa(spec)             ? usage == "ENCRYPT_DECRYPT" || usage == "SIGN_VERIFY"
                   : spec == "ECC_SECG_P256K1" ? usage == "SIGN_VERIFY"
                                               : usage == "SIGN_VERIFY" || usage == "KEY_AGREEMENT";
    if (!allowed) throw_validation("KeyUsage " + usage + " is not compatible with KeySpec " + spec);
    LocalKey proto;
    proto.key_spec = spec;
    proto.key_usage = usage;
    proto.description = description;
    proto.tags = tags_member(body);
    proto.policy = opt_string(body, "Policy");
    if (proto.policy.empty()) proto.policy = default_key_policy(opt.account).dump(2);
    else check_new_policy(proto.policy, principal, body);
    if (spec == "SYMMETRIC_DEFAULT") {
      proto.material = SecureBytes(32);
      os_random().fill(proto.material.span());
    } else {
      proto.material = generate_private_key(spec);
    }
    LocalKey k = store.create_key(std::move(proto), static_cast<double>(clock.now_s()));
    return {{"KeyMetadata", key_metadata(k, opt.account)}};
  }

  // Tags: [{TagKey, TagValue}] as KMS checks them (key 1..128, value 0..256, at most 50).
  static std::map<std::string, std::string> tags_member(const json& body) {
    std::map<std::string, std::string> tags;
    const json* v = member(body, "Tags", json::value_t::array, "a list of tags");
    if (!v) return tags;
    for (const auto& t : *v) {
      if (!t.is_object()) serialization("Tags entries must be structures");
      std::string key = req_string(t, "TagKey");
      const json* val = member(t, "TagValue", json::value_t::string, "a string");
      if (!val) throw_validation("1 validation error detected: Value null at 'tags.member.tagValue' failed to satisfy constraint: Member must not be null");
      if (key.size() > 128) throw_validation("1 validation error detected: Value at 'tags.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128");
      if (val->get_ref<const std::string&>().size() > 256) throw_validation("1 validation error detected: Value at 'tags.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256");
      if (key.rfind("aws:", 0) == 0) throw KmsError(400, "TagException", "Tag keys beginning with aws: are reserved");
      tags[key] = val->get<std::string>();
    }
    return tags;
  }

  // The state checks KMS applies before a cryptographic operation.
  static void require_enabled(const LocalKey& k) {
    if (k.key_state == "Disabled") throw KmsError(400, "DisabledException", k.arn + " is disabled.");
    if (k.key_state != "Enabled") throw KmsError(400, "KMSInvalidStateException", k.arn + " is pending deletion.");
  }
  static void require_not_pending_deletion(const LocalKey& k) {
    if (k.key_state == "PendingDeletion") throw KmsError(400, "KMSInvalidStateException", k.arn + " is pending deletion.");
  }
  static void require_usage(const LocalKey& k, const std::string& usage, const std::string& spec_prefix, const std::string& op) {
    if (k.key_usage != usage || k.key_spec.rfind(spec_prefix, 0) != 0)
      throw KmsError(400, "InvalidKeyUsageException",
                     "You cannot perform " + op + " with " + k.arn + " (KeySpec " + k.key_spec + ", KeyUsage " + k.key_usage + ")");
  }

  json set_enabled(const json& body, const std::string& principal, bool enable) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    authorize(k, enable ? "kms:EnableKey" : "kms:DisableKey", principal, {});
    require_not_pending_deletion(k);
    store.update_key(k.key_id, [&](LocalKey& u) {
      require_not_pending_deletion(u);
      u.key_state = enable ? "Enabled" : "Disabled";
    });
    return json::object();
  }

  json schedule_key_deletion(const json& body, const std::string& principal) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    auto days = opt_int(body, "PendingWindowInDays");
    if (days && (*days < 7 || *days > 30))
      throw_validation("1 validation error detected: Value '" + std::to_string(*days) +
                       "' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value " +
                       (*days < 7 ? "greater than or equal to 7" : "less than or equal to 30"));
    int window = days ? static_cast<int>(*days) : 30;
    authorize(k, "kms:ScheduleKeyDeletion", principal, {});
    double when = static_cast<double>(clock.now_s() + int64_t{window} * 86400);
    LocalKey u = store.update_key(k.key_id, [&](LocalKey& x) {
      require_not_pending_deletion(x);
      x.key_state = "PendingDeletion";
      x.deletion_date = when;
      x.pending_window_days = window;
    });
    return {{"KeyId", u.arn}, {"DeletionDate", u.deletion_date}, {"KeyState", "PendingDeletion"}, {"PendingWindowInDays", window}};
  }

  json cancel_key_deletion(const json& body, const std::string& principal) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    authorize(k, "kms:CancelKeyDeletion", principal, {});
    store.update_key(k.key_id, [&](LocalKey& x) {
      if (x.key_state != "PendingDeletion") throw KmsError(400, "KMSInvalidStateException", x.arn + " is not pending deletion.");
      // KMS leaves a key whose deletion was cancelled disabled.
      x.key_state = "Disabled";
      x.deletion_date = 0;
      x.pending_window_days = 0;
    });
    return {{"KeyId", k.arn}};
  }

  json tag_resource(const json& body, const std::string& principal) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    if (!body.contains("Tags")) req_string(body, "Tags");
    auto tags = tags_member(body);
    authorize(k, "kms:TagResource", principal, {});
    store.update_key(k.key_id, [&](LocalKey& x) {
      require_not_pending_deletion(x);
      for (const auto& [key, value] : tags) x.tags[key] = value;
      if (x.tags.size() > 50) throw KmsError(400, "LimitExceededException", "A key can have at most 50 tags");
    });
    return json::object();
  }

  json untag_resource(const json& body, const std::string& principal) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    const json* keys = member(body, "TagKeys", json::value_t::array, "a list of strings");
    if (!keys) req_string(body, "TagKeys");
    for (const auto& t : *keys)
      if (!t.is_string()) serialization("TagKeys entries must be strings");
    authorize(k, "kms:UntagResource", principal, {});
    store.update_key(k.key_id, [&](LocalKey& x) {
      require_not_pending_deletion(x);
      for (const auto& t : *keys) x.tags.erase(t.get<std::string>());
    });
    return json::object();
  }

  json list_resource_tags(const json& body, const std::string& principal) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    authorize(k, "kms:ListResourceTags", principal, {});
    std::vector<std::pair<std::string, std::string>> tags(k.tags.begin(), k.tags.end());
    return paginate(body, tags, 50, 50, [](const auto& t) { return t.first; },
                    [](const auto& t) { return json{{"TagKey", t.first}, {"TagValue", t.second}}; }, "Tags");
  }

  json get_public_key(const json& body, const std::string& principal) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    authorize(k, "kms:GetPublicKey", principal, {});
    require_enabled(k);
    if (k.key_spec == "SYMMETRIC_DEFAULT") unsupported(k.arn + " is a symmetric key: it has no public key");
    auto pkey = load_private_key(k.material.view());
    json resp = {{"KeyId", k.arn}, {"PublicKey", base64_encode(public_key_der(pkey.get()))},
                 {"CustomerMasterKeySpec", k.key_spec}, {"KeySpec", k.key_spec}, {"KeyUsage", k.key_usage}};
    if (auto e = encryption_algorithms(k); !e.empty()) resp["EncryptionAlgorithms"] = e;
    if (auto sa = signing_algorithms(k); !sa.empty()) resp["SigningAlgorithms"] = sa;
    if (k.key_usage == "KEY_AGREEMENT") resp["KeyAgreementAlgorithms"] = {"ECDH"};
    return resp;
  }

  json generate_data_key_pair(const json& body, const std::string& principal, bool with_plaintext) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    std::string spec = req_string(body, "KeyPairSpec");
    check_enum(spec, "keyPairSpec", kKeyPairSpecs);
    if (spec == "SM2" || spec == "ECC_NIST_EDWARDS25519") unsupported("kms-local does not generate " + spec + " key pairs");
    auto ec = encryption_context(body);
    // KMS's GenerateDataKeyPairWithoutPlaintext has no Recipient member: like any unknown member, it is ignored.
    std::optional<RecipientInfo> rcpt;
    if (with_plaintext) rcpt = recipient(body);
    auto ctx = context_keys(ec);
    if (rcpt) ctx.insert(rcpt->conditions.begin(), rcpt->conditions.end());
    authorize(k, with_plaintext ? "kms:GenerateDataKeyPair" : "kms:GenerateDataKeyPairWithoutPlaintext", principal, ctx);
    require_enabled(k);
    require_usage(k, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", with_plaintext ? "GenerateDataKeyPair" : "GenerateDataKeyPairWithoutPlaintext");
    SecureBytes private_der = generate_private_key(spec);
    auto pkey = load_private_key(private_der.view());
    json resp = {{"PrivateKeyCiphertextBlob", base64_encode(seal_blob(k, private_der.view(), ec))},
                 {"PublicKey", base64_encode(public_key_der(pkey.get()))},
                 {"KeyId", k.arn},
                 {"KeyPairSpec", spec}};
    if (!with_plaintext) return resp;
    if (rcpt) {
      release(resp, private_der.view(), rcpt);
    } else {
      resp["PrivateKeyPlaintext"] = base64_encode(private_der.view());
    }
    return resp;
  }

  json derive_shared_secret(const json& body, const std::string& principal) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    std::string alg = req_string(body, "KeyAgreementAlgorithm");
    check_enum(alg, "keyAgreementAlgorithm", {"ECDH"});
    Bytes peer_der = blob_member(body, "PublicKey", true);
    if (peer_der.size() > 8192) throw_validation("1 validation error detected: Value at 'publicKey' failed to satisfy constraint: Member must have length less than or equal to 8192");
    auto rcpt = recipient(body);
    std::map<std::string, std::string> ctx;
    if (rcpt) ctx = rcpt->conditions;
    authorize(k, "kms:DeriveSharedSecret", principal, ctx);
    require_enabled(k);
    require_usage(k, "KEY_AGREEMENT", "ECC_", "DeriveSharedSecret");
    auto own = load_private_key(k.material.view());
    const unsigned char* in = peer_der.data();
    ossl::Ptr<EVP_PKEY> peer(d2i_PUBKEY(nullptr, &in, static_cast<long>(peer_der.size())));
    if (!peer || in != peer_der.data() + peer_der.size() || EVP_PKEY_get_base_id(peer.get()) != EVP_PKEY_EC)
      throw_validation("PublicKey is not a DER-encoded X.509 SubjectPublicKeyInfo of an elliptic-curve key");
    char own_curve[64] = {}, peer_curve[64] = {};
    size_t len = 0;
    EVP_PKEY_get_utf8_string_param(own.get(), OSSL_PKEY_PARAM_GROUP_NAME, own_curve, sizeof own_curve, &len);
    EVP_PKEY_get_utf8_string_param(peer.get(), OSSL_PKEY_PARAM_GROUP_NAME, peer_curve, sizeof peer_curve, &len);
    if (std::string(own_curve) != peer_curve)
      throw_validation(std::string("PublicKey is on curve ") + peer_curve + ", not on " + k.key_spec + "'s curve");
    ossl::Ptr<EVP_PKEY_CTX> dctx(EVP_PKEY_CTX_new(own.get(), nullptr));
    size_t n = 0;
    if (!dctx || EVP_PKEY_derive_init(dctx.get()) != 1 || EVP_PKEY_derive_set_peer_ex(dctx.get(), peer.get(), 1) != 1)
      throw_validation("PublicKey is not a valid point for ECDH with " + k.key_spec);
    if (EVP_PKEY_derive(dctx.get(), nullptr, &n) != 1) throw_openssl("ECDH");
    SecureBytes secret(n);
    if (EVP_PKEY_derive(dctx.get(), secret.data(), &n) != 1) throw_openssl("ECDH");
    json resp = {{"KeyId", k.arn}, {"KeyAgreementAlgorithm", "ECDH"}, {"KeyOrigin", "AWS_KMS"}};
    if (rcpt) release(resp, secret.view(), rcpt);
    else resp["SharedSecret"] = base64_encode(secret.view());
    return resp;
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
    LocalKey k = resolve(req_string(body, "KeyId"));
    authorize(k, "kms:DescribeKey", principal, {});
    return {{"KeyMetadata", key_metadata(k, opt.account)}};
  }

  json list_keys(const json& body, const std::string& principal) {
    authorize_account(principal, "kms:ListKeys");
    delete_expired();
    return paginate(body, store.keys(), 1000, 100, [](const LocalKey& k) { return k.key_id; },
                    [](const LocalKey& k) { return json{{"KeyId", k.key_id}, {"KeyArn", k.arn}}; }, "Keys");
  }

  json create_alias(const json& body, const std::string& principal) {
    std::string name = req_string(body, "AliasName");
    std::string target = req_string(body, "TargetKeyId");
    if (target.rfind("alias/", 0) == 0 || target.find(":alias/") != std::string::npos)
      throw_validation("Aliases must refer to keys. Not aliases");
    LocalKey k = resolve(target);
    require_not_pending_deletion(k);
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

  // The alias named in body["AliasName"] (alias/... or its ARN) and its current key.
  std::pair<std::string, LocalKey> existing_alias(const json& body) {
    std::string name = req_string(body, "AliasName");
    if (name.rfind(store.arn_prefix(), 0) == 0) name = name.substr(store.arn_prefix().size());
    if (name.rfind("alias/", 0) != 0) throw_validation("Alias must start with the prefix \"alias/\"");
    return {name, resolve(name)};
  }

  json update_alias(const json& body, const std::string& principal) {
    std::string target = req_string(body, "TargetKeyId");  // required members first, as KMS
    auto [name, old_key] = existing_alias(body);
    if (target.rfind("alias/", 0) == 0 || target.find(":alias/") != std::string::npos)
      throw_validation("Aliases must refer to keys. Not aliases");
    LocalKey new_key = resolve(target);
    require_not_pending_deletion(new_key);
    if (new_key.key_spec != old_key.key_spec || new_key.key_usage != old_key.key_usage)
      throw_validation("The new target key must have the same key spec and key usage as the current one");
    // KMS checks kms:UpdateAlias on both keys.
    authorize(old_key, "kms:UpdateAlias", principal, {});
    authorize(new_key, "kms:UpdateAlias", principal, {});
    store.update_alias(name, new_key.key_id, static_cast<double>(clock.now_s()));
    return json::object();
  }

  json delete_alias(const json& body, const std::string& principal) {
    auto [name, key] = existing_alias(body);
    authorize(key, "kms:DeleteAlias", principal, {});
    store.delete_alias(name);
    return json::object();
  }

  json list_aliases(const json& body, const std::string& principal) {
    authorize_account(principal, "kms:ListAliases");
    delete_expired();
    std::string filter = opt_string(body, "KeyId");
    std::string filter_id = filter.empty() ? "" : resolve(filter).key_id;
    std::vector<LocalAlias> selected;
    for (auto& a : store.aliases())
      if (filter_id.empty() || a.target_key_id == filter_id) selected.push_back(std::move(a));
    const std::string prefix = store.arn_prefix();
    return paginate(body, selected, 1000, 50, [](const LocalAlias& a) { return a.name; },
                    [&](const LocalAlias& a) {
                      return json{{"AliasName", a.name}, {"AliasArn", prefix + a.name}, {"TargetKeyId", a.target_key_id},
                                  {"CreationDate", a.creation_date}, {"LastUpdatedDate", a.last_updated_date}};
                    },
                    "Aliases");
  }

  json put_key_policy(const json& body, const std::string& principal) {
    LocalKey k = resolve(req_string(body, "KeyId"));
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
    LocalKey k = resolve(req_string(body, "KeyId"));
    std::string name = opt_string(body, "PolicyName");
    if (!name.empty() && name != "default") throw_not_found("Policy name '" + name.substr(0, 64) + "' does not exist; only 'default'");
    authorize(k, "kms:GetKeyPolicy", principal, {});
    return {{"Policy", k.policy}, {"PolicyName", "default"}};
  }

  json encrypt(const json& body, const std::string& principal) {
    Bytes plaintext = blob_member(body, "Plaintext", true);
    LocalKey k = resolve(req_string(body, "KeyId"));
    if (plaintext.empty() || plaintext.size() > kMaxPlaintext) throw_validation("Plaintext must be 1..4096 bytes");
    check_algorithm(body);
    // Encrypt has no Recipient member: KMS ignores it like any unknown member, and so do we.
    auto ec = encryption_context(body);
    authorize(k, "kms:Encrypt", principal, context_keys(ec));
    require_enabled(k);
    if (k.key_usage != "ENCRYPT_DECRYPT") require_usage(k, "ENCRYPT_DECRYPT", "", "Encrypt");
    std::string alg = algorithm_for(k, body, ec);
    Bytes blob = alg == "SYMMETRIC_DEFAULT" ? seal_blob(k, plaintext, ec) : to_bytes(rsa_oaep(k, alg, plaintext, true).view());
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return {{"CiphertextBlob", base64_encode(blob)}, {"KeyId", k.arn}, {"EncryptionAlgorithm", alg}};
  }

  static void check_algorithm(const json& body) {
    check_enum(opt_string(body, "EncryptionAlgorithm"), "encryptionAlgorithm",
               {"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"});
  }

  // The request's EncryptionAlgorithm (default SYMMETRIC_DEFAULT), if key k can use it.
  static std::string algorithm_for(const LocalKey& k, const json& body, const std::map<std::string, std::string>& ec) {
    std::string alg = opt_string(body, "EncryptionAlgorithm");
    if (alg.empty()) alg = "SYMMETRIC_DEFAULT";
    auto allowed = encryption_algorithms(k);
    if (std::find(allowed.begin(), allowed.end(), alg) == allowed.end())
      throw KmsError(400, "InvalidKeyUsageException", k.arn + " (" + k.key_spec + ") cannot use encryption algorithm " + alg);
    if (alg != "SYMMETRIC_DEFAULT" && !ec.empty())
      throw_validation("EncryptionContext is supported only with symmetric encryption keys");
    return alg;
  }

  // RSAES-OAEP with the key's private key (decrypt) or its public half (encrypt).
  static SecureBytes rsa_oaep(const LocalKey& k, const std::string& alg, ByteView in, bool encrypt) {
    auto pkey = load_private_key(k.material.view());
    const EVP_MD* md = alg == "RSAES_OAEP_SHA_1" ? EVP_sha1() : EVP_sha256();
    size_t max_in = static_cast<size_t>(EVP_PKEY_get_size(pkey.get())) - 2 * static_cast<size_t>(EVP_MD_get_size(md)) - 2;
    if (encrypt && in.size() > max_in)
      throw_validation("Plaintext is " + std::to_string(in.size()) + " bytes; " + k.key_spec + " with " + alg + " takes at most " + std::to_string(max_in));
    ossl::Ptr<EVP_PKEY_CTX> c(EVP_PKEY_CTX_new(pkey.get(), nullptr));
    bool ok = c && (encrypt ? EVP_PKEY_encrypt_init(c.get()) : EVP_PKEY_decrypt_init(c.get())) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(c.get(), RSA_PKCS1_OAEP_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_oaep_md(c.get(), md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(c.get(), md) == 1;
    size_t n = 0;
    ok = ok && (encrypt ? EVP_PKEY_encrypt(c.get(), nullptr, &n, in.data(), in.size())
                        : EVP_PKEY_decrypt(c.get(), nullptr, &n, in.data(), in.size())) == 1;
    SecureBytes out(n);
    ok = ok && (encrypt ? EVP_PKEY_encrypt(c.get(), out.data(), &n, in.data(), in.size())
                        : EVP_PKEY_decrypt(c.get(), out.data(), &n, in.data(), in.size())) == 1;
    if (!ok) {
      if (!encrypt) throw KmsError(400, "InvalidCiphertextException", "");
      throw_openssl("RSAES-OAEP encryption");
    }
    SecureBytes exact(n);
    std::memcpy(exact.data(), out.data(), n);
    return exact;
  }

  json decrypt(const json& body, const std::string& principal) {
    Bytes blob = blob_member(body, "CiphertextBlob", true);
    if (blob.size() > 6144) throw_validation("CiphertextBlob must be at most 6144 bytes");
    check_algorithm(body);
    std::string want = opt_string(body, "KeyId");
    std::optional<LocalKey> named;
    if (!want.empty()) named = resolve(want);
    // An RSA ciphertext names no key: the request's KeyId does (KMS requires it then).
    bool asymmetric = named && named->key_spec != "SYMMETRIC_DEFAULT";
    LocalKey k = asymmetric ? named->clone() : resolve(blob_key_id(blob));
    // A blob naming an asymmetric key was never made by kms-local: its material is no AES key.
    if (!asymmetric && k.key_spec != "SYMMETRIC_DEFAULT") throw KmsError(400, "InvalidCiphertextException", "");
    if (named && named->key_id != k.key_id)
      throw KmsError(400, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.");
    auto ec = encryption_context(body);
    auto rcpt = recipient(body);
    auto ctx = context_keys(ec);
    if (rcpt) ctx.insert(rcpt->conditions.begin(), rcpt->conditions.end());
    authorize(k, "kms:Decrypt", principal, ctx);
    require_enabled(k);
    if (k.key_usage != "ENCRYPT_DECRYPT") require_usage(k, "ENCRYPT_DECRYPT", "", "Decrypt");
    std::string alg = algorithm_for(k, body, ec);
    SecureBytes plaintext = asymmetric ? rsa_oaep(k, alg, blob, false) : open_blob(k, blob, ec);
    json resp = {{"KeyId", k.arn}, {"EncryptionAlgorithm", alg}};
    release(resp, plaintext.view(), rcpt);
    return resp;
  }

  json generate_data_key(const json& body, const std::string& principal, bool with_plaintext) {
    LocalKey k = resolve(req_string(body, "KeyId"));
    int n = data_key_size(body);
    auto ec = encryption_context(body);
    std::optional<RecipientInfo> rcpt;
    if (with_plaintext) rcpt = recipient(body);
    else if (body.contains("Recipient")) throw_validation("Recipient is not supported by GenerateDataKeyWithoutPlaintext");
    auto ctx = context_keys(ec);
    if (rcpt) ctx.insert(rcpt->conditions.begin(), rcpt->conditions.end());
    authorize(k, with_plaintext ? "kms:GenerateDataKey" : "kms:GenerateDataKeyWithoutPlaintext", principal, ctx);
    require_enabled(k);
    require_usage(k, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", with_plaintext ? "GenerateDataKey" : "GenerateDataKeyWithoutPlaintext");
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
  // KMS's DryRun checks permissions without acting; kms-local says it cannot rather than act.
  if (auto d = member(body, "DryRun", json::value_t::boolean, "a boolean"); d && d->get<bool>())
    throw KmsError(400, "UnsupportedOperationException", "kms-local does not support DryRun");
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
  if (op == "UpdateAlias") return m.update_alias(body, principal);
  if (op == "DeleteAlias") return m.delete_alias(body, principal);
  if (op == "EnableKey") return m.set_enabled(body, principal, true);
  if (op == "DisableKey") return m.set_enabled(body, principal, false);
  if (op == "ScheduleKeyDeletion") return m.schedule_key_deletion(body, principal);
  if (op == "CancelKeyDeletion") return m.cancel_key_deletion(body, principal);
  if (op == "TagResource") return m.tag_resource(body, principal);
  if (op == "UntagResource") return m.untag_resource(body, principal);
  if (op == "ListResourceTags") return m.list_resource_tags(body, principal);
  if (op == "GetPublicKey") return m.get_public_key(body, principal);
  if (op == "GenerateDataKeyPair") return m.generate_data_key_pair(body, principal, true);
  if (op == "GenerateDataKeyPairWithoutPlaintext") return m.generate_data_key_pair(body, principal, false);
  if (op == "DeriveSharedSecret") return m.derive_shared_secret(body, principal);
  throw KmsError(400, "UnknownOperationException", "Operation " + op.substr(0, 64) + " is not supported by kms-local");
}

HttpServerResponse LocalKms::handle(const HttpServerRequest& req) {
  std::string request_id = random_uuid();
  // Date: SDKs correct their clock skew from it, so every answer (errors too) carries it.
  HttpServerResponse resp{200,
                          {{"x-amzn-RequestId", request_id},
                           {"Date", http_date(impl_->clock.now_s())},
                           {"Content-Type", "application/x-amz-json-1.1"}},
                          ""};
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
