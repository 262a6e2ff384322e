// The KMS Recipient envelope builder: what KMS does when it answers with CiphertextForRecipient.
// kms-local and the tests use it; the enclave only parses (cms.cpp).
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>

#include "cms_der.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/kms/cms.h"
#include "shield_nitro/kms/sigv4.h"

namespace shield_nitro::kms {

namespace {

using namespace cms_der;

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

ossl::Ptr<EVP_PKEY> load_rsa_spki(ByteView spki) {
  const unsigned char* p = spki.data();
  ossl::Ptr<EVP_PKEY> key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
  if (!key || p != spki.data() + spki.size()) throw Error(Errc::kFormat, "recipient public key is not a DER SubjectPublicKeyInfo");
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) throw Error(Errc::kUnsupported, "recipient public key is not RSA");
  int bits = EVP_PKEY_get_bits(key.get());
  if (bits < 2048 || bits > 4096) throw Error(Errc::kUnsupported, "recipient RSA key must be 2048..4096 bits, got " + std::to_string(bits));
  return key;
}

Bytes rsa_oaep_sha256_encrypt(EVP_PKEY* key, ByteView data) {
  ossl::Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(key, nullptr));
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
  ossl::Ptr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
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

Bytes build_recipient_envelope(ByteView plaintext, ByteView recipient_spki_der, Random& rng) {
  if (plaintext.empty()) throw Error(Errc::kUsage, "CMS build: empty plaintext");
  ossl::Ptr<EVP_PKEY> key = load_rsa_spki(recipient_spki_der);
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
