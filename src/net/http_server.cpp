#include "shield_nitro/net/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::net {

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

std::optional<std::string> find_header(const HeaderList& headers, const std::string& name) {
  std::string want = lower(name);
  for (const auto& [k, v] : headers)
    if (lower(k) == want) return v;
  return std::nullopt;
}

HttpServerResponse plain_fault_response(HttpFault, int status, const std::string& message) {
  return {status, {{"Content-Type", "text/plain; charset=utf-8"}}, message + "\n"};
}

const char* http_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
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
//
// One epoll thread owns every socket and every SSL object: it accepts, handshakes, reads and
// parses requests, and writes answers, never blocking (sockets are non-blocking; TLS reports
// SSL_ERROR_WANT_READ/WRITE and the connection waits for that readiness). A complete request
// goes to the worker pool through a bounded queue; the answer comes back through an eventfd.

struct HttpServer::Tls {
  SSL_CTX* ctx = nullptr;
  ~Tls() { SSL_CTX_free(ctx); }
};

namespace {

int64_t now_ns() { return monotonic_ns(); }
constexpr int64_t kSecond = 1'000'000'000;

std::string http_date() { return format_utc(system_clock().now_s(), "%a, %d %b %Y %H:%M:%S GMT"); }

bool has_header(const HeaderList& h, const char* name) { return find_header(h, name).has_value(); }

// Every answer carries Date (AWS SDKs correct clock skew from it) and the configured request
// id header, also the ones the server makes itself (413, 408, overload).
std::string serialize(HttpServerResponse r, bool keep_alive, const HttpServerOptions& opt) {
  if (!opt.request_id_header.empty() && opt.request_id && !has_header(r.headers, opt.request_id_header.c_str()))
    r.headers.emplace_back(opt.request_id_header, opt.request_id());
  if (!has_header(r.headers, "Date")) r.headers.emplace_back("Date", http_date());
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + http_reason(r.status) + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  out.reserve(out.size() + r.body.size());  // no reallocation once the body is in
  out += r.body;
  if (opt.wipe_buffers) OPENSSL_cleanse(r.body.data(), r.body.size());
  return out;
}

// Zeroes s (its whole buffer) when the server wipes what it carried.
void cleanse(std::string& s, bool wipe) {
  if (wipe && s.capacity() > 0) OPENSSL_cleanse(s.data(), s.capacity());
  s.clear();
}

// The declared Content-Length of the request head at the front of buffer (0 when absent or
// unreadable): how much an oversize body still to come must be discarded.
size_t declared_length(std::string_view buffer) {
  auto end = buffer.find("\r\n\r\n");
  std::string head = lower(std::string(buffer.substr(0, end)));
  auto at = head.find("\r\ncontent-length:");
  if (at == std::string::npos) return 0;
  size_t i = at + 17;
  while (i < head.size() && (head[i] == ' ' || head[i] == '\t')) ++i;
  size_t n = 0;
  for (; i < head.size() && std::isdigit(static_cast<unsigned char>(head[i])); ++i) {
    if (n > (SIZE_MAX - 9) / 10) return SIZE_MAX;
    n = n * 10 + static_cast<size_t>(head[i] - '0');
  }
  return n;
}

enum class State {
  kProbe,       // TLS port, nothing read yet: a TLS client or plain HTTP?
  kHandshake,   // SSL_accept in progress
  kReading,     // reading (and parsing) a request
  kWaiting,     // a worker runs the handler
  kWriting,     // sending an answer
  kDiscarding,  // reading an oversize body to throw away before its 413
  kLingering,   // answered and shut for writing: reading until the client's FIN, then close
};

struct Connection {
  uint64_t id = 0;
  UniqueFd fd;
  SSL* ssl = nullptr;
  State state = State::kReading;
  uint32_t events = 0;        // registered with epoll
  uint32_t ssl_wants = 0;     // EPOLLIN/EPOLLOUT when TLS asked for it (WANT_READ/WRITE), else 0
  bool registered = false;
  bool shed = false;          // over the connection cap: answer ThrottlingException
  bool plain_on_tls = false;  // answer 400 "this port speaks HTTPS"
  bool close_after = false;   // close once the answer is out
  std::string in, out;
  size_t out_off = 0;
  size_t discard_left = 0;
  size_t drained = 0;
  HttpServerResponse pending;  // sent once the discarding ends
  int64_t deadline = 0;        // monotonic ns; 0 = none
  bool wipe = false;           // wipe_buffers: zero in/out before they are freed
  ~Connection() {
    SSL_free(ssl);
    cleanse(in, wipe);
    cleanse(out, wipe);
  }
};

enum class Io { kOk, kAgain, kEof, kError };

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
  if (!fd || ::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
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
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
    int e = errno;
    throw Error(Errc::kIo, "cannot listen on unix:" + path + ": " + std::strerror(e));
  }
  return fd;
}

}  // namespace

struct HttpServer::Loop {
  HttpServer& server;
  const HttpServerOptions& opt;
  UniqueFd epoll, wake;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::unordered_map<int, std::unique_ptr<Connection>> conns;  // by fd
  std::unordered_map<uint64_t, int> fd_of;                     // connection id -> fd
  uint64_t next_id = 1;
  bool listen_armed = false;
  int64_t accept_paused_until = 0;

  // Worker pool: bounded queue in, completions out (then wake).
  struct Job {
    uint64_t conn;
    HttpServerRequest request;
  };
  struct Done {
    uint64_t conn;
    HttpServerResponse response;
    bool keep_alive;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  std::vector<Done> done;
  bool workers_stop = false;
  std::vector<std::thread> workers;

  Loop(HttpServer& s) : server(s), opt(s.options_) {}

  void start() {
    epoll = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    wake = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!epoll || !wake) throw Error(Errc::kIo, std::string("cannot start the HTTP server: ") + std::strerror(errno));
    set_nonblocking(server.listen_fd_.get());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake.get();
    ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &ev);
    arm_listen(true);
    int n = opt.workers > 0 ? opt.workers : std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
    for (int i = 0; i < n; ++i) workers.emplace_back([this] { work(); });
    thread = std::thread([this] { run(); });
  }

  void stop() {
    stopping = true;
    notify();
    if (thread.joinable()) thread.join();
    {
      std::lock_guard lock(mu);
      workers_stop = true;
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }

  static void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

  void notify() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(wake.get(), &one, sizeof one);
  }

  void arm_listen(bool on) {
    if (on == listen_armed) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = server.listen_fd_.get();
    ::epoll_ctl(epoll.get(), on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, server.listen_fd_.get(), &ev);
    listen_armed = on;
  }

  // ---- workers ----

  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return workers_stop || !jobs.empty(); });
        if (workers_stop) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      HttpServerResponse resp;
      try {
        resp = server.handler_(job.request);
        cleanse(job.request.body, opt.wipe_buffers);
      } catch (const std::exception& e) {
        log_warn(opt.name + ": request handler failed: " + e.what());
        resp = fault(HttpFault::kHandlerFailed, 500, "the server failed to handle the request");
      } catch (...) {
        log_warn(opt.name + ": request handler failed with a non-standard exception");
        resp = fault(HttpFault::kHandlerFailed, 500, "the server failed to handle the request");
      }
      bool first;
      {
        std::lock_guard lock(mu);
        first = done.empty();
        done.push_back({job.conn, std::move(resp), job.request.keep_alive});
      }
      if (first) notify();  // else a wake-up is pending: the loop takes every answer at once
    }
  }

  // false when the queue is full: the caller sheds the request.
  bool submit(uint64_t conn, HttpServerRequest req) {
    {
      std::lock_guard lock(mu);
      if (jobs.size() >= opt.max_queued) return false;
      jobs.push_back({conn, std::move(req)});
    }
    cv.notify_one();
    return true;
  }

  // ---- the loop ----

  void run() {
    std::vector<epoll_event> evs(256);
    int64_t next_sweep = now_ns() + kSecond / 4;
    while (!stopping) {
      int n = ::epoll_wait(epoll.get(), evs.data(), static_cast<int>(evs.size()), 100);
      for (int i = 0; i < n && !stopping; ++i) {
        int fd = evs[i].data.fd;
        if (fd == wake.get()) {
          uint64_t v;
          [[maybe_unused]] ssize_t r = ::read(wake.get(), &v, sizeof v);
          collect();
        } else if (fd == server.listen_fd_.get()) {
          accept_all();
        } else if (auto it = conns.find(fd); it != conns.end()) {
          on_event(*it->second, evs[i].events);
        }
      }
      int64_t now = now_ns();
      if (now >= next_sweep) {
        sweep(now);
        next_sweep = now + kSecond / 4;
      }
    }
    for (auto& [fd, c] : conns) ::shutdown(fd, SHUT_RDWR);
    conns.clear();
    fd_of.clear();
  }

  void accept_all() {
    for (;;) {
      int fd = ::accept4(server.listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: leave the rest in the listen backlog (they wait, they are not
          // reset) until a connection closes or 100 ms pass.
          log_warn(opt.name + ": cannot accept: " + std::strerror(errno));
          arm_listen(false);
          accept_paused_until = now_ns() + kSecond / 10;
        }
        return;
      }
      auto c = std::make_unique<Connection>();
      c->wipe = opt.wipe_buffers;
      // Wiping: one buffer of the largest request up front, so appends never reallocate and
      // leave unwiped copies behind.
      if (c->wipe) c->in.reserve(read_cap() + 16384);
      c->id = next_id++;
      c->fd = UniqueFd(fd);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      c->shed = static_cast<int>(conns.size()) >= opt.max_connections;
      if (server.tls_) {
        c->state = State::kProbe;
        c->ssl = SSL_new(server.tls_->ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
          ERR_clear_error();
          continue;  // out of memory: nothing we could answer with
        }
        c->deadline = now_ns() + opt.request_timeout_s * kSecond;
      } else {
        c->state = State::kReading;
        c->deadline = now_ns() + opt.idle_timeout_s * kSecond;
      }
      Connection& ref = *c;
      fd_of[c->id] = fd;
      conns.emplace(fd, std::move(c));
      update(ref);
    }
  }

  void close_conn(Connection& c) {
    int fd = c.fd.get();
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, fd, nullptr);
    fd_of.erase(c.id);
    conns.erase(fd);  // destroys c
    if (!listen_armed && !stopping) arm_listen(true);
  }

  // Registers the readiness the connection waits for: what TLS asked for, else its state's.
  void update(Connection& c) {
    uint32_t want = 0;
    switch (c.state) {
      case State::kWaiting: want = 0; break;
      case State::kWriting: want = EPOLLOUT; break;
      default: want = EPOLLIN; break;
    }
    if (c.ssl_wants && c.state != State::kWaiting && c.state != State::kLingering) want = c.ssl_wants;
    if (c.registered && want == c.events) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = c.fd.get();
    ::epoll_ctl(epoll.get(), c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd.get(), &ev);
    c.registered = true;
    c.events = want;
  }

  Io tls_result(Connection& c, int r) {
    int e = SSL_get_error(c.ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ) return c.ssl_wants = EPOLLIN, Io::kAgain;
    if (e == SSL_ERROR_WANT_WRITE) return c.ssl_wants = EPOLLOUT, Io::kAgain;
    if (e == SSL_ERROR_ZERO_RETURN) return Io::kEof;
    return Io::kError;
  }

  static Io sock_result(ssize_t r) {
    if (r == 0) return Io::kEof;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Io::kAgain;
    return Io::kError;
  }

  Io do_read(Connection& c, char* buf, size_t cap, size_t& got, bool raw = false) {
    if (c.ssl && !raw) {
      int r = SSL_read(c.ssl, buf, static_cast<int>(cap));
      if (r > 0) return got = static_cast<size_t>(r), c.ssl_wants = 0, Io::kOk;
      return tls_result(c, r);
    }
    ssize_t r = ::recv(c.fd.get(), buf, cap, 0);
    if (r > 0) return got = static_cast<size_t>(r), Io::kOk;
    return sock_result(r);
  }

  Io do_write(Connection& c, const char* buf, size_t n, size_t& put) {
    if (c.ssl) {
      int r = SSL_write(c.ssl, buf, static_cast<int>(std::min<size_t>(n, INT_MAX)));
      if (r > 0) return put = static_cast<size_t>(r), c.ssl_wants = 0, Io::kOk;
      return tls_result(c, r);
    }
    ssize_t r = ::send(c.fd.get(), buf, n, MSG_NOSIGNAL);
    if (r > 0) return put = static_cast<size_t>(r), Io::kOk;
    return sock_result(r);
  }

  void on_event(Connection& c, uint32_t ev) {
    switch (c.state) {
      case State::kProbe: return probe(c);
      case State::kHandshake: return handshake(c);
      case State::kReading: return read_request(c);
      case State::kWriting: return write(c);
      case State::kDiscarding: return discard(c);
      case State::kLingering: return linger(c);
      case State::kWaiting:
        // Only a hang-up or error wakes a connection waiting for its handler: nobody is left
        // to answer (the answer is dropped when it comes).
        if (ev & (EPOLLHUP | EPOLLERR)) close_conn(c);
        return;
    }
  }

  // A client speaking plain HTTP to the TLS port starts with a request line ("POST / ..."), where
  // a TLS client starts with a handshake record (0x16). Peeks, so a TLS client loses nothing.
  void probe(Connection& c) {
    char head[1];
    ssize_t n = ::recv(c.fd.get(), head, sizeof head, MSG_PEEK);
    if (n <= 0) {
      if (sock_result(n) != Io::kAgain) close_conn(c);
      return;
    }
    if (head[0] >= 'A' && head[0] <= 'Z') {
      log_debug(opt.name + ": plain HTTP on the TLS port: answered 400");
      SSL_free(c.ssl);
      c.ssl = nullptr;
      c.plain_on_tls = true;
      c.state = State::kReading;
      return read_request(c);
    }
    c.state = State::kHandshake;
    handshake(c);
  }

  void handshake(Connection& c) {
    int r = SSL_accept(c.ssl);
    if (r == 1) {
      c.ssl_wants = 0;
      c.state = State::kReading;
      c.deadline = now_ns() + opt.idle_timeout_s * kSecond;
      return read_request(c);
    }
    if (tls_result(c, r) != Io::kAgain) return close_conn(c);
    update(c);
  }

  size_t read_cap() const { return opt.limits.max_header_bytes + opt.limits.max_body_bytes + 4; }

  void read_request(Connection& c) {
    char buf[16384];
    bool eof = false;
    while (c.in.size() < read_cap()) {
      size_t got = 0;
      Io r = do_read(c, buf, sizeof buf, got);
      if (r == Io::kAgain) break;
      if (r == Io::kError) {
        if (c.wipe) OPENSSL_cleanse(buf, sizeof buf);
        return close_conn(c);
      }
      if (r == Io::kEof) {
        eof = true;
        break;
      }
      if (c.in.empty()) c.deadline = now_ns() + opt.request_timeout_s * kSecond;  // a request starts
      c.in.append(buf, got);
    }
    if (c.wipe) OPENSSL_cleanse(buf, sizeof buf);
    process(c, eof);
  }

  HttpServerResponse https_refusal() const {
    return {400, {{"Content-Type", "text/plain"}},
            "This port speaks HTTPS: the request was plain HTTP. Use an https:// URL."};
  }

  // The server's own answer, shaped by the configured responder (which must not throw: a
  // throwing one falls back to plain text rather than taking the event loop down).
  HttpServerResponse fault(HttpFault f, int status, const std::string& message) const {
    if (opt.fault_response) {
      try {
        return opt.fault_response(f, status, message);
      } catch (...) {
      }
    }
    return plain_fault_response(f, status, message);
  }

  HttpServerResponse throttled(const std::string& why) const {
    return fault(HttpFault::kOverloaded, 503, opt.name + " is shedding load (" + why + "): retry later");
  }

  void process(Connection& c, bool eof) {
    HttpServerRequest req;
    size_t used = 0;
    try {
      if (parse_http_request(c.in, opt.limits, req, used) == HttpParse::kNeedMore) {
        if (eof) return close_conn(c);  // the client gave up mid-request (or was idle)
        return update(c);
      }
    } catch (const HttpParseError& e) {
      if (c.plain_on_tls) return answer(c, https_refusal(), true);
      HttpServerResponse resp = fault(HttpFault::kMalformed, e.status, e.message);
      if (e.status == 413) {
        // Read what the client is still sending before answering: closing with its body
        // unread would reset the connection before it reads the 413.
        size_t body_at = c.in.find("\r\n\r\n") + 4;
        size_t have = c.in.size() - body_at;
        size_t want = std::min(declared_length(c.in), opt.limits.max_discard_bytes);
        c.discard_left = want > have ? want - have : 0;
        c.in.clear();
        if (c.discard_left > 0 && !eof) {
          c.pending = std::move(resp);
          c.state = State::kDiscarding;
          c.deadline = now_ns() + opt.request_timeout_s * kSecond;
          return discard(c);
        }
      }
      return answer(c, std::move(resp), true);
    }
    if (opt.wipe_buffers) {
      // Keep what follows (a pipelined request) in a buffer of the same reserved size, then
      // zero the old one whole: erase() would leave stale bytes past the new end.
      std::string rest;
      rest.reserve(c.in.capacity());
      rest.append(c.in, used, std::string::npos);
      cleanse(c.in, true);
      c.in.swap(rest);
    } else {
      c.in.erase(0, used);
    }
    if (c.plain_on_tls) return answer(c, https_refusal(), true);
    bool keep = req.keep_alive && !eof;
    if (c.shed) return answer(c, throttled("connection limit " + std::to_string(opt.max_connections) + " reached"), true);
    if (!submit(c.id, std::move(req)))
      return answer(c, throttled("request queue of " + std::to_string(opt.max_queued) + " full"), !keep);
    c.close_after = !keep;
    c.state = State::kWaiting;
    c.deadline = 0;
    update(c);
  }

  void answer(Connection& c, HttpServerResponse resp, bool close) {
    c.out = serialize(std::move(resp), !close, opt);
    c.out_off = 0;
    c.close_after = close;
    c.state = State::kWriting;
    c.ssl_wants = 0;
    c.deadline = now_ns() + opt.idle_timeout_s * kSecond;
    write(c);
  }

  void write(Connection& c) {
    while (c.out_off < c.out.size()) {
      size_t put = 0;
      Io r = do_write(c, c.out.data() + c.out_off, c.out.size() - c.out_off, put);
      if (r == Io::kAgain) return update(c);
      if (r != Io::kOk) return close_conn(c);
      c.out_off += put;
    }
    cleanse(c.out, opt.wipe_buffers);
    c.out_off = 0;
    if (c.close_after) return start_linger(c);
    c.state = State::kReading;
    c.ssl_wants = 0;
    c.deadline = now_ns() + (c.in.empty() ? opt.idle_timeout_s : opt.request_timeout_s) * kSecond;
    read_request(c);  // a pipelined request may be buffered already (here or inside TLS)
  }

  void discard(Connection& c) {
    char buf[65536];
    while (c.discard_left > 0) {
      size_t got = 0;
      Io r = do_read(c, buf, std::min(sizeof buf, c.discard_left), got);
      if (r == Io::kAgain) return update(c);
      if (r == Io::kError) return close_conn(c);
      if (r == Io::kEof) break;
      c.discard_left -= got;
    }
    answer(c, std::move(c.pending), true);
  }

  // Answered and closing: send TLS close_notify and our FIN, then read until the client's FIN
  // so that unread bytes never turn the close into a reset that destroys the answer.
  void start_linger(Connection& c) {
    if (c.ssl) {
      SSL_shutdown(c.ssl);
      ERR_clear_error();
    }
    ::shutdown(c.fd.get(), SHUT_WR);
    c.state = State::kLingering;
    c.drained = 0;
    c.deadline = now_ns() + opt.request_timeout_s * kSecond;
    update(c);
    linger(c);
  }

  void linger(Connection& c) {
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n > 0) {
        c.drained += static_cast<size_t>(n);
        if (c.drained > opt.limits.max_discard_bytes) return close_conn(c);
        continue;
      }
      if (sock_result(n) != Io::kAgain) return close_conn(c);
      return;
    }
  }

  void collect() {
    std::vector<Done> ready;
    {
      std::lock_guard lock(mu);
      ready.swap(done);
    }
    for (auto& d : ready) {
      auto it = fd_of.find(d.conn);
      if (it == fd_of.end()) continue;  // closed meanwhile
      Connection& c = *conns.at(it->second);
      if (c.state != State::kWaiting) continue;
      answer(c, std::move(d.response), !d.keep_alive || c.close_after);
    }
  }

  void sweep(int64_t now) {
    if (!listen_armed && now >= accept_paused_until) arm_listen(true);
    std::vector<uint64_t> due;
    for (auto& [fd, c] : conns)
      if (c->deadline != 0 && now >= c->deadline) due.push_back(c->id);
    for (uint64_t id : due) {
      auto it = fd_of.find(id);
      if (it == fd_of.end()) continue;
      Connection& c = *conns.at(it->second);
      switch (c.state) {
        case State::kReading:
          if (c.in.empty()) {
            close_conn(c);  // idle keep-alive connection
          } else {
            c.in.clear();
            answer(c, fault(HttpFault::kTimeout, 408,
                            "the request did not arrive within " + std::to_string(opt.request_timeout_s) + " s"),
                   true);
          }
          break;
        case State::kDiscarding: answer(c, std::move(c.pending), true); break;
        case State::kWaiting: break;
        default: close_conn(c); break;  // handshake, a peer that does not read, lingering
      }
    }
  }
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { stop(); }

std::string HttpServer::url() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

void HttpServer::start() {
  // OpenSSL writes with write(2): a peer that hangs up mid-answer must not kill the process.
  ::signal(SIGPIPE, SIG_IGN);
  // Each connection is a descriptor: the usual soft limit (1024) would refuse the thousandth.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
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
    // Non-blocking writes: SSL_write may send part of the answer and be called again with the
    // rest from wherever the buffer is then.
    SSL_CTX_set_mode(tls_->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
  listen_fd_ = options_.listen.rfind("unix:", 0) == 0 ? bind_unix(options_.listen.substr(5)) : bind_tcp(options_.listen, port_);
  loop_ = std::make_unique<Loop>(*this);
  loop_->start();
}

void HttpServer::stop() {
  if (!listen_fd_) return;
  if (loop_) loop_->stop();
  loop_.reset();
  listen_fd_.reset();
  if (options_.listen.rfind("unix:", 0) == 0) ::unlink(options_.listen.substr(5).c_str());
}

}  // namespace shield_nitro::net
