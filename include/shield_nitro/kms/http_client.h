// HTTP(S) requests over libcurl, optionally through a pre-connected tunnel.
//
// Inside an enclave there is no network: KMS is reached through the parent's vsock-proxy, so
// the TCP connection is replaced by a socket from net::connect (AF_VSOCK, or a unix socket for
// the simulator, tests and local relays) while TLS still runs end to end here, with SNI and certificate verification for the
// real host name in the URL. The tunnel only ever sees ciphertext.
#pragma once

#include <cstdint>
#include <string>

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

// Throws Error(kIo) for transport failures (connect, TLS, timeout), naming the URL and tunnel.
HttpResponse http_request(const std::string& method, const std::string& url, const HeaderList& headers,
                          ByteView body, const TransportOptions& transport);

// Validates a --kms-via value; throws kUsage with the accepted forms.
void check_via(const std::string& via);

}  // namespace shield_nitro::kms
