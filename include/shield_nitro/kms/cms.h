// CiphertextForRecipient: the CMS EnvelopedData (RFC 5652) KMS returns instead of a plaintext
// when a request carries a Recipient attestation document.
//
// Only one shape is accepted, checked strictly before any key is touched: id-envelopedData,
// version 2, exactly one KeyTransRecipientInfo (version 2, subjectKeyIdentifier) using
// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (NULL parameters optional, no label), then id-data
// content under AES-256-CBC with a 16-byte IV. Lengths may be definite (DER) or indefinite
// (BER, as KMS sends); the encrypted content may be primitive or chunked. Anything else,
// trailing bytes included, is refused with Errc::kFormat or kUnsupported.
#pragma once

#include <openssl/evp.h>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::kms {

// The parts of a recipient envelope (no secrets: everything here is encrypted or public).
struct RecipientEnvelope {
  Bytes subject_key_id;   // KMS: 32 bytes, derivation undocumented; nothing depends on it
  Bytes encrypted_key;    // RSA-OAEP(content-encryption key)
  Bytes iv;               // 16 bytes
  Bytes ciphertext;       // AES-256-CBC, chunks concatenated
  bool indefinite_length = false;   // the outer ContentInfo used BER indefinite length
  bool chunked_content = false;     // encryptedContent was a constructed [0]
};

// Parse-only (no key needed). Throws Error(kFormat / kUnsupported) naming what is wrong.
RecipientEnvelope parse_recipient_envelope(ByteView ber);

// Parses strictly, then decrypts with OpenSSL CMS (CMS_DEBUG_DECRYPT, so a wrong key fails
// instead of yielding random bytes). The content key must be 32 bytes. Throws kAuth when the
// key does not open the envelope.
SecureBytes open_recipient_envelope(ByteView ber, EVP_PKEY* private_key);

// Builds the KMS byte layout (BER, indefinite lengths, chunked content, SKI = SHA-256(SPKI))
// enveloping plaintext to an RSA public key given as DER SubjectPublicKeyInfo. The content key
// and IV come from rng. Used by kms-local, which must answer exactly as KMS does.
Bytes build_recipient_envelope(ByteView plaintext, ByteView recipient_spki_der, Random& rng = os_random());

}  // namespace shield_nitro::kms
