// A small HTTP/1.1 server: TCP or Unix socket, optional TLS (OpenSSL). One epoll thread does
// all socket and TLS I/O without blocking; complete requests go to a fixed pool of handler
// threads through a bounded queue. Every request gets an answer: past a cap (open connections
// or queued requests) an "overloaded" answer, never a reset; a slow client gets 408 at its
// deadline; an oversize body is read and discarded (up to a bound) before its 413, so the
// client reads the 413 instead of ECONNRESET. The answers the server makes itself are plain
// text unless HttpServerOptions::fault_response shapes them (kms-local answers in KMS's JSON,
// kms_local/http_server.h). Used by kms-local (untrusted) and inside the enclave (the attested
// KMS endpoint), so it depends on core only.
//
// parse_http_request() is the pure parser (fuzzed): it never reads past the buffer, refuses
// chunked bodies, duplicate Content-Length, oversize headers or bodies, and reports what to
// answer (400 / 413 / 431 / 501) instead of crashing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/net/http_headers.h"

namespace shield_nitro::net {

struct HttpServerRequest {
  std::string method;
  std::string path;
  std::string query;
  HeaderList headers;
  std::string body;
  bool keep_alive = true;
};

struct HttpServerResponse {
  int status = 200;
  HeaderList headers;
  std::string body;
};

struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  // An oversize body is read and discarded up to this many bytes before the 413 is sent.
  size_t max_discard_bytes = 64 * 1024 * 1024;
};

// Thrown by the parser: status to answer and why (the connection is closed afterwards).
struct HttpParseError {
  int status;
  std::string message;
};

enum class HttpParse { kNeedMore, kComplete };

// Parses one request from the front of buffer. kComplete sets consumed (bytes used).
HttpParse parse_http_request(std::string_view buffer, const HttpLimits& limits, HttpServerRequest& out,
                             size_t& consumed);

using HttpHandler = std::function<HttpServerResponse(const HttpServerRequest&)>;

// Why the server answers a request itself.
enum class HttpFault {
  kMalformed,      // the parser refused it (status 400, 413, 431, 501 or 505)
  kOverloaded,     // connection cap or handler queue full (suggested status 503)
  kTimeout,        // it did not arrive in time (408)
  kHandlerFailed,  // the handler threw (500)
};

// Makes the server's own answer for fault with the suggested status and a one-line reason; it
// may change the status (KMS answers overload as 400 ThrottlingException). Called on the event
// loop thread: must not block, must not throw.
using HttpFaultResponder = std::function<HttpServerResponse(HttpFault fault, int status, const std::string& message)>;

// The default responder: the suggested status, the message as text/plain.
HttpServerResponse plain_fault_response(HttpFault fault, int status, const std::string& message);

struct HttpServerOptions {
  std::string listen;    // "HOST:PORT" (PORT 0 = pick one) or "unix:PATH"
  std::string tls_cert;  // PEM chain; with tls_key enables TLS
  std::string tls_key;
  HttpLimits limits;
  int max_connections = 4096;  // open at once; past it a request is answered kOverloaded
  int idle_timeout_s = 30;      // an idle keep-alive connection, or a peer that stops reading
  int request_timeout_s = 10;   // TLS handshake, and a request from its first byte (then 408)
  int workers = 0;              // handler threads; 0: one per CPU, at least 2
  size_t max_queued = 1024;     // requests waiting for a handler; past it kOverloaded
  HttpFaultResponder fault_response;  // empty: plain_fault_response
  // When set, every answer (the server's own included) lacking this header gets it with
  // request_id() as value (x-amzn-RequestId for AWS-shaped servers). request_id must be
  // thread-safe and must not throw.
  std::string request_id_header;
  std::function<std::string()> request_id;
  std::string name = "http server";  // names the server in its log lines
  // Zero each request's bytes (read buffer, body) and each answer's once done with them, for a
  // server that carries secrets (the enclave's KMS endpoint). Reserves a buffer of
  // max_header_bytes + max_body_bytes per connection up front, so keep max_body_bytes small.
  bool wipe_buffers = false;
};

// An HTTP/1.1 server (TLS when configured) calling handler from its worker threads: the
// handler must be thread-safe. A handler that throws is answered with the kHandlerFailed
// fault (500). Every answer carries Date.
class HttpServer {
 public:
  // Serves nothing until start().
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on background threads; raises RLIMIT_NOFILE's soft limit to the
  // hard one so thousands of connections fit. Error(kUsage) for a malformed listen address or
  // a TLS certificate/key that cannot be loaded, Error(kIo) when it cannot listen.
  void start();
  // Stops accepting, closes live connections and joins every thread (a handler call in
  // progress finishes first).
  void stop();
  // The bound port (TCP) after start().
  int port() const { return port_; }
  std::string url() const;

 private:
  struct Tls;
  struct Loop;
  HttpServerOptions options_;
  HttpHandler handler_;
  std::unique_ptr<Tls> tls_;
  std::unique_ptr<Loop> loop_;
  UniqueFd listen_fd_;
  int port_ = 0;
};

// Reason phrase for a status code.
const char* http_reason(int status);

}  // namespace shield_nitro::net
