#include "shield_nitro/attest/certificate.h"

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>

#include "shield_nitro/core/clock.h"
#include "x509_util.h"

namespace shield_nitro::attest {

CertificateSummary summarize_certificate(ByteView der) {
  detail::X509Ptr cert = detail::parse_der(der, "certificate");
  return detail::summarize(cert.get(), der);
}

CertificateSummary detail::summarize(X509* cert, ByteView der) {
  CertificateSummary s;
  s.subject = detail::name_text(X509_get_subject_name(cert));
  s.issuer = detail::name_text(X509_get_issuer_name(cert));
  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  if (serial) {
    char* hex = BN_bn2hex(serial);
    if (hex) s.serial_hex = hex;
    OPENSSL_free(hex);
    BN_free(serial);
  }
  s.not_before_s = detail::unix_seconds(X509_get0_notBefore(cert));
  s.not_after_s = detail::unix_seconds(X509_get0_notAfter(cert));
  s.key_type = detail::key_type(X509_get0_pubkey(cert));
  s.is_ca = X509_check_ca(cert) != 0;
  s.sha256_hex = hex_encode(detail::sha256(der));
  return s;
}

std::string format_utc_seconds(int64_t unix_s) { return format_utc(unix_s, "%Y-%m-%dT%H:%M:%SZ"); }

std::string format_utc_millis(int64_t unix_ms) {
  int64_t s = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
  std::string base = format_utc_seconds(s);
  char frac[8];
  std::snprintf(frac, sizeof(frac), ".%03d", static_cast<int>(unix_ms - s * 1000));
  return base.substr(0, base.size() - 1) + frac + "Z";
}

}  // namespace shield_nitro::attest
