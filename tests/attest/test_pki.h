// Test-only PKI and document factory: P-384 certificate chains shaped like AWS's (root,
// regional, zonal, instance, 3-hour leaf) and COSE_Sign1 attestation documents signed by
// them, so every verifier rule can be exercised with a valid signature around the defect.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/cbor/value.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "support/expect_error.h"

namespace shield_nitro::testpki {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using KeyPtr = std::shared_ptr<EVP_PKEY>;
using CertPtr = std::shared_ptr<X509>;

KeyPtr new_key(const char* curve = "P-384");
KeyPtr new_rsa_key(int bits);

struct Cert {
  KeyPtr key;
  CertPtr cert;
  Bytes der;
  std::string pem() const;
};

struct CertSpec {
  X509_NAME* subject = nullptr;       // copied; nullptr = CN=<cn>
  std::string cn = "test";
  const Cert* issuer = nullptr;       // nullptr = self-signed
  KeyPtr key;                         // nullptr = fresh P-384
  int64_t not_before = 0;             // Unix seconds
  int64_t not_after = 0;
  std::string basic_constraints = "critical,CA:TRUE";
  std::string key_usage = "critical,keyCertSign,cRLSign,digitalSignature";
};

Cert make_cert(const CertSpec& spec);

// AWS-shaped chain valid for [t0 - 1 day, t0 + 1 day], leaf for [t0 - 60 s, t0 + 3 h].
// names: optional subjects for root, regional, zonal, instance, leaf (copied from real
// certificates to forge "AWS-looking" chains).
struct Chain {
  Cert root, regional, zonal, instance, leaf;
  std::vector<Bytes> bundle() const { return {root.der, regional.der, zonal.der, instance.der}; }
};
Chain make_chain(int64_t t0_s, const std::vector<X509_NAME*>& names = {});

// The nine-key payload map in the real order with nulls, 16 PCRs of 48 bytes (PCR0 = 0x11..).
cbor::Value payload(const Chain& chain, uint64_t timestamp_ms);
cbor::Value* field(cbor::Value& map, const std::string& key);

// cose::sign1_es384(cbor::encode(payload), key).
Bytes sign(const cbor::Value& payload, EVP_PKEY* key);

using test_support::code_of;
using test_support::message_of;

}  // namespace shield_nitro::testpki
