// HTTP/1.1 requests over OpenSSL (no libcurl: this runs inside the enclave, whose image and
// trusted code stay small), optionally through a pre-connected tunnel.
//
// Inside an enclave there is no network: KMS is reached through the parent's vsock-proxy, so
// the TCP connection is replaced by a socket from net::connect (AF_VSOCK, or a unix socket for
// the simulator, tests and local relays) while TLS still runs end to end here, with SNI and
// certificate verification for the real host name in the URL. The tunnel only ever sees ciphertext.
//
// One connection per request ("Connection: close"), as the client made before; the whole
// exchange (connect, TLS, request, response) ends by TransportOptions::timeout_ms.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/kms/sigv4.h"

namespace shield_nitro::kms {

struct TransportOptions {
  std::string via;      // "" (direct TCP), "unix:PATH" or "vsock://CID:PORT"
  std::string ca_file;  // private CA bundle (PEM); empty = system trust store
  long timeout_ms = 15000;
  long connect_timeout_ms = 5000;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  HeaderList headers;  // response headers of the final answer
};

// Sends method url with headers (Host, Content-Length and "Connection: close" are added unless
// given; a body goes with every method but GET) and returns the final answer, whatever its
// status (a 4xx/5xx body is returned, not thrown). Throws Error(kTimeout) past the timeout,
// Error(kIo) for other transport failures (connect, TLS, a malformed or cut answer), naming
// the method, URL and tunnel; Error(kUsage) for a malformed URL or a header with CR/LF.
HttpResponse http_request(const std::string& method, const std::string& url, const HeaderList& headers,
                          ByteView body, const TransportOptions& transport);

// Validates a --kms-via value; throws kUsage with the accepted forms.
void check_via(const std::string& via);

// An http:// or https:// URL as a request needs it.
struct HttpUrl {
  bool tls = false;            // https
  std::string host;            // a DNS name or IP literal, without brackets
  uint16_t port = 0;           // the scheme's default (80, 443) when the URL has none
  bool explicit_port = false;  // the URL names the port
  std::string target;          // path and query ("/" when empty); the fragment is dropped
  // The Host header: host ("[v6]" bracketed), plus ":port" when the URL names it.
  std::string host_header() const;
};

// Throws Error(kUsage, "malformed URL '...': why") for another scheme, user info, an empty
// host, a bad port, or a space or control character anywhere.
HttpUrl parse_http_url(const std::string& url);

// Whether the bytes so far hold a whole answer.
enum class HttpResponseParse { kNeedMore, kComplete };
// Bounds on an answer: past them it is refused, not buffered.
struct HttpResponseLimits {
  size_t max_head_bytes = 64 * 1024;
  size_t max_body_bytes = 4 * 1024 * 1024;  // KMS and IMDS answers are a few KiB
};

// Parses an answer from the front of in (pure: fuzzed): the status line, headers, and a body
// framed by Content-Length, chunked Transfer-Encoding, or the end of the connection (at_eof);
// interim 1xx answers are skipped. kComplete sets out and consumed. Throws Error(kFormat,
// "malformed HTTP response: why") for anything else, a head over max_head_bytes or a body over
// max_body_bytes.
HttpResponseParse parse_http_response(std::string_view in, bool at_eof, const HttpResponseLimits& limits,
                                      HttpResponse& out, size_t& consumed);

}  // namespace shield_nitro::kms
