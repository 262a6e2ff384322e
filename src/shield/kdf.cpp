#include "shield_nitro/shield/kdf.h"

#include <openssl/evp.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/hkdf.h"

namespace shield_nitro::shield {

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

SecureBytes derive_aead_key(ByteView master) { return hkdf_sha256_expand(master, as_bytes(kAeadInfo), 32); }

SecureBytes derive_stream_key(ByteView master, ByteView stream_salt) {
  return hkdf_sha256(master, stream_salt, as_bytes(kStreamInfo), 32);
}

}  // namespace shield_nitro::shield
