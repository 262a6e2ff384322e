// DER constants of the KMS Recipient envelope (CMS EnvelopedData, RSAES-OAEP-SHA256, AES-256-CBC),
// shared by the parser (cms.cpp, in the enclave) and the builder (cms_build.cpp, for kms-local and
// tests), which are separate objects so the enclave program links only the parser.
#pragma once

#include <cstdint>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::kms::cms_der {

// DER content octets of the object identifiers we accept.
inline const Bytes kOidEnvelopedData = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03};
inline const Bytes kOidData = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
inline const Bytes kOidRsaesOaep = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07};
inline const Bytes kOidMgf1 = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08};
inline const Bytes kOidSha256 = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
inline const Bytes kOidAes256Cbc = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a};

inline constexpr uint8_t kSequence = 0x30, kSet = 0x31, kInteger = 0x02, kOctetString = 0x04, kOid = 0x06, kNull = 0x05;
inline constexpr uint8_t kCtx0 = 0x80, kCtx1 = 0x81;  // context-specific tag numbers (class bits only)

}  // namespace shield_nitro::kms::cms_der
