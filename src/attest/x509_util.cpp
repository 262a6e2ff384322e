#include "x509_util.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/sha.h>

#include <ctime>

#include "shield_nitro/core/error.h"

namespace shield_nitro::attest::detail {

X509Ptr parse_der(ByteView der, const std::string& what) {
  if (der.empty()) throw Error(Errc::kFormat, what + ": empty certificate");
  const uint8_t* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!cert) throw Error(Errc::kFormat, what + ": not a DER X.509 certificate");
  if (p != der.data() + der.size()) throw Error(Errc::kFormat, what + ": trailing bytes after the certificate");
  return cert;
}

int64_t unix_seconds(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) throw Error(Errc::kFormat, "certificate: unreadable validity time");
  return static_cast<int64_t>(timegm(&tm));
}

std::string name_text(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) throw_openssl("BIO_new");
  X509_NAME_print_ex(bio, name, 0, (XN_FLAG_ONELINE & ~XN_FLAG_SPC_EQ & ~ASN1_STRFLGS_ESC_MSB) | ASN1_STRFLGS_UTF8_CONVERT);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len > 0 ? len : 0));
  BIO_free(bio);
  return out;
}

std::string key_type(EVP_PKEY* key) {
  if (!key) return "none";
  int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_EC) {
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) return "EC (unknown curve)";
    int nid = OBJ_txt2nid(group);
    const char* nist = nid != NID_undef ? EC_curve_nid2nist(nid) : nullptr;
    return std::string("EC ") + (nist ? nist : group);
  }
  if (id == EVP_PKEY_RSA) return "RSA-" + std::to_string(EVP_PKEY_get_bits(key));
  const char* name = OBJ_nid2sn(id);
  return name ? name : "unknown";
}

Bytes der_of(X509* cert) {
  int len = i2d_X509(cert, nullptr);
  if (len <= 0) throw_openssl("i2d_X509");
  Bytes out(static_cast<size_t>(len));
  uint8_t* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

Bytes sha256(ByteView data) {
  Bytes out(SHA256_DIGEST_LENGTH);
  SHA256(data.data(), data.size(), out.data());
  return out;
}

}  // namespace shield_nitro::attest::detail
