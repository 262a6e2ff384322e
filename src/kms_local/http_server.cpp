#include "shield_nitro/kms_local/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::kms {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

[[noreturn]] void reject(int status, const std::string& why) { throw HttpParseError{status, why}; }

void parse_request_line(std::string_view line, HttpServerRequest& out) {
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2) reject(400, "malformed request line");
  out.method = std::string(line.substr(0, sp1));
  std::string target(line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view version = line.substr(sp2 + 1);
  if (out.method.empty() || !std::all_of(out.method.begin(), out.method.end(), is_token_char))
    reject(400, "malformed method");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") reject(505, "only HTTP/1.x is supported");
  if (target.empty() || target[0] != '/' || target.find(' ') != std::string::npos) reject(400, "malformed request target");
  auto q = target.find('?');
  out.path = target.substr(0, q);
  out.query = q == std::string::npos ? "" : target.substr(q + 1);
  out.keep_alive = version == "HTTP/1.1";
}

void parse_header_line(std::string_view line, HttpServerRequest& out) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) reject(400, "malformed header line");
  std::string name(line.substr(0, colon));
  if (!std::all_of(name.begin(), name.end(), is_token_char)) reject(400, "malformed header name");
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  for (char c : value)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) reject(400, "control character in a header");
  out.headers.emplace_back(std::move(name), std::string(value));
}

size_t content_length(const HttpServerRequest& req, const HttpLimits& limits) {
  std::optional<std::string> cl;
  for (const auto& [k, v] : req.headers) {
    std::string name = lower(k);
    if (name == "transfer-encoding") reject(501, "Transfer-Encoding is not supported; send Content-Length");
    if (name == "content-length") {
      if (cl && *cl != v) reject(400, "conflicting Content-Length headers");
      cl = v;
    }
  }
  if (!cl) return 0;
  if (cl->empty() || cl->size() > 12 || !std::all_of(cl->begin(), cl->end(), ::isdigit)) reject(400, "malformed Content-Length");
  size_t n = std::stoull(*cl);
  if (n > limits.max_body_bytes) reject(413, "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes");
  return n;
}

}  // namespace

const char* http_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

HttpParse parse_http_request(std::string_view buffer, const HttpLimits& limits, HttpServerRequest& out,
                             size_t& consumed) {
  auto end = buffer.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (buffer.size() > limits.max_header_bytes) reject(431, "request headers exceed " + std::to_string(limits.max_header_bytes) + " bytes");
    return HttpParse::kNeedMore;
  }
  if (end > limits.max_header_bytes) reject(431, "request headers too large");
  HttpServerRequest req;
  std::string_view head = buffer.substr(0, end);
  size_t pos = 0;
  bool first = true;
  while (pos <= head.size()) {
    size_t eol = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (first) {
      parse_request_line(line, req);
      first = false;
    } else {
      if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) reject(400, "obsolete header folding");
      parse_header_line(line, req);
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 2;
  }
  size_t body_len = content_length(req, limits);
  size_t total = end + 4 + body_len;
  if (buffer.size() < total) return HttpParse::kNeedMore;
  req.body = std::string(buffer.substr(end + 4, body_len));
  if (auto conn = find_header(req.headers, "connection")) {
    std::string c = lower(*conn);
    if (c == "close") req.keep_alive = false;
    if (c == "keep-alive") req.keep_alive = true;
  }
  out = std::move(req);
  consumed = total;
  return HttpParse::kComplete;
}

// ---- server ----

struct HttpServer::Tls {
  SSL_CTX* ctx = nullptr;
  ~Tls() { SSL_CTX_free(ctx); }
};

namespace {

// A connection: plain fd or TLS over it.
class Conn {
 public:
  Conn(int fd, SSL_CTX* ctx) : fd_(fd) {
    if (ctx) {
      ssl_ = SSL_new(ctx);
      if (!ssl_ || SSL_set_fd(ssl_, fd) != 1) throw_openssl("SSL_new");
    }
  }
  ~Conn() { SSL_free(ssl_); }
  bool handshake() {
    if (!ssl_) return true;
    if (SSL_accept(ssl_) == 1) return true;
    ERR_clear_error();
    return false;
  }
  // >0 bytes, 0 closed/timeout/error.
  ssize_t read(char* buf, size_t n) {
    if (ssl_) {
      int r = SSL_read(ssl_, buf, static_cast<int>(n));
      if (r <= 0) ERR_clear_error();
      return r > 0 ? r : 0;
    }
    ssize_t r;
    do r = ::recv(fd_, buf, n, 0);
    while (r < 0 && errno == EINTR);
    return r > 0 ? r : 0;
  }
  bool write_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t w;
      if (ssl_) {
        int r = SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off));
        if (r <= 0) {
          ERR_clear_error();
          return false;
        }
        w = r;
      } else {
        w = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
      }
      off += static_cast<size_t>(w);
    }
    return true;
  }
  void close_notify() {
    if (ssl_) SSL_shutdown(ssl_);
  }

 private:
  int fd_;
  SSL* ssl_ = nullptr;
};

// A KMS-shaped JSON error for a request that never reached the handler.
std::string parse_error_body(int status, const std::string& message) {
  const char* type = status == 501 ? "UnsupportedOperationException"
                     : status == 400 || status == 505 ? "SerializationException"
                                                      : "ValidationException";
  return nlohmann::json{{"__type", type}, {"message", message}}.dump(-1, ' ', false,
                                                                   nlohmann::json::error_handler_t::replace);
}

std::string serialize(const HttpServerResponse& r, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + http_reason(r.status) + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return out + r.body;
}

// A client speaking plain HTTP to the TLS port starts with a request line ("POST / ..."), where
// a TLS client starts with a handshake record (0x16). Peeks, so a TLS client loses nothing.
bool looks_like_plain_http(int fd) {
  char head[8];
  ssize_t n;
  do n = ::recv(fd, head, sizeof head, MSG_PEEK);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  ssize_t i = 0;
  while (i < n && head[i] >= 'A' && head[i] <= 'Z') ++i;
  return i > 0 && (i == n || head[i] == ' ');
}

// Answers that client in its own protocol, so it sees why instead of a dropped connection.
void refuse_plain_http(int fd, const HttpLimits& limits) {
  // Read the request head first: closing with it unread would reset the connection before
  // the client has read the answer.
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < limits.max_header_bytes) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
  }
  HttpServerResponse r{400, {{"Content-Type", "text/plain"}},
                       "This port speaks HTTPS: the request was plain HTTP. Use an https:// URL."};
  std::string out = serialize(r, false);
  for (size_t off = 0; off < out.size();) {
    ssize_t w = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += static_cast<size_t>(w);
  }
  ::shutdown(fd, SHUT_WR);
  // Let the client read it and close: drain what it still sends (a body) until its FIN.
  for (size_t drained = 0; drained < limits.max_body_bytes;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
}

UniqueFd bind_tcp(const std::string& listen, int& port_out) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) throw Error(Errc::kUsage, "--listen expects HOST:PORT or unix:PATH, got '" + listen + "'");
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    throw Error(Errc::kIo, "cannot listen on " + listen + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  if (fd) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (!fd || ::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd.get(), 128) != 0) {
    int e = errno;
    throw Error(Errc::kIo, "cannot listen on " + listen + ": " + std::strerror(e));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  port_out = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return fd;
}

UniqueFd bind_unix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) throw Error(Errc::kUsage, "unix socket path too long: " + path);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  {
    // A socket file some server still accepts on is not ours to take over; a stale one is.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      throw Error(Errc::kIo, "cannot listen on unix:" + path + ": another process is listening there");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
    throw Error(Errc::kIo, "cannot listen on unix:" + path + ": exists and is not a socket");
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 128) != 0) {
    int e = errno;
    throw Error(Errc::kIo, "cannot listen on unix:" + path + ": " + std::strerror(e));
  }
  return fd;
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { stop(); }

std::string HttpServer::url() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

void HttpServer::start() {
  // OpenSSL writes with write(2): a peer that hangs up mid-answer must not kill the process.
  ::signal(SIGPIPE, SIG_IGN);
  if (!options_.tls_cert.empty() || !options_.tls_key.empty()) {
    tls_ = std::make_unique<Tls>();
    tls_->ctx = SSL_CTX_new(TLS_server_method());
    if (!tls_->ctx || SSL_CTX_set_min_proto_version(tls_->ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(tls_->ctx, options_.tls_cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_->ctx, options_.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls_->ctx) != 1) {
      ERR_clear_error();
      throw Error(Errc::kUsage, "TLS: cannot load --tls-cert " + options_.tls_cert + " / --tls-key " + options_.tls_key);
    }
  }
  listen_fd_ = options_.listen.rfind("unix:", 0) == 0 ? bind_unix(options_.listen.substr(5)) : bind_tcp(options_.listen, port_);
  acceptor_ = std::thread([this] { accept_loop(); });
}

void HttpServer::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) continue;
    std::unique_lock lock(mu_);
    if (active_ >= options_.max_connections) continue;  // fd closes: the peer sees EOF
    ++active_;
    live_fds_.insert(fd.get());
    lock.unlock();
    std::thread([this, fd = std::move(fd)]() mutable { serve_connection(std::move(fd)); }).detach();
  }
}

void HttpServer::serve_connection(UniqueFd owned) {
  const int fd = owned.get();
  timeval tv{options_.idle_timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  try {
    Conn conn(fd, tls_ ? tls_->ctx : nullptr);
    if (tls_ && looks_like_plain_http(fd)) {
      log_debug("plain HTTP on the TLS port: answered 400");
      refuse_plain_http(fd, options_.limits);
    } else if (conn.handshake()) {
      std::string buffer;
      char chunk[16384];
      bool open = true;
      while (open && !stopping_) {
        HttpServerRequest req;
        size_t used = 0;
        HttpServerResponse resp;
        bool keep = false;
        try {
          if (parse_http_request(buffer, options_.limits, req, used) == HttpParse::kNeedMore) {
            ssize_t n = conn.read(chunk, sizeof chunk);
            if (n <= 0) break;
            buffer.append(chunk, static_cast<size_t>(n));
            continue;
          }
          buffer.erase(0, used);
          resp = handler_(req);
          keep = req.keep_alive;
        } catch (const HttpParseError& e) {
          resp = {e.status, {{"Content-Type", "application/x-amz-json-1.1"}},
                  parse_error_body(e.status, e.message)};
        }
        open = conn.write_all(serialize(resp, keep)) && keep;
      }
      conn.close_notify();
    }
  } catch (const std::exception& e) {
    log_warn(std::string("connection failed: ") + e.what());
  }
  std::lock_guard lock(mu_);
  live_fds_.erase(fd);
  owned.reset();  // under the lock: stop() never shuts down a reused descriptor number
  --active_;
  idle_cv_.notify_all();
}

void HttpServer::stop() {
  if (!listen_fd_) return;
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::unique_lock lock(mu_);
  for (int fd : live_fds_) ::shutdown(fd, SHUT_RDWR);
  idle_cv_.wait(lock, [this] { return active_ == 0; });
  listen_fd_.reset();
  if (options_.listen.rfind("unix:", 0) == 0) ::unlink(options_.listen.substr(5).c_str());
}

}  // namespace shield_nitro::kms
