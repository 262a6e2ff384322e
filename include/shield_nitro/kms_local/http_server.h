// kms-local's HTTP server: net::HttpServer (net/http_server.h) with the answers the server makes
// itself (overload, malformed request, timeout, failed handler) in KMS's JSON error shape and
// x-amzn-RequestId on every answer (kms/http_errors.h). The request/response types and the
// parser are net's, named here in kms:: for kms-local's code, tests and fuzz target.
#pragma once

#include <string>
#include <utility>

#include "shield_nitro/kms/http_errors.h"
#include "shield_nitro/net/http_server.h"

namespace shield_nitro::kms {

using net::HttpHandler;
using net::HttpLimits;
using net::HttpParse;
using net::HttpParseError;
using net::HttpServerOptions;
using net::HttpServerRequest;
using net::HttpServerResponse;
using net::http_reason;
using net::parse_http_request;

// net::HttpServer speaking KMS's error shape (kms_http_options); a listen name of "kms-local".
class HttpServer final : public net::HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler)
      : net::HttpServer(with_kms_shape(std::move(options)), std::move(handler)) {}

 private:
  static HttpServerOptions with_kms_shape(HttpServerOptions options) {
    if (options.name == HttpServerOptions{}.name) options.name = "kms-local";
    return kms_http_options(std::move(options));
  }
};

}  // namespace shield_nitro::kms
