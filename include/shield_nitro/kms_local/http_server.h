// A small HTTP/1.1 server for kms-local: TCP or Unix socket, optional TLS (OpenSSL), one
// thread per connection up to a cap, keep-alive, a header and body size limit, idle timeout.
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
#include "shield_nitro/kms/sigv4.h"

namespace shield_nitro::kms {

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

struct HttpServerOptions {
  std::string listen;    // "HOST:PORT" (PORT 0 = pick one) or "unix:PATH"
  std::string tls_cert;  // PEM chain; with tls_key enables TLS
  std::string tls_key;
  HttpLimits limits;
  int max_connections = 64;
  int idle_timeout_s = 30;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting on a background thread. Throws Error(kIo) when binding fails.
  void start();
  // Stops accepting, closes live connections and joins every thread.
  void stop();
  // The bound port (TCP) after start().
  int port() const { return port_; }
  std::string url() const;

 private:
  struct Tls;
  void accept_loop();
  void serve_connection(UniqueFd fd);
  HttpServerOptions options_;
  HttpHandler handler_;
  std::unique_ptr<Tls> tls_;
  UniqueFd listen_fd_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::set<int> live_fds_;
  int active_ = 0;
  std::condition_variable idle_cv_;
};

// Reason phrase for a status code.
const char* http_reason(int status);

}  // namespace shield_nitro::kms
