#include "test_pki.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"

namespace shield_nitro::testpki {

KeyPtr new_key(const char* curve) { return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve), KeyFree()); }
KeyPtr new_rsa_key(int bits) {
  return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)), KeyFree());
}

std::string Cert::pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

namespace {

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  if (value.empty()) return;
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

Bytes to_der(X509* cert) {
  int len = i2d_X509(cert, nullptr);
  Bytes out(static_cast<size_t>(len));
  uint8_t* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

}  // namespace

Cert make_cert(const CertSpec& spec) {
  static long serial = 1000;
  Cert c;
  c.key = spec.key ? spec.key : new_key("P-384");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_NAME* name = spec.subject ? X509_NAME_dup(spec.subject) : X509_NAME_new();
  if (!spec.subject)
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509_set_subject_name(x, name);
  X509_set_issuer_name(x, spec.issuer ? X509_get_subject_name(spec.issuer->cert.get()) : name);
  X509_NAME_free(name);
  ASN1_TIME_set(X509_getm_notBefore(x), static_cast<time_t>(spec.not_before));
  ASN1_TIME_set(X509_getm_notAfter(x), static_cast<time_t>(spec.not_after));
  X509_set_pubkey(x, c.key.get());
  X509* issuer_cert = spec.issuer ? spec.issuer->cert.get() : x;
  add_ext(x, issuer_cert, NID_basic_constraints, spec.basic_constraints);
  add_ext(x, issuer_cert, NID_key_usage, spec.key_usage);
  EVP_PKEY* signer = spec.issuer ? spec.issuer->key.get() : c.key.get();
  EXPECT_GT(X509_sign(x, signer, EVP_sha384()), 0);
  c.cert = CertPtr(x, CertFree());
  c.der = to_der(x);
  return c;
}

Chain make_chain(int64_t t0, const std::vector<X509_NAME*>& names) {
  auto name = [&](size_t i) { return i < names.size() ? names[i] : nullptr; };
  const int64_t day = 86400;
  Chain ch;
  ch.root = make_cert({name(0), "test-root.nitro-sim", nullptr, nullptr, t0 - 30 * day, t0 + 30 * day,
                       "critical,CA:TRUE", "critical,keyCertSign,cRLSign,digitalSignature"});
  ch.regional = make_cert({name(1), "regional.test", &ch.root, nullptr, t0 - day, t0 + day,
                           "critical,CA:TRUE,pathlen:2", "critical,keyCertSign,cRLSign,digitalSignature"});
  ch.zonal = make_cert({name(2), "zonal.test", &ch.regional, nullptr, t0 - day, t0 + day,
                        "critical,CA:TRUE,pathlen:1", "critical,keyCertSign,cRLSign,digitalSignature"});
  ch.instance = make_cert({name(3), "instance.test", &ch.zonal, nullptr, t0 - day, t0 + day,
                           "critical,CA:TRUE,pathlen:0", "critical,keyCertSign"});
  ch.leaf = make_cert({name(4), "leaf.test", &ch.instance, nullptr, t0 - 60, t0 + 3 * 3600, "critical,CA:FALSE",
                       "digitalSignature,nonRepudiation"});
  return ch;
}

cbor::Value payload(const Chain& chain, uint64_t timestamp_ms) {
  cbor::MapEntries pcrs;
  for (int i = 0; i < 16; ++i) pcrs.push_back(cbor::entry(i, cbor::Value::bytes(Bytes(48, i == 0 ? 0x11 : 0))));
  cbor::Array bundle;
  for (const Bytes& b : chain.bundle()) bundle.push_back(cbor::Value::bytes(b));
  return cbor::Value::map({
      cbor::entry("module_id", cbor::Value::text("i-0123456789abcdef0-enc0123456789abcdef")),
      cbor::entry("digest", cbor::Value::text("SHA384")),
      cbor::entry("timestamp", cbor::Value::uint(timestamp_ms)),
      cbor::entry("pcrs", cbor::Value::map(std::move(pcrs))),
      cbor::entry("certificate", cbor::Value::bytes(chain.leaf.der)),
      cbor::entry("cabundle", cbor::Value::array(std::move(bundle))),
      cbor::entry("public_key", cbor::Value::null()),
      cbor::entry("user_data", cbor::Value::null()),
      cbor::entry("nonce", cbor::Value::null()),
  });
}

cbor::Value* field(cbor::Value& map, const std::string& key) {
  for (auto& [k, v] : map.as_map())
    if (k.is(cbor::Type::kText) && k.as_text() == key) return &v;
  return nullptr;
}

Bytes sign(const cbor::Value& p, EVP_PKEY* key) { return cose::sign1_es384(cbor::encode(p), key); }

}  // namespace shield_nitro::testpki
