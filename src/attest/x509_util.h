// Internal OpenSSL helpers of the attest module: owning pointers, strict DER parsing, times.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>

#include "shield_nitro/attest/certificate.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/bytes.h"

namespace shield_nitro::attest::detail {

using X509Ptr = ossl::Ptr<X509>;
using PkeyPtr = ossl::Ptr<EVP_PKEY>;

// Strict DER: the whole input must be exactly one certificate. Throws Error(kFormat)
// "<what>: ..." otherwise.
X509Ptr parse_der(ByteView der, const std::string& what);

// Unix seconds of an ASN1_TIME; throws Error(kFormat) when it cannot be read.
int64_t unix_seconds(const ASN1_TIME* t);

// "C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves".
std::string name_text(const X509_NAME* name);

// "EC P-384", "RSA-2048", "ED25519", ...
std::string key_type(EVP_PKEY* key);

// The encoded DER of a certificate object.
Bytes der_of(X509* cert);

Bytes sha256(ByteView data);

// Summary of an already parsed certificate whose DER is der (defined in certificate.cpp).
CertificateSummary summarize(X509* cert, ByteView der);

}  // namespace shield_nitro::attest::detail
