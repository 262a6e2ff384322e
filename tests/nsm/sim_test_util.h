// Helpers shared by the NSM simulator tests: a temporary folder and certificate checks.
#pragma once

#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/file_io.h"
#include "support/temp_dir.h"

namespace nsm_test {

using shield_nitro::Bytes;

using shield_nitro::test_support::TempDir;

struct X509Deleter { void operator()(X509* c) const { X509_free(c); } };
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

inline X509Ptr parse_der(const Bytes& der) {
  const unsigned char* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

inline Bytes pem_file_to_der(const std::string& path) {
  std::string pem = shield_nitro::read_text_file(path);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!c) return {};
  Bytes out(static_cast<size_t>(i2d_X509(c, nullptr)));
  unsigned char* p = out.data();
  i2d_X509(c, &p);
  X509_free(c);
  return out;
}

// OpenSSL path validation: leaf ← bundle[n-1] ← … ← bundle[1] ← anchor, at time `at`.
// Returns the X509_V_ error (0 = ok).
inline int verify_chain(const Bytes& leaf_der, const std::vector<Bytes>& bundle, const Bytes& anchor_der, time_t at) {
  X509Ptr leaf = parse_der(leaf_der), anchor = parse_der(anchor_der);
  if (!leaf || !anchor) return -1;
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, anchor.get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  std::vector<X509Ptr> keep;
  for (size_t i = 1; i < bundle.size(); ++i) {
    keep.push_back(parse_der(bundle[i]));
    sk_X509_push(untrusted, keep.back().get());
  }
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf.get(), untrusted);
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), at);
  int ok = X509_verify_cert(ctx);
  int err = ok == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  return ok == 1 ? 0 : (err ? err : -2);
}

}  // namespace nsm_test
