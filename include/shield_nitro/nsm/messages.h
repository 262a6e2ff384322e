// The NSM's CBOR messages (nsm.md §3): serde-style externally tagged enums.
//
// encode_request() emits exactly the bytes the official Rust client (serde_cbor 0.11) sends,
// so a real NSM and our simulator see the same thing. decode_request() is the simulator's
// strict reader of those bytes. Responses go the other way: encode_response() for the
// simulator, and parse_*() for the client, which check that the reply answers the request
// that was sent and consume every byte of it (the ioctl truncates silently, nsm.md §2.1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "shield_nitro/core/pcr.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/nsm/error.h"

namespace shield_nitro::nsm {

// Size limits of the kernel ABI (nsm.md §2, §5).
inline constexpr size_t kMaxRequestSize = 0x1000;
inline constexpr size_t kMaxResponseSize = 0x3000;
// The generator's cap on user_data, nonce and public_key (attestation.md §3).
inline constexpr size_t kMaxAttestationField = 1024;
inline constexpr uint16_t kPcrCount = 32;
using shield_nitro::kPcrSize;  // SHA-384 (core/pcr.h)
// GetRandom returns at most this many bytes per call.
inline constexpr size_t kMaxRandomPerCall = 256;

struct DescribeNsmRequest {};
struct DescribePcrRequest { uint16_t index = 0; };
struct ExtendPcrRequest { uint16_t index = 0; Bytes data; };
struct LockPcrRequest { uint16_t index = 0; };
// Locks PCRs [0, range).
struct LockPcrsRequest { uint16_t range = 0; };
// nullopt is sent as CBOR null; an empty Bytes is a different, legal value.
struct AttestationRequest {
  std::optional<Bytes> user_data;
  std::optional<Bytes> nonce;
  std::optional<Bytes> public_key;
};
struct GetRandomRequest {};

using Request = std::variant<DescribeNsmRequest, DescribePcrRequest, ExtendPcrRequest, LockPcrRequest,
                             LockPcrsRequest, AttestationRequest, GetRandomRequest>;

// The serde variant name, e.g. "DescribePCR".
const char* request_name(const Request& request);

// The CBOR request the NSM expects (client side).
Bytes encode_request(const Request& request);
// Strict decode of a request (simulator side). Throws NsmError(kInvalidArgument) for anything
// that is not one well-formed request of nsm.md §3.1, including integers that overflow u16.
Request decode_request(ByteView bytes);

struct DescribeNsmResponse {
  uint16_t version_major = 0;
  uint16_t version_minor = 0;
  uint16_t version_patch = 0;
  std::string module_id;
  uint16_t max_pcrs = 0;
  std::vector<uint16_t> locked_pcrs;
  std::string digest;  // "SHA256" | "SHA384" | "SHA512"
};
struct DescribePcrResponse { bool lock = false; Bytes data; };
struct ExtendPcrResponse { Bytes data; };  // the new PCR value
struct LockPcrResponse {};
struct LockPcrsResponse {};
struct AttestationResponse { Bytes document; };  // the COSE_Sign1 bytes, exactly as sent
struct GetRandomResponse { Bytes random; };
struct ErrorResponse { ErrorCode code = ErrorCode::kInternalError; };

using Response = std::variant<DescribeNsmResponse, DescribePcrResponse, ExtendPcrResponse, LockPcrResponse,
                              LockPcrsResponse, AttestationResponse, GetRandomResponse, ErrorResponse>;

// The CBOR reply the NSM sends (simulator side).
Bytes encode_response(const Response& response);

// Client-side parsers. Each throws NsmError(code) for an {"Error": code} reply, and
// NsmError(kInvalidResponse) for a reply that is not exactly one definite-length answer to
// this request (wrong variant, missing or mistyped field, truncation, trailing bytes).
DescribeNsmResponse parse_describe_nsm(ByteView reply);
DescribePcrResponse parse_describe_pcr(ByteView reply);
ExtendPcrResponse parse_extend_pcr(ByteView reply);
void parse_lock_pcr(ByteView reply);
void parse_lock_pcrs(ByteView reply);
AttestationResponse parse_attestation(ByteView reply);
GetRandomResponse parse_get_random(ByteView reply);

}  // namespace shield_nitro::nsm
