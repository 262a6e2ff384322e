#include "shield_nitro/core/openssl_ptr.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

namespace shield_nitro::ossl {

void Free::operator()(BIO* p) const { BIO_free(p); }
void Free::operator()(CMS_ContentInfo* p) const { CMS_ContentInfo_free(p); }
void Free::operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
void Free::operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
void Free::operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
void Free::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
void Free::operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
void Free::operator()(X509* p) const { X509_free(p); }
void Free::operator()(X509_NAME* p) const { X509_NAME_free(p); }
void Free::operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
void Free::operator()(stack_st_X509* p) const { sk_X509_free(p); }

}  // namespace shield_nitro::ossl
