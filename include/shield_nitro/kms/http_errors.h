// KMS's JSON 1.1 error shape on net's HTTP server, for the servers that speak KMS's protocol:
// kms-local (development) and the enclave's attested KMS endpoint. An error is
//   HTTP 400, Content-Type application/x-amz-json-1.1, {"__type":"ThrottlingException","message":"..."}
// and every answer carries x-amzn-RequestId (the SDKs report it). net itself stays protocol-free.
#pragma once

#include <string>

#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/net/http_server.h"

namespace shield_nitro::kms {

// An error answer: status and {"__type": type, "message": message} (invalid UTF-8 replaced).
net::HttpServerResponse kms_error_response(int status, const std::string& type, const std::string& message);
// The same for a KmsError (its status, type and AWS message).
net::HttpServerResponse kms_error_response(const KmsError& error);

// The HTTP server's own answers as KMS gives them: overload -> 400 ThrottlingException (the SDKs
// retry it); malformed -> 400/505 SerializationException, 413/431 ValidationException, 501
// UnsupportedOperationException; timeout -> 408 RequestTimeoutException; a failed handler ->
// 500 KMSInternalException.
net::HttpServerResponse kms_fault_response(net::HttpFault fault, int status, const std::string& message);

// options with kms_fault_response and x-amzn-RequestId (random_uuid()) on every answer.
net::HttpServerOptions kms_http_options(net::HttpServerOptions options);

// A random RFC 4122 version-4 UUID: KMS's request and key ids.
std::string random_uuid();

}  // namespace shield_nitro::kms
