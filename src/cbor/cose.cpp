#include "shield_nitro/cbor/cose.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/obj_mac.h>

#include <cstring>
#include <memory>
#include <string>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::cose {
namespace {

constexpr uint64_t kTagSign1 = 18;
constexpr int64_t kHeaderAlg = 1;
constexpr int64_t kAlgEs384 = -35;
constexpr size_t kScalarSize = 48;

[[noreturn]] void bad(const std::string& why) { throw Error(Errc::kFormat, "cose: " + why); }

using SigPtr = ossl::Ptr<ECDSA_SIG>;
using MdCtxPtr = ossl::Ptr<EVP_MD_CTX>;

const cbor::Value& unwrap_tag(const cbor::Value& top, bool& tagged) {
  tagged = top.is(cbor::Type::kTag);
  if (!tagged) return top;
  if (top.tag_number() != kTagSign1) bad("tag " + std::to_string(top.tag_number()) + " is not COSE_Sign1 (18)");
  return top.tagged();
}

// The protected header must be {1: -35} and nothing else, in its one canonical encoding.
void check_protected(const Bytes& header) {
  cbor::Limits lim = cbor::Limits::strict();
  lim.allow_tags = false;
  cbor::Value h;
  try {
    h = cbor::decode(header, lim);
  } catch (const Error& e) {
    bad(std::string("protected header: ") + e.what());
  }
  if (!h.is(cbor::Type::kMap)) bad("protected header is not a map");
  const auto& m = h.as_map();
  if (m.size() != 1 || !m[0].first.is_integer() || m[0].first.as_int() != kHeaderAlg)
    bad("protected header must hold exactly the alg parameter (1)");
  if (!m[0].second.is_integer() || m[0].second.as_int() != kAlgEs384)
    bad("alg is not ES384 (-35)");
  if (header.size() != sizeof(kProtectedEs384) || std::memcmp(header.data(), kProtectedEs384, header.size()) != 0)
    bad("protected header {1: -35} is not in canonical form");
}

const Bytes& bstr_field(const cbor::Value& v, const char* name) {
  if (!v.is(cbor::Type::kBytes)) bad(std::string(name) + " is not a byte string");
  return v.as_bytes();
}

Bytes digest_sign_der(ByteView msg, EVP_PKEY* key) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, msg.data(), msg.size()) != 1)
    throw_openssl("cose: ES384 sign init");
  Bytes der(len);
  if (EVP_DigestSign(ctx.get(), der.data(), &len, msg.data(), msg.size()) != 1) throw_openssl("cose: ES384 sign");
  der.resize(len);
  return der;
}

}  // namespace

bool is_p384(EVP_PKEY* key) {
  if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &len) != 1) return false;
  return OBJ_txt2nid(group) == NID_secp384r1;
}

Sign1 decode_sign1(ByteView data) {
  cbor::Value top;
  try {
    top = cbor::decode(data, cbor::Limits::strict());
  } catch (const Error& e) {
    bad(e.what());
  }
  Sign1 out;
  const cbor::Value& arr = unwrap_tag(top, out.tagged);
  if (!arr.is(cbor::Type::kArray)) bad("COSE_Sign1 is not an array");
  // The Sig_structure covers the header and payload bytes, never the outer array's head, so
  // its length encoding cannot change what is verified.
  out.indefinite = arr.indefinite();
  const auto& items = arr.as_array();
  if (items.size() != 4) bad("COSE_Sign1 array has " + std::to_string(items.size()) + " items, not 4");
  out.protected_header = bstr_field(items[0], "protected header");
  check_protected(out.protected_header);
  if (!items[1].is(cbor::Type::kMap)) bad("unprotected header is not a map");
  if (!items[1].as_map().empty()) bad("unprotected header is not empty");
  out.payload = bstr_field(items[2], "payload");
  out.signature = bstr_field(items[3], "signature");
  if (out.signature.size() != kEs384SignatureSize)
    bad("signature is " + std::to_string(out.signature.size()) + " bytes, not a 96-byte r||s");
  return out;
}

Bytes sig_structure(ByteView protected_header, ByteView payload) {
  Bytes out;
  out.reserve(payload.size() + protected_header.size() + 24);
  cbor::Writer w(out);
  w.begin_array(4);
  w.text("Signature1");
  w.bytes(protected_header);
  w.bytes({});
  w.bytes(payload);
  return out;
}

Bytes es384_raw_to_der(ByteView raw) {
  if (raw.size() != kEs384SignatureSize) bad("ES384 signature must be 96 bytes");
  SigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw.data(), kScalarSize, nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + kScalarSize, kScalarSize, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    throw_openssl("cose: ECDSA_SIG from r||s");
  }
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) throw_openssl("cose: encode ECDSA_SIG");
  Bytes der(static_cast<size_t>(len));
  uint8_t* p = der.data();
  i2d_ECDSA_SIG(sig.get(), &p);
  return der;
}

Bytes es384_der_to_raw(ByteView der) {
  const uint8_t* p = der.data();
  SigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != der.data() + der.size()) bad("malformed DER ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  Bytes raw(kEs384SignatureSize);
  if (BN_bn2binpad(r, raw.data(), kScalarSize) < 0 || BN_bn2binpad(s, raw.data() + kScalarSize, kScalarSize) < 0)
    bad("ECDSA signature integer wider than 48 bytes");
  return raw;
}

void verify_es384(const Sign1& msg, EVP_PKEY* public_key) {
  if (!is_p384(public_key)) throw Error(Errc::kVerify, "cose: signing key is not an EC P-384 key");
  if (msg.signature.size() != kEs384SignatureSize) throw Error(Errc::kVerify, "cose: signature is not 96 bytes");
  Bytes der = es384_raw_to_der(msg.signature);
  Bytes tbs = sig_structure(msg.protected_header, msg.payload);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha384(), nullptr, public_key) != 1)
    throw_openssl("cose: ES384 verify init");
  int rc = EVP_DigestVerify(ctx.get(), der.data(), der.size(), tbs.data(), tbs.size());
  ERR_clear_error();
  if (rc != 1) throw Error(Errc::kVerify, "cose: ES384 signature does not verify");
}

Bytes sign1_es384(ByteView payload, EVP_PKEY* private_key) {
  if (!is_p384(private_key)) throw Error(Errc::kUsage, "cose: ES384 needs an EC P-384 key");
  Bytes der = digest_sign_der(sig_structure(kProtectedEs384, payload), private_key);
  Bytes raw = es384_der_to_raw(der);
  Bytes out;
  out.reserve(payload.size() + 112);
  cbor::Writer w(out);
  w.begin_array(4);
  w.bytes(kProtectedEs384);
  w.begin_map(0);
  w.bytes(payload);
  w.bytes(raw);
  return out;
}

}  // namespace shield_nitro::cose
