// AWS Signature Version 4 (header signing), over OpenSSL HMAC/SHA-256.
//
// Signer: builds the canonical request, the string to sign, the signing key chain and the
// Authorization header, and returns every intermediate value so conformance tests can check
// each step against the AWS suite. The KMS client signs exactly the bytes it sends.
//
// Verifier (for kms-local): parses an Authorization header, recomputes the signature over
// the headers it names, compares in constant time and checks the date against KMS's 5-minute
// skew window, failing with the error types AWS returns (KmsError).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/net/http_headers.h"

namespace shield_nitro::kms {

// The wire header list (net owns it: the HTTP server and parser use it too).
using HeaderList = net::HeaderList;

// A request as it goes on the wire. path is the raw (not yet URI-encoded) path, or already
// percent-encoded: encoding is idempotent for the unreserved set. query excludes the '?'.
struct SignableRequest {
  std::string method;
  std::string path = "/";
  std::string query;
  HeaderList headers;  // must include Host
  ByteView body;
};

struct SigV4Params {
  std::string access_key_id;
  ByteView secret_access_key;
  std::string session_token;  // empty: long-term credentials
  std::string region;
  std::string service = "kms";
  std::string amz_date;       // YYYYMMDD'T'HHMMSS'Z'
  bool normalize_path = true;      // remove dot segments and repeated slashes
  bool sign_body_header = false;   // add and sign x-amz-content-sha256
  bool sign_session_token = true;  // false: add x-amz-security-token after signing (suite only)
};

struct SigV4Result {
  HeaderList added_headers;  // x-amz-date, x-amz-content-sha256, x-amz-security-token as needed
  std::string payload_hash;
  std::string canonical_request;
  std::string credential_scope;
  std::string string_to_sign;
  std::string signed_headers;
  std::string signature;
  std::string authorization;  // value of the Authorization header
};

// Signs request (AWS Signature Version 4): every intermediate step and the Authorization
// header value. Pure: no clock or I/O (the time is in params). Throws Error(kUsage) when
// params.amz_date is not 16 characters (YYYYMMDDTHHMMSSZ).
SigV4Result sigv4_sign(const SignableRequest& request, const SigV4Params& params);

// The steps, exposed for conformance tests and the verifier.
std::string sigv4_canonical_uri(const std::string& path, bool normalize);
std::string sigv4_canonical_query(const std::string& query);
// Lower-cased names sorted; duplicate names joined with ','; values trimmed, whitespace runs
// (including folded lines) collapsed. Returns {canonical header block, signed header list}.
std::pair<std::string, std::string> sigv4_canonical_headers(const HeaderList& headers,
                                                            const std::vector<std::string>* only = nullptr);
SecureBytes sigv4_signing_key(ByteView secret, const std::string& date, const std::string& region,
                              const std::string& service);
std::string sha256_hex(ByteView data);
Bytes hmac_sha256(ByteView key, ByteView data);
// "20150830T123600Z" for a Unix time; and back (throws kFormat on a malformed stamp).
std::string amz_date(int64_t unix_s);
int64_t parse_amz_date(const std::string& stamp);

// ---- verification (server side) ----

struct ParsedAuthorization {
  std::string access_key_id;
  std::string date;  // yyyymmdd of the scope
  std::string region;
  std::string service;
  std::vector<std::string> signed_headers;
  std::string signature;
};

// Throws KmsError IncompleteSignatureException on a malformed header.
ParsedAuthorization parse_authorization(const std::string& header);

struct VerifierSecret {
  SecureBytes secret_access_key;
  std::string session_token;  // non-empty: the request must carry exactly this token
};
// Returns the secret for an access key id, or nullopt when the key is unknown.
using SecretLookup = std::function<std::optional<VerifierSecret>(const std::string& access_key_id)>;

struct VerifyOptions {
  std::string region;              // expected scope region
  std::string service = "kms";
  int64_t now_s = 0;
  int64_t max_skew_s = 5 * 60;     // KMS: 5 minutes either way
};

// Verifies request (whose headers include Authorization). Returns the access key id.
// Errors (KmsError, HTTP 400): MissingAuthenticationTokenException, IncompleteSignatureException,
// UnrecognizedClientException, InvalidSignatureException (mismatch and "Signature expired").
std::string sigv4_verify(const SignableRequest& request, const SecretLookup& lookup,
                         const VerifyOptions& options);

// Case-insensitive header lookup (net's); nullopt when absent.
using net::find_header;

}  // namespace shield_nitro::kms
