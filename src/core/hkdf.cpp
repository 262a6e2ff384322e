#include "shield_nitro/core/hkdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <string>

#include "shield_nitro/core/error.h"

namespace shield_nitro {
namespace {

constexpr size_t kMaxLength = 255 * 32;  // RFC 5869 §2.3: 255 blocks of HashLen

// Fetched once: a fetch walks the provider tables, and the session and stream paths derive often.
EVP_KDF* hkdf_algorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (!kdf) throw_openssl("cannot fetch HKDF");
  return kdf;
}

SecureBytes derive(int mode, ByteView key, const ByteView* salt, ByteView info, size_t length) {
  if (length == 0 || length > kMaxLength)
    throw Error(Errc::kUsage, "HKDF-SHA256 cannot produce " + std::to_string(length) + " bytes (1 to " +
                                  std::to_string(kMaxLength) + ")");
  char digest[] = "SHA256";
  OSSL_PARAM params[6];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key.data()), key.size());
  // An empty octet string may carry a null pointer, which OpenSSL refuses: leave the
  // parameter out instead (no info is empty info; no salt is HashLen zeros, RFC 5869 §2.2).
  if (!info.empty())
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()), info.size());
  if (salt && !salt->empty())
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt->data()), salt->size());
  params[n] = OSSL_PARAM_construct_end();
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(hkdf_algorithm());
  if (!ctx) throw_openssl("cannot create an HKDF context");
  SecureBytes out(length);
  int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) throw_openssl("HKDF-SHA256 failed");
  return out;
}

}  // namespace

SecureBytes hkdf_sha256(ByteView ikm, ByteView salt, ByteView info, size_t length) {
  return derive(EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm, &salt, info, length);
}

SecureBytes hkdf_sha256_expand(ByteView prk, ByteView info, size_t length) {
  return derive(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, nullptr, info, length);
}

}  // namespace shield_nitro
