#include "shield_nitro/shield/kdf.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <string>

#include "shield_nitro/core/error.h"

namespace shield_nitro::shield {
namespace {

EVP_KDF* hkdf_algorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (!kdf) throw_openssl("cannot fetch HKDF");
  return kdf;
}

// One HKDF-SHA256 call producing 32 bytes; an empty salt means Expand only.
SecureBytes hkdf_sha256(ByteView ikm, ByteView salt, std::string_view info, bool expand_only) {
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(hkdf_algorithm());
  if (!ctx) throw_openssl("cannot create HKDF context");
  int mode = expand_only ? EVP_KDF_HKDF_MODE_EXPAND_ONLY : EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND;
  char digest[] = "SHA256";
  OSSL_PARAM params[6];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()), ikm.size());
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size());
  if (!expand_only)
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size());
  params[n] = OSSL_PARAM_construct_end();
  SecureBytes out(32);
  int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) throw_openssl("HKDF-SHA256 failed");
  return out;
}

}  // namespace

SecureBytes derive_password_master(ByteView password, ByteView salt, std::string_view service, int iterations) {
  Bytes salt_service(salt.begin(), salt.end());
  salt_service.insert(salt_service.end(), service.begin(), service.end());
  SecureBytes out(32);
  if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(password.data()), static_cast<int>(password.size()),
                        salt_service.data(), static_cast<int>(salt_service.size()), iterations, EVP_sha256(),
                        static_cast<int>(out.size()), out.data()) != 1)
    throw_openssl("PBKDF2-HMAC-SHA256 failed");
  return out;
}

SecureBytes derive_aead_key(ByteView master) { return hkdf_sha256(master, {}, kAeadInfo, true); }

SecureBytes derive_stream_key(ByteView master, ByteView stream_salt) {
  return hkdf_sha256(master, stream_salt, kStreamInfo, false);
}

}  // namespace shield_nitro::shield
