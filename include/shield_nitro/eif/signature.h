// The Signature section (type 4, spec/eif.md §4): CBOR as serde_cbor writes it, an array of
// {signing_certificate, signature} maps whose byte vectors are arrays of uints, holding a
// COSE_Sign1 (untagged, ES256/ES384/ES512 by curve) over PcrInfo{0, PCR0}.
#pragma once

#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/eif/pcr.h"

namespace shield_nitro::eif {

struct SignatureEntry {
  Bytes certificate_pem;  // the PEM file bytes exactly as read
  Bytes cose_sign1;
};

inline constexpr size_t kMaxSignatureSection = 32768;

// CBOR of PcrInfo{register_index, register_value} (value as an array of uints).
Bytes encode_pcr_info(uint32_t register_index, ByteView register_value);
Bytes encode_signature_section(const std::vector<SignatureEntry>& entries);
// Throws Error(kFormat) unless the bytes are exactly that shape.
std::vector<SignatureEntry> decode_signature_section(ByteView section);

// Signs PCR0 with key_pem (EC P-256/P-384/P-521), which must match cert_pem's public key.
SignatureEntry sign_pcr0(const Digest48& pcr0, ByteView cert_pem, ByteView key_pem);
// True iff the COSE_Sign1 verifies with the certificate's key and its payload is
// PcrInfo{0, pcr0}. Throws Error(kFormat) if the COSE structure or certificate is malformed.
bool verify_pcr0_signature(const SignatureEntry& entry, const Digest48& pcr0);

}  // namespace shield_nitro::eif
