// KmsClient's asymmetric operations: GenerateDataKeyPair (with and without plaintext),
// DeriveSharedSecret and GetPublicKey. Private keys and shared secrets only ever land in
// SecureBytes; what KMS returns is checked against what was asked (spec, curve, sizes, and that
// the private key is the public key's) before the caller sees it.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>


#include "shield_nitro/core/error.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/kms/client.h"
#include "client_json.h"

namespace shield_nitro::kms {

namespace {

using detail::b64_field;
using detail::str_field;
using detail::text_list;

struct PairSpec {
  const char* name;
  int type;            // EVP_PKEY_RSA or EVP_PKEY_EC
  int bits;            // RSA modulus bits, EC field bits
  const char* group;   // EC curve name as OpenSSL reports it
};

constexpr PairSpec kPairSpecs[] = {
    {"RSA_2048", EVP_PKEY_RSA, 2048, ""},          {"RSA_3072", EVP_PKEY_RSA, 3072, ""},
    {"RSA_4096", EVP_PKEY_RSA, 4096, ""},          {"ECC_NIST_P256", EVP_PKEY_EC, 256, "prime256v1"},
    {"ECC_NIST_P384", EVP_PKEY_EC, 384, "secp384r1"}, {"ECC_NIST_P521", EVP_PKEY_EC, 521, "secp521r1"},
};

const PairSpec& pair_spec(const std::string& name) {
  for (const auto& s : kPairSpecs)
    if (name == s.name) return s;
  throw Error(Errc::kUsage, "key pair spec '" + name +
                                "' is not one of RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521");
}

ossl::Ptr<EVP_PKEY> parse_spki(ByteView der, const std::string& what, Errc code = Errc::kFormat) {
  const unsigned char* p = der.data();
  ossl::Ptr<EVP_PKEY> key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!key || p != der.data() + der.size())
    throw Error(code, what + " is not a DER SubjectPublicKeyInfo");
  return key;
}

std::string group_of(EVP_PKEY* key) {
  char name[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1) return "";
  return name;
}

bool matches_spec(EVP_PKEY* key, const PairSpec& s) {
  if (EVP_PKEY_get_base_id(key) != s.type) return false;
  if (s.type == EVP_PKEY_RSA) return EVP_PKEY_get_bits(key) == s.bits;
  return group_of(key) == s.group;
}

// The pair KMS returned must be of the spec asked for, and the private key (DER PKCS #8) must
// belong to the public key: a mismatch would sign or decrypt with a key nobody can verify.
void check_pair(const Bytes& public_der, const SecureBytes* private_der, const PairSpec& spec, const std::string& op) {
  auto pub = parse_spki(public_der, "KMS " + op + ": PublicKey");
  if (!matches_spec(pub.get(), spec))
    throw Error(Errc::kFormat, "KMS " + op + ": PublicKey is not a " + spec.name + " key");
  if (!private_der) return;
  const unsigned char* p = private_der->data();
  ossl::Ptr<EVP_PKEY> priv(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(private_der->size())));
  if (!priv || p != private_der->data() + private_der->size())
    throw Error(Errc::kFormat, "KMS " + op + ": the private key is not DER PKCS #8");
  if (EVP_PKEY_eq(priv.get(), pub.get()) != 1)
    throw Error(Errc::kVerify, "KMS " + op + ": the private key does not belong to PublicKey");
}

// The public parts of a GenerateDataKeyPair(WithoutPlaintext) answer into out, checked against
// the spec asked for (and against out.private_key when there is one).
void fill_pair(const nlohmann::json& resp, const PairSpec& spec, const std::string& op, DataKeyPairResult& out) {
  if (std::string s = str_field(resp, "KeyPairSpec"); !s.empty() && s != spec.name)
    throw Error(Errc::kFormat, "KMS " + op + ": asked for " + spec.name + ", got " + s);
  out.key_id = str_field(resp, "KeyId");
  out.key_pair_spec = spec.name;
  out.public_key = b64_field(resp, "PublicKey", op);
  out.private_key_ciphertext_blob = b64_field(resp, "PrivateKeyCiphertextBlob", op);
  check_pair(out.public_key, out.private_key.empty() ? nullptr : &out.private_key, spec, op);
}

nlohmann::json pair_request(const std::string& key_id, const PairSpec& spec, const EncryptionContext& context) {
  nlohmann::json req = {{"KeyId", key_id}, {"KeyPairSpec", spec.name}};
  if (!context.empty()) req["EncryptionContext"] = detail::context_json(context);
  return req;
}

}  // namespace

nlohmann::json detail::call_releasing(KmsClient& client, const std::string& op, const nlohmann::json& request,
                                      const Recipient* recipient, const char* clear_field, SecureBytes& released) {
  nlohmann::json resp;
  if (recipient) {
    resp = call_with_recipient(client, op, request, recipient, released);
    refuse_clear_secret(resp, clear_field, op);
  } else {
    resp = call_json(client, op, request);
    released = take_secret(resp, clear_field, op);
  }
  return resp;
}

DataKeyPairResult KmsClient::generate_data_key_pair(const std::string& key_id, const std::string& key_pair_spec,
                                                    const EncryptionContext& context, const Recipient* recipient) {
  const std::string op = "GenerateDataKeyPair";
  const PairSpec& spec = pair_spec(key_pair_spec);
  DataKeyPairResult out;
  auto resp = detail::call_releasing(*this, op, pair_request(key_id, spec, context), recipient, "PrivateKeyPlaintext", out.private_key);
  if (out.private_key.empty()) throw Error(Errc::kFormat, "KMS " + op + ": the private key is empty");
  fill_pair(resp, spec, op, out);
  return out;
}

DataKeyPairResult KmsClient::generate_data_key_pair_without_plaintext(const std::string& key_id,
                                                                      const std::string& key_pair_spec,
                                                                      const EncryptionContext& context) {
  const std::string op = "GenerateDataKeyPairWithoutPlaintext";
  const PairSpec& spec = pair_spec(key_pair_spec);
  nlohmann::json resp = detail::call_json(*this, op, pair_request(key_id, spec, context));
  detail::refuse_clear_secret(resp, "PrivateKeyPlaintext", op);
  DataKeyPairResult out;
  fill_pair(resp, spec, op, out);
  return out;
}

SharedSecretResult KmsClient::derive_shared_secret(const std::string& key_id, ByteView peer_public_key,
                                                   const Recipient* recipient, const std::string& algorithm) {
  const std::string op = "DeriveSharedSecret";
  if (algorithm != "ECDH") throw Error(Errc::kUsage, "key agreement algorithm '" + algorithm + "' is not ECDH");
  // Checked here so a wrong file is one clear line, not KMS's ValidationException; the curve
  // also fixes the secret's size (its field size), checked on the answer.
  auto peer = parse_spki(peer_public_key, "the peer's public key", Errc::kUsage);
  std::string group = EVP_PKEY_get_base_id(peer.get()) == EVP_PKEY_EC ? group_of(peer.get()) : "";
  size_t secret_size = group == "prime256v1" ? 32 : group == "secp384r1" ? 48 : group == "secp521r1" ? 66 : 0;
  if (secret_size == 0)
    throw Error(Errc::kUsage, "the peer's public key must be an EC key on NIST P-256, P-384 or P-521 (ECC_NIST_*)");
  nlohmann::json req = {{"KeyId", key_id}, {"KeyAgreementAlgorithm", algorithm}, {"PublicKey", base64_encode(peer_public_key)}};
  SharedSecretResult out;
  auto resp = detail::call_releasing(*this, op, req, recipient, "SharedSecret", out.shared_secret);
  if (out.shared_secret.size() != secret_size)
    throw Error(Errc::kFormat, "KMS " + op + ": shared secret has " + std::to_string(out.shared_secret.size()) +
                                   " bytes, the curve gives " + std::to_string(secret_size));
  out.key_id = str_field(resp, "KeyId");
  out.key_agreement_algorithm = str_field(resp, "KeyAgreementAlgorithm");
  return out;
}

PublicKeyResult KmsClient::get_public_key(const std::string& key_id) {
  const std::string op = "GetPublicKey";
  nlohmann::json resp = detail::call_json(*this, op, {{"KeyId", key_id}});
  PublicKeyResult out;
  out.key_id = str_field(resp, "KeyId");
  out.key_spec = str_field(resp, "KeySpec");
  if (out.key_spec.empty()) out.key_spec = str_field(resp, "CustomerMasterKeySpec");  // older name, same values
  out.key_usage = str_field(resp, "KeyUsage");
  out.public_key = b64_field(resp, "PublicKey", op);
  parse_spki(out.public_key, "KMS " + op + ": PublicKey");
  out.encryption_algorithms = text_list(resp, "EncryptionAlgorithms");
  out.signing_algorithms = text_list(resp, "SigningAlgorithms");
  out.key_agreement_algorithms = text_list(resp, "KeyAgreementAlgorithms");
  return out;
}

}  // namespace shield_nitro::kms
