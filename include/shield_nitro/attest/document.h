// attest::Document: an attestation document decoded, but NOT verified.
//
// decode_document() applies every structural rule of attestation.md §1–§3 (size limit before
// parsing, the strict COSE_Sign1 envelope, the payload map's field types and limits, definite
// or indefinite payload map) and throws Error(kFormat, "attestation document: ...") on the
// first deviation. Nothing in a Document is trustworthy until a Verifier has checked the
// chain and the signature; use it only to display or to feed the Verifier.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/bytes.h"

namespace shield_nitro::attest {

// Payload limit (16384, AWS CDDL) plus room for the envelope: larger inputs are refused
// before any parsing.
inline constexpr size_t kMaxDocumentSize = 16384 + 1024;
inline constexpr size_t kMaxPayloadSize = 16384;
inline constexpr size_t kMaxCertificateSize = 1024;
inline constexpr size_t kMaxOptionalFieldSize = 1024;  // public_key, user_data, nonce (§3)
inline constexpr size_t kPcrSize = 48;                 // SHA-384
inline constexpr uint32_t kPcrCount = 32;

// public_key / user_data / nonce may be absent, CBOR null, or a byte string; the three are
// distinct on the wire and kept distinct here.
enum class Presence { kAbsent, kNull, kBytes };
const char* presence_name(Presence p);  // "absent", "null", "bytes"

struct OptionalBytes {
  Presence presence = Presence::kAbsent;
  Bytes value;  // empty unless presence == kBytes (and may be empty then too)
  // True only for a byte string (absent and null are both "no value").
  bool has_value() const { return presence == Presence::kBytes; }
};

struct Document {
  cose::Sign1 envelope;          // payload bytes exactly as received
  bool indefinite_payload_map = false;
  std::string module_id;
  std::string digest;            // always "SHA384"
  uint64_t timestamp_ms = 0;     // milliseconds since the Unix epoch
  std::map<uint32_t, Bytes> pcrs;
  Bytes certificate;             // DER leaf
  std::vector<Bytes> cabundle;   // DER, [root, intermediate..., instance]
  OptionalBytes public_key;
  OptionalBytes user_data;
  OptionalBytes nonce;
};

// Decodes and checks the structure only (see above): throws Error(kFormat) on the first
// deviation, never verifies anything.
Document decode_document(ByteView doc);

// Accepts raw CBOR (an array of four, 84 or 9f, optionally after tag 18 d2) or standard
// base64 of it (surrounding whitespace ignored). Anything else throws Error(kFormat, "not an
// attestation document: ...") saying what the input looked like (empty, PEM, JSON, text, or
// binary with its first bytes).
Bytes document_bytes_from_text_or_binary(ByteView input);

}  // namespace shield_nitro::attest
