// Owning pointers for OpenSSL objects, declared once for the whole product:
//   ossl::Ptr<EVP_PKEY> key(EVP_PKEY_new());   // EVP_PKEY_free when dropped
// One deleter overloaded per type; the header needs only OpenSSL's forward declarations.
#pragma once

#include <openssl/types.h>

#include <memory>

// Types <openssl/types.h> leaves out, declared the way OpenSSL's own headers do.
typedef struct CMS_ContentInfo_st CMS_ContentInfo;
typedef struct ECDSA_SIG_st ECDSA_SIG;
struct stack_st_X509;

namespace shield_nitro::ossl {

struct Free {
  void operator()(BIO* p) const;
  void operator()(CMS_ContentInfo* p) const;
  void operator()(ECDSA_SIG* p) const;
  void operator()(EVP_CIPHER_CTX* p) const;
  void operator()(EVP_MD_CTX* p) const;
  void operator()(EVP_PKEY* p) const;
  void operator()(EVP_PKEY_CTX* p) const;
  void operator()(X509* p) const;
  void operator()(X509_NAME* p) const;
  void operator()(X509_STORE_CTX* p) const;
  void operator()(stack_st_X509* p) const;  // STACK_OF(X509)  // the stack only, not its certificates
};

template <class T>
using Ptr = std::unique_ptr<T, Free>;

}  // namespace shield_nitro::ossl
