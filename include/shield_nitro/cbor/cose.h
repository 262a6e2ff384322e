// COSE_Sign1 (RFC 9052 §4.2) with ES384, the only profile Nitro attestation uses.
//
// Decoding is strict (attestation.md §1): an optional tag 18 and no other tag, an array of
// four (definite, or indefinite 9f..ff: legal CBOR, and the array head is not signed), a
// protected header that decodes to exactly {1: -35}, an empty unprotected
// map, a byte-string payload and a 96-byte r||s signature. The payload is kept exactly as
// received, because the signature covers those bytes and never a re-encoding.
//
//   cose::Sign1 msg = cose::decode_sign1(doc);           // throws Error(kFormat)
//   cose::verify_es384(msg, leaf_public_key);            // throws Error(kVerify)
//   Bytes doc = cose::sign1_es384(payload, signing_key); // untagged, like the NSM
#pragma once

#include <openssl/evp.h>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::cose {

// The protected header every ES384 message carries: bstr contents a1 01 38 22 = {1: -35}.
inline constexpr uint8_t kProtectedEs384[] = {0xa1, 0x01, 0x38, 0x22};
// ES384 signatures are r||s, each a 48-byte big-endian integer left-padded with zeros.
inline constexpr size_t kEs384SignatureSize = 96;

struct Sign1 {
  bool tagged = false;      // the input began with tag 18 (d2)
  bool indefinite = false;  // the array of four was encoded 9f .. ff
  Bytes protected_header;   // contents of the protected bstr, as received
  Bytes payload;            // contents of the payload bstr, as received
  Bytes signature;          // 96 bytes r||s
};

// Strict decode of an ES384 COSE_Sign1, tagged or not; whole input must be the message.
// Every deviation throws Error(kFormat, "cose: ...").
Sign1 decode_sign1(ByteView data);

// ["Signature1", protected, h'', payload] in canonical CBOR (shortest length heads).
Bytes sig_structure(ByteView protected_header, ByteView payload);

// Verifies msg.signature over sig_structure(msg) with a P-384 public key, hashing with
// SHA-384. High-S signatures are valid (no low-S normalisation). Throws Error(kVerify)
// when the key is not P-384 or the signature does not verify; never returns "false".
void verify_es384(const Sign1& msg, EVP_PKEY* public_key);

// Signs payload with a P-384 private key and returns the untagged COSE_Sign1 bytes
// 84 44 a1013822 a0 <bstr payload> 58 60 <r||s>. Throws Error(kUsage) for a non-P-384 key.
Bytes sign1_es384(ByteView payload, EVP_PKEY* private_key);

// Conversions between the fixed-width r||s form and DER ECDSA-Sig-Value.
// raw_to_der throws Error(kFormat) unless raw is 96 bytes; der_to_raw throws Error(kFormat)
// on malformed DER or an integer wider than 48 bytes.
Bytes es384_raw_to_der(ByteView raw);
Bytes es384_der_to_raw(ByteView der);

// True when key is an EC key on NIST P-384 (secp384r1). Never throws.
bool is_p384(EVP_PKEY* key);

}  // namespace shield_nitro::cose
