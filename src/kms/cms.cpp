#include "shield_nitro/kms/cms.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>

#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "cms_der.h"
#include "shield_nitro/kms/sigv4.h"

namespace shield_nitro::kms {

namespace {

using namespace cms_der;

constexpr size_t kMaxEnvelope = 64 * 1024;

[[noreturn]] void bad(const std::string& what) { throw Error(Errc::kFormat, "CMS envelope: " + what); }
[[noreturn]] void refuse(const std::string& what) { throw Error(Errc::kUnsupported, "CMS envelope: " + what); }

struct Header {
  uint8_t tag = 0;  // identifier octet without the constructed bit
  bool constructed = false;
  bool indefinite = false;
  size_t length = 0;
};

Header read_header(ByteReader& r) {
  Header h;
  uint8_t id = 0, first = 0;
  if (!r.u8(id)) bad("truncated element header");
  if ((id & 0x1f) == 0x1f) bad("high tag numbers are not used in EnvelopedData");
  h.constructed = id & 0x20;
  h.tag = id & ~0x20;
  if (!r.u8(first)) bad("truncated length");
  if (first == 0x80) {
    if (!h.constructed) bad("indefinite length on a primitive element");
    h.indefinite = true;
  } else if (first & 0x80) {
    size_t n = first & 0x7f;
    if (n > 3) bad("length field too long");
    for (size_t i = 0; i < n; ++i) {
      uint8_t b = 0;
      if (!r.u8(b)) bad("truncated length");
      h.length = h.length << 8 | b;
    }
  } else {
    h.length = first;
  }
  if (!h.indefinite && h.length > r.remaining()) bad("element length runs past the end");
  return h;
}

// The children of one constructed element: a definite sub-range, or the parent's bytes up to
// the end-of-contents octets for an indefinite length.
class Container {
 public:
  Container(ByteReader& parent, uint8_t tag, const char* what) : parent_(parent), sub_({}) {
    Header h = read_header(parent);
    if (h.tag != (tag & ~0x20) || !h.constructed) bad(std::string("expected ") + what);
    indefinite_ = h.indefinite;
    if (!indefinite_) {
      ByteView body;
      parent.take(h.length, body);
      sub_ = ByteReader(body);
    }
  }
  ByteReader& r() { return indefinite_ ? parent_ : sub_; }
  bool indefinite() const { return indefinite_; }
  bool at_end() const {
    if (!indefinite_) return sub_.empty();
    ByteView rest = parent_.rest();
    return rest.size() >= 2 && rest[0] == 0 && rest[1] == 0;
  }
  void finish(const char* what) {
    if (!at_end()) bad(std::string("unexpected data at the end of ") + what);
    if (indefinite_) parent_.skip(2);
  }

 private:
  ByteReader& parent_;
  ByteReader sub_;
  bool indefinite_ = false;
};

ByteView read_primitive(ByteReader& r, uint8_t tag, const char* what) {
  Header h = read_header(r);
  if (h.tag != tag || h.constructed) bad(std::string("expected ") + what);
  ByteView v;
  r.take(h.length, v);
  return v;
}

void expect_oid(ByteReader& r, const Bytes& oid, const char* what) {
  ByteView v = read_primitive(r, kOid, "an OBJECT IDENTIFIER");
  if (!std::equal(v.begin(), v.end(), oid.begin(), oid.end())) refuse(std::string("algorithm/type is not ") + what);
}

void expect_version(ByteReader& r, uint8_t version, const char* what) {
  ByteView v = read_primitive(r, kInteger, "an INTEGER version");
  if (v.size() != 1 || v[0] != version)
    refuse(std::string(what) + " version must be " + std::to_string(version));
}

// AlgorithmIdentifier { sha256, NULL OPTIONAL }
void expect_sha256_algorithm(ByteReader& r, const char* what) {
  Container alg(r, kSequence, "a hash AlgorithmIdentifier");
  expect_oid(alg.r(), kOidSha256, what);
  if (!alg.at_end()) {
    ByteView null = read_primitive(alg.r(), kNull, "NULL hash parameters");
    if (!null.empty()) bad("NULL with content");
  }
  alg.finish("the hash AlgorithmIdentifier");
}

void parse_oaep_algorithm(ByteReader& r) {
  Container alg(r, kSequence, "keyEncryptionAlgorithm");
  expect_oid(alg.r(), kOidRsaesOaep, "RSAES-OAEP");
  Container params(alg.r(), kSequence, "RSAES-OAEP-params");
  {
    Container hash(params.r(), kCtx0, "OAEP hashAlgorithm [0] (SHA-1 default refused)");
    expect_sha256_algorithm(hash.r(), "SHA-256 as the OAEP hash");
    hash.finish("OAEP hashAlgorithm");
  }
  {
    Container mgf(params.r(), kCtx1, "OAEP maskGenAlgorithm [1]");
    Container mgf_alg(mgf.r(), kSequence, "the MGF AlgorithmIdentifier");
    expect_oid(mgf_alg.r(), kOidMgf1, "MGF1");
    expect_sha256_algorithm(mgf_alg.r(), "SHA-256 as the MGF1 hash");
    mgf_alg.finish("the MGF AlgorithmIdentifier");
    mgf.finish("OAEP maskGenAlgorithm");
  }
  if (!params.at_end()) refuse("an OAEP label (pSourceAlgorithm) is not used by KMS");
  params.finish("RSAES-OAEP-params");
  alg.finish("keyEncryptionAlgorithm");
}

void parse_recipient_infos(ByteReader& r, RecipientEnvelope& out) {
  Container set(r, kSet, "recipientInfos SET (originatorInfo is not used by KMS)");
  Container ktri(set.r(), kSequence, "a KeyTransRecipientInfo");
  expect_version(ktri.r(), 2, "KeyTransRecipientInfo");
  ByteView ski = read_primitive(ktri.r(), kCtx0, "a [0] subjectKeyIdentifier recipient id");
  out.subject_key_id = to_bytes(ski);
  parse_oaep_algorithm(ktri.r());
  ByteView ek = read_primitive(ktri.r(), kOctetString, "the encryptedKey OCTET STRING");
  if (ek.empty() || ek.size() > 512) bad("encryptedKey must be 1..512 bytes");
  out.encrypted_key = to_bytes(ek);
  ktri.finish("KeyTransRecipientInfo");
  if (!set.at_end()) refuse("exactly one recipient is expected");
  set.finish("recipientInfos");
}

void parse_encrypted_content(ByteReader& r, RecipientEnvelope& out) {
  Header h;
  {
    ByteReader probe = r;
    h = read_header(probe);
  }
  if (h.tag != kCtx0) bad("expected the [0] encryptedContent");
  if (!h.constructed) {
    out.ciphertext = to_bytes(read_primitive(r, kCtx0, "encryptedContent"));
    return;
  }
  out.chunked_content = true;
  Container chunks(r, kCtx0, "encryptedContent");
  while (!chunks.at_end()) {
    ByteView c = read_primitive(chunks.r(), kOctetString, "an OCTET STRING chunk of encryptedContent");
    out.ciphertext.insert(out.ciphertext.end(), c.begin(), c.end());
  }
  chunks.finish("encryptedContent");
}

void parse_encrypted_content_info(ByteReader& r, RecipientEnvelope& out) {
  Container eci(r, kSequence, "EncryptedContentInfo");
  expect_oid(eci.r(), kOidData, "id-data content");
  {
    Container alg(eci.r(), kSequence, "contentEncryptionAlgorithm");
    expect_oid(alg.r(), kOidAes256Cbc, "AES-256-CBC");
    ByteView iv = read_primitive(alg.r(), kOctetString, "the AES-CBC IV");
    if (iv.size() != 16) bad("the AES-CBC IV must be 16 bytes");
    out.iv = to_bytes(iv);
    alg.finish("contentEncryptionAlgorithm");
  }
  if (eci.at_end()) bad("encryptedContent is absent");
  parse_encrypted_content(eci.r(), out);
  eci.finish("EncryptedContentInfo");
  if (out.ciphertext.empty() || out.ciphertext.size() % 16 != 0)
    bad("ciphertext must be a non-empty multiple of the AES block size");
}


}  // namespace

RecipientEnvelope parse_recipient_envelope(ByteView ber) {
  if (ber.size() > kMaxEnvelope) bad("larger than 64 KiB");
  RecipientEnvelope out;
  ByteReader top(ber);
  {
    Container ci(top, kSequence, "a ContentInfo SEQUENCE");
    out.indefinite_length = ci.indefinite();
    expect_oid(ci.r(), kOidEnvelopedData, "id-envelopedData");
    Container explicit0(ci.r(), kCtx0, "the [0] content of ContentInfo");
    Container env(explicit0.r(), kSequence, "EnvelopedData");
    expect_version(env.r(), 2, "EnvelopedData");
    parse_recipient_infos(env.r(), out);
    parse_encrypted_content_info(env.r(), out);
    if (!env.at_end()) refuse("unprotectedAttrs are not used by KMS");
    env.finish("EnvelopedData");
    explicit0.finish("the [0] content");
    ci.finish("ContentInfo");
  }
  if (!top.empty()) bad(std::to_string(top.remaining()) + " trailing bytes after the ContentInfo");
  return out;
}

SecureBytes open_recipient_envelope(ByteView ber, EVP_PKEY* private_key) {
  RecipientEnvelope parts = parse_recipient_envelope(ber);
  if (!private_key) throw Error(Errc::kUsage, "CMS open: no private key");
  if (parts.encrypted_key.size() != static_cast<size_t>(EVP_PKEY_get_size(private_key)))
    throw Error(Errc::kAuth, "CMS open: the envelope's encrypted key does not match the recipient key size");
  ossl::Ptr<BIO> in(BIO_new_mem_buf(ber.data(), static_cast<int>(ber.size())));
  ossl::Ptr<CMS_ContentInfo> cms(in ? d2i_CMS_bio(in.get(), nullptr) : nullptr);
  if (!cms) {
    ERR_clear_error();
    bad("OpenSSL could not decode the envelope");
  }
  ossl::Ptr<BIO> out(BIO_new(BIO_s_secmem()));
  if (!out) throw_openssl("BIO_new");
  if (CMS_decrypt(cms.get(), private_key, nullptr, nullptr, out.get(), CMS_BINARY | CMS_DEBUG_DECRYPT) != 1) {
    ERR_clear_error();
    throw Error(Errc::kAuth, "CMS open: the recipient key does not open this envelope (RSA-OAEP or padding check failed)");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  if (len <= 0) throw Error(Errc::kFormat, "CMS open: empty plaintext");
  return SecureBytes(ByteView(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(len)));
}

}  // namespace shield_nitro::kms
