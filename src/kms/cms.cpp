#include "shield_nitro/kms/cms.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/kms/sigv4.h"

namespace shield_nitro::kms {

namespace {

// DER content octets of the object identifiers we accept.
const Bytes kOidEnvelopedData = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03};
const Bytes kOidData = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
const Bytes kOidRsaesOaep = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07};
const Bytes kOidMgf1 = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08};
const Bytes kOidSha256 = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
const Bytes kOidAes256Cbc = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a};

constexpr uint8_t kSequence = 0x30, kSet = 0x31, kInteger = 0x02, kOctetString = 0x04, kOid = 0x06, kNull = 0x05;
constexpr uint8_t kCtx0 = 0x80, kCtx1 = 0x81;  // context-specific tag numbers (class bits only)
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

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using CmsPtr = std::unique_ptr<CMS_ContentInfo, decltype(&CMS_ContentInfo_free)>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

// ---- DER/BER writer for the builder ----

void put_length(Bytes& out, size_t n) {
  if (n < 0x80) {
    out.push_back(static_cast<uint8_t>(n));
  } else if (n < 0x100) {
    out.insert(out.end(), {0x81, static_cast<uint8_t>(n)});
  } else {
    out.insert(out.end(), {0x82, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
  }
}

Bytes tlv(uint8_t tag, ByteView content) {
  Bytes out{tag};
  put_length(out, content.size());
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes indefinite(uint8_t tag, ByteView content) {
  Bytes out{tag, 0x80};
  out.insert(out.end(), content.begin(), content.end());
  out.insert(out.end(), {0x00, 0x00});
  return out;
}

Bytes sha256_algorithm() { return tlv(kSequence, cat({tlv(kOid, kOidSha256), {kNull, 0x00}})); }

Bytes oaep_algorithm() {
  Bytes params = cat({tlv(0xa0, sha256_algorithm()), tlv(0xa1, tlv(kSequence, cat({tlv(kOid, kOidMgf1), sha256_algorithm()})))});
  return tlv(kSequence, cat({tlv(kOid, kOidRsaesOaep), tlv(kSequence, params)}));
}

PkeyPtr load_rsa_spki(ByteView spki) {
  const unsigned char* p = spki.data();
  PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())), EVP_PKEY_free);
  if (!key || p != spki.data() + spki.size()) throw Error(Errc::kFormat, "recipient public key is not a DER SubjectPublicKeyInfo");
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) throw Error(Errc::kUnsupported, "recipient public key is not RSA");
  int bits = EVP_PKEY_get_bits(key.get());
  if (bits < 2048 || bits > 4096) throw Error(Errc::kUnsupported, "recipient RSA key must be 2048..4096 bits, got " + std::to_string(bits));
  return key;
}

Bytes rsa_oaep_sha256_encrypt(EVP_PKEY* key, ByteView data) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr), EVP_PKEY_CTX_free);
  size_t len = 0;
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_encrypt(ctx.get(), nullptr, &len, data.data(), data.size()) != 1)
    throw_openssl("RSA-OAEP setup");
  Bytes out(len);
  if (EVP_PKEY_encrypt(ctx.get(), out.data(), &len, data.data(), data.size()) != 1) throw_openssl("RSA-OAEP encrypt");
  out.resize(len);
  return out;
}

Bytes aes256_cbc_encrypt(ByteView key, ByteView iv, ByteView plaintext) {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  Bytes out(plaintext.size() + 16);
  int n1 = 0, n2 = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_cbc(), nullptr, key.data(), iv.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &n1, plaintext.data(), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + n1, &n2) != 1)
    throw_openssl("AES-256-CBC encrypt");
  out.resize(static_cast<size_t>(n1 + n2));
  return out;
}

Bytes chunked_content(ByteView ciphertext) {
  constexpr size_t kChunk = 1024;
  Bytes chunks;
  for (size_t off = 0; off < ciphertext.size(); off += kChunk) {
    Bytes c = tlv(kOctetString, ciphertext.subspan(off, std::min(kChunk, ciphertext.size() - off)));
    chunks.insert(chunks.end(), c.begin(), c.end());
  }
  return indefinite(0xa0, chunks);
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
  BioPtr in(BIO_new_mem_buf(ber.data(), static_cast<int>(ber.size())), BIO_free);
  CmsPtr cms(in ? d2i_CMS_bio(in.get(), nullptr) : nullptr, CMS_ContentInfo_free);
  if (!cms) {
    ERR_clear_error();
    bad("OpenSSL could not decode the envelope");
  }
  BioPtr out(BIO_new(BIO_s_secmem()), BIO_free);
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

Bytes build_recipient_envelope(ByteView plaintext, ByteView recipient_spki_der, Random& rng) {
  if (plaintext.empty()) throw Error(Errc::kUsage, "CMS build: empty plaintext");
  PkeyPtr key = load_rsa_spki(recipient_spki_der);
  SecureBytes cek(32);
  rng.fill(cek.span());
  Bytes iv = rng.bytes(16);
  Bytes encrypted_key = rsa_oaep_sha256_encrypt(key.get(), cek.view());
  Bytes ciphertext = aes256_cbc_encrypt(cek.view(), iv, plaintext);
  Bytes ski = hex_decode(sha256_hex(recipient_spki_der));
  Bytes ktri = tlv(kSequence, cat({{kInteger, 1, 2}, tlv(kCtx0, ski), oaep_algorithm(), tlv(kOctetString, encrypted_key)}));
  Bytes content_alg = tlv(kSequence, cat({tlv(kOid, kOidAes256Cbc), tlv(kOctetString, iv)}));
  Bytes eci = indefinite(kSequence, cat({tlv(kOid, kOidData), content_alg, chunked_content(ciphertext)}));
  Bytes env = indefinite(kSequence, cat({{kInteger, 1, 2}, tlv(kSet, ktri), eci}));
  return indefinite(kSequence, cat({tlv(kOid, kOidEnvelopedData), indefinite(0xa0, env)}));
}

}  // namespace shield_nitro::kms
