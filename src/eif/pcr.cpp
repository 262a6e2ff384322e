#include "shield_nitro/eif/pcr.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "shield_nitro/core/error.h"

namespace shield_nitro::eif {

struct Sha384::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha384::Sha384() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha384(), nullptr) != 1) throw_openssl("SHA-384 init");
}

Sha384::~Sha384() = default;

Sha384::Sha384(const Sha384& other) : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (!ctx_->md || EVP_MD_CTX_copy_ex(ctx_->md, other.ctx_->md) != 1) throw_openssl("SHA-384 copy");
}

Sha384& Sha384::operator=(const Sha384& other) {
  if (this != &other && EVP_MD_CTX_copy_ex(ctx_->md, other.ctx_->md) != 1) throw_openssl("SHA-384 copy");
  return *this;
}

void Sha384::update(ByteView data) {
  if (!data.empty() && EVP_DigestUpdate(ctx_->md, data.data(), data.size()) != 1) throw_openssl("SHA-384 update");
}

Digest48 Sha384::final() {
  Digest48 out{};
  unsigned len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, out.data(), &len) != 1 || len != out.size()) throw_openssl("SHA-384 final");
  if (EVP_DigestInit_ex(ctx_->md, EVP_sha384(), nullptr) != 1) throw_openssl("SHA-384 init");
  return out;
}

Digest48 sha384(ByteView data) {
  Sha384 h;
  h.update(data);
  return h.final();
}

Digest48 pcr_extend_from_zero(const Digest48& content_digest) {
  Sha384 h;
  Digest48 zero{};
  h.update(zero);
  h.update(content_digest);
  return h.final();
}

Digest48 pcr_of(ByteView content) { return pcr_extend_from_zero(sha384(content)); }

Digest48 pcr8_of_certificate(ByteView cert_pem) {
  BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (!cert) throw Error(Errc::kFormat, "signing certificate: no PEM certificate found");
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  X509_free(cert);
  if (len <= 0) throw_openssl("certificate DER encoding");
  Digest48 pcr = pcr_of(ByteView(der, static_cast<size_t>(len)));
  OPENSSL_free(der);
  return pcr;
}

const char* hash_label(HashLabel l) { return l == HashLabel::kLegacy ? "Sha384 { ... }" : "Sha512_48 { .. }"; }

HashLabel parse_hash_label(const std::string& s) {
  if (s == "current") return HashLabel::kCurrent;
  if (s == "legacy") return HashLabel::kLegacy;
  throw Error(Errc::kUsage, "--hash-label must be 'current' (nitro-cli 1.5) or 'legacy' (nitro-cli <= 1.4)");
}

}  // namespace shield_nitro::eif
