// Fuzzes the CMS CiphertextForRecipient parser and opener (the bytes KMS, or anyone on the
// path before TLS is checked, hands the enclave). Parser and opener must agree: whatever the
// strict parser refuses, the opener refuses too, and nothing crashes.
#include <openssl/pem.h>

#include <cstddef>
#include <cstdint>

#include "shield_nitro/core/error.h"
#include "shield_nitro/kms/cms.h"

namespace {

EVP_PKEY* key() {
  static EVP_PKEY* k = EVP_RSA_gen(2048);
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shield_nitro;
  shield_nitro::ByteView in(data, size);
  bool parsed = false;
  try {
    kms::RecipientEnvelope env = kms::parse_recipient_envelope(in);
    parsed = true;
    if (env.iv.size() != 16 || env.ciphertext.empty() || env.ciphertext.size() % 16 != 0) __builtin_trap();
  } catch (const Error&) {
  }
  try {
    kms::open_recipient_envelope(in, key());
    if (!parsed) __builtin_trap();  // opened something the strict parser refused
  } catch (const Error&) {
  }
  return 0;
}
