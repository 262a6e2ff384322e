#include "shield_nitro/eif/signature.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <optional>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::eif {
namespace {

using X509Ptr = ossl::Ptr<X509>;
using PkeyPtr = ossl::Ptr<EVP_PKEY>;

struct CoseAlg {
  int64_t id;
  const EVP_MD* md;
  size_t coord;  // bytes per r and s
};

CoseAlg alg_for_key(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) throw Error(Errc::kUnsupported, "signing key is not an EC key");
  switch (EVP_PKEY_get_bits(key)) {
    case 256: return {-7, EVP_sha256(), 32};
    case 384: return {-35, EVP_sha384(), 48};
    case 521: return {-36, EVP_sha512(), 66};
    default: throw Error(Errc::kUnsupported, "signing key curve must be P-256, P-384 or P-521");
  }
}

X509Ptr load_cert(ByteView pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* c = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (!c) throw Error(Errc::kFormat, "signing certificate: no PEM certificate found");
  return X509Ptr(c);
}

PkeyPtr load_key(ByteView pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* k = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (!k) throw Error(Errc::kFormat, "signing key: no PEM private key found (encrypted keys are not supported)");
  return PkeyPtr(k);
}

Bytes protected_header(int64_t alg) {
  Bytes p;
  cbor::Writer w(p);
  w.begin_map(1);
  w.uint(1);
  w.integer(alg);
  return p;
}

Bytes der_to_raw(ByteView der, size_t coord) {
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (!sig) throw_openssl("ECDSA signature decoding");
  Bytes raw(2 * coord);
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  bool ok = BN_bn2binpad(r, raw.data(), static_cast<int>(coord)) > 0 &&
            BN_bn2binpad(s, raw.data() + coord, static_cast<int>(coord)) > 0;
  ECDSA_SIG_free(sig);
  if (!ok) throw_openssl("ECDSA signature encoding");
  return raw;
}

Bytes raw_to_der(ByteView raw) {
  size_t coord = raw.size() / 2;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(coord), nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + coord, static_cast<int>(coord), nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    throw_openssl("ECDSA signature");
  }
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0) throw_openssl("ECDSA signature DER");
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

struct CoseSign1 {
  Bytes protected_bytes;
  Bytes payload;
  Bytes signature;
};

CoseSign1 decode_cose(ByteView bytes) {
  cbor::Value v = cbor::decode(bytes);
  if (v.is(cbor::Type::kTag) && v.tag_number() == 18) v = cbor::Value(v.tagged());  // accept tagged too
  const cbor::Array& a = v.as_array();
  if (a.size() != 4) throw Error(Errc::kFormat, "COSE_Sign1 must be an array of 4");
  return {a[0].as_bytes(), a[2].as_bytes(), a[3].as_bytes()};
}

int64_t protected_alg(ByteView protected_bytes) {
  const cbor::Value* alg = nullptr;
  cbor::Value h = cbor::decode(protected_bytes);
  if (h.is(cbor::Type::kMap)) alg = h.find_int(1);
  if (!alg) throw Error(Errc::kFormat, "COSE protected header has no alg");
  return alg->as_int();
}

// serde's Vec<u8>: an array of uints, one per byte.
void put_uint_array(cbor::Writer& w, ByteView b) {
  w.begin_array(b.size());
  for (uint8_t x : b) w.uint(x);
}

Bytes uint_array(const cbor::Value& v, const char* what) {
  Bytes out;
  for (const cbor::Value& x : v.as_array()) {
    uint64_t b = x.as_uint();
    if (b > 255) throw Error(Errc::kFormat, std::string("signature section: ") + what + " holds a value above 255");
    out.push_back(static_cast<uint8_t>(b));
  }
  return out;
}

}  // namespace

Bytes encode_pcr_info(uint32_t register_index, ByteView register_value) {
  Bytes out;
  cbor::Writer w(out);
  w.begin_map(2);
  w.text("register_index");
  w.uint(register_index);
  w.text("register_value");
  put_uint_array(w, register_value);
  return out;
}

Bytes encode_signature_section(const std::vector<SignatureEntry>& entries) {
  Bytes out;
  cbor::Writer w(out);
  w.begin_array(entries.size());
  for (const auto& e : entries) {
    w.begin_map(2);
    w.text("signing_certificate");
    put_uint_array(w, e.certificate_pem);
    w.text("signature");
    put_uint_array(w, e.cose_sign1);
  }
  return out;
}

std::vector<SignatureEntry> decode_signature_section(ByteView section) {
  cbor::Limits lim;
  lim.max_depth = 4;
  lim.allow_tags = lim.allow_floats = lim.allow_undefined = false;
  cbor::Value v = cbor::decode(section, lim);
  if (v.as_array().empty()) throw Error(Errc::kFormat, "signature section holds no signature");
  std::vector<SignatureEntry> out;
  for (const cbor::Value& item : v.as_array()) {
    const cbor::Value* cert = item.find("signing_certificate");
    const cbor::Value* sig = item.find("signature");
    if (!cert || !sig || item.as_map().size() != 2)
      throw Error(Errc::kFormat, "signature entry must be {signing_certificate, signature}");
    out.push_back({uint_array(*cert, "signing_certificate"), uint_array(*sig, "signature")});
  }
  return out;
}

SignatureEntry sign_pcr0(const Digest48& pcr0, ByteView cert_pem, ByteView key_pem) {
  X509Ptr cert = load_cert(cert_pem);
  PkeyPtr key = load_key(key_pem);
  if (EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()) != 1)
    throw Error(Errc::kUsage, "the signing key does not match the signing certificate");
  CoseAlg alg = alg_for_key(key.get());
  Bytes prot = protected_header(alg.id);
  Bytes payload = encode_pcr_info(0, pcr0);
  Bytes tbs = cose::sig_structure(prot, payload);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  Bytes der;
  bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, alg.md, nullptr, key.get()) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, tbs.data(), tbs.size()) == 1;
  if (ok) {
    der.resize(len);
    ok = EVP_DigestSign(ctx, der.data(), &len, tbs.data(), tbs.size()) == 1;
    der.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) throw_openssl("ECDSA signing of PCR0");
  Bytes cose;
  cbor::Writer w(cose);
  w.begin_array(4);
  w.bytes(prot);
  w.begin_map(0);
  w.bytes(payload);
  w.bytes(der_to_raw(der, alg.coord));
  return {to_bytes(cert_pem), cose};
}

bool verify_pcr0_signature(const SignatureEntry& entry, const Digest48& pcr0) {
  X509Ptr cert = load_cert(entry.certificate_pem);
  CoseSign1 c = decode_cose(entry.cose_sign1);
  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  if (!pub) throw Error(Errc::kFormat, "signing certificate has no usable public key");
  CoseAlg alg = alg_for_key(pub);
  if (protected_alg(c.protected_bytes) != alg.id || c.signature.size() != 2 * alg.coord) return false;
  Bytes der = raw_to_der(c.signature);
  Bytes tbs = cose::sig_structure(c.protected_bytes, c.payload);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, alg.md, nullptr, pub) == 1 &&
            EVP_DigestVerify(ctx, der.data(), der.size(), tbs.data(), tbs.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok && ct_equal(c.payload, encode_pcr_info(0, pcr0));
}

}  // namespace shield_nitro::eif
