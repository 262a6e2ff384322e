#include "shield_nitro/kms/http_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/sigpipe.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/fd.h"

namespace shield_nitro::kms {

namespace {

// ---- URL ----

[[noreturn]] void bad_url(const std::string& url, const std::string& why) {
  throw Error(Errc::kUsage, "malformed URL '" + url + "': " + why);
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// ---- response parsing ----

[[noreturn]] void bad_response(const std::string& why) { throw Error(Errc::kFormat, "malformed HTTP response: " + why); }

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_token_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Parses "HTTP/1.x NNN reason" and the header lines of head (no final CRLF CRLF).
void parse_head(std::string_view head, long& status, HeaderList& headers) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  if (line.size() < 12 || (line.substr(0, 9) != "HTTP/1.1 " && line.substr(0, 9) != "HTTP/1.0 ") || !is_digits(line.substr(9, 3)) ||
      (line.size() > 12 && line[12] != ' '))
    bad_response("status line '" + std::string(line.substr(0, 80)) + "'");
  status = std::stol(std::string(line.substr(9, 3)));
  if (status < 100) bad_response("status " + std::to_string(status));
  headers.clear();
  while (eol != std::string_view::npos) {
    size_t start = eol + 2;
    eol = head.find("\r\n", start);
    line = head.substr(start, eol == std::string_view::npos ? std::string_view::npos : eol - start);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) bad_response("obsolete header folding");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) bad_response("header line without a name");
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) bad_response("header name '" + std::string(name.substr(0, 80)) + "'");
    std::string_view value = trim_ows(line.substr(colon + 1));
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) bad_response("control character in header " + std::string(name));
    headers.emplace_back(std::string(name), std::string(value));
  }
}

// Walks a chunked body from body_start; the decoded bytes go to out only when complete.
HttpResponseParse parse_chunked(std::string_view in, size_t body_start, const HttpResponseLimits& limits, std::string& out,
                                size_t& consumed) {
  size_t pos = body_start, total = 0;
  std::vector<std::pair<size_t, size_t>> pieces;
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      if (in.size() - pos > 1024) bad_response("chunk size line too long");
      return HttpResponseParse::kNeedMore;
    }
    std::string_view size_text = trim_ows(in.substr(pos, eol - pos).substr(0, in.substr(pos, eol - pos).find(';')));
    if (size_text.empty() || size_text.size() > 15 ||
        !std::all_of(size_text.begin(), size_text.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }))
      bad_response("chunk size '" + std::string(size_text.substr(0, 20)) + "'");
    size_t n = std::stoull(std::string(size_text), nullptr, 16);
    pos = eol + 2;
    if (n == 0) break;
    if (n > limits.max_body_bytes - total) bad_response("body larger than " + std::to_string(limits.max_body_bytes) + " bytes");
    total += n;
    if (in.size() - pos < n + 2) return HttpResponseParse::kNeedMore;
    if (in.substr(pos + n, 2) != "\r\n") bad_response("chunk not followed by CRLF");
    pieces.emplace_back(pos, n);
    pos += n + 2;
  }
  // Trailer fields, up to an empty line (read and dropped).
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      if (in.size() - pos > limits.max_head_bytes) bad_response("trailer too long");
      return HttpResponseParse::kNeedMore;
    }
    bool empty = eol == pos;
    pos = eol + 2;
    if (empty) break;
  }
  out.clear();
  out.reserve(total);
  for (auto [at, n] : pieces) out.append(in.substr(at, n));
  consumed = pos;
  return HttpResponseParse::kComplete;
}

// ---- the connection ----

using SslCtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;
using SslPtr = std::unique_ptr<SSL, decltype(&SSL_free)>;

std::string openssl_error_text() {
  unsigned long e = ERR_get_error();
  std::string last;
  for (; e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    last = buf;
  }
  return last.empty() ? "unknown TLS error" : last;
}

// A private endpoint (kms-local) needs its CA passed: say so, not just "verify failed".
std::string untrusted_certificate(const std::string& ca_file, const std::string& detail) {
  std::string why = detail.empty() ? "" : " (" + detail + ")";
  if (ca_file.empty())
    return "the server's TLS certificate is not signed by a CA in the system trust store" + why +
           "; for a private endpoint such as kms-local, pass its CA with --kms-ca FILE";
  return "the server's TLS certificate does not verify with the CA file " + ca_file + why;
}

// A non-blocking socket, optionally under TLS; every wait ends at the request's deadline.
class Connection {
 public:
  Connection(UniqueFd fd, int64_t deadline_ns, long timeout_ms) : fd_(std::move(fd)), deadline_ns_(deadline_ns), timeout_ms_(timeout_ms) {
    net::set_nonblocking(fd_.get(), true);
  }

  void start_tls(const HttpUrl& url, const std::string& ca_file) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) throw Error(Errc::kIo, "SSL_CTX_new: " + openssl_error_text());
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    if (!ca_file.empty() && SSL_CTX_load_verify_locations(ctx_.get(), ca_file.c_str(), nullptr) != 1)
      throw Error(Errc::kIo, "cannot load the CA file " + ca_file + ": " + openssl_error_text());
    if (ca_file.empty()) load_system_store();
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd_.get()) != 1) throw Error(Errc::kIo, "SSL_new: " + openssl_error_text());
    // The certificate must name the URL's host (or IP), whatever socket carries the bytes.
    bool ip = is_ip_literal(url.host);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str()) != 1 : SSL_set1_host(ssl_.get(), url.host.c_str()) != 1)
      throw Error(Errc::kIo, "cannot set the host name to verify: " + openssl_error_text());
    if (!ip && SSL_set_tlsext_host_name(ssl_.get(), url.host.c_str()) != 1)
      throw Error(Errc::kIo, "cannot set SNI: " + openssl_error_text());
    ERR_clear_error();
    for (;;) {
      int rc = SSL_connect(ssl_.get());
      if (rc == 1) return;
      int err = SSL_get_error(ssl_.get(), rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT);
        continue;
      }
      long verify = SSL_get_verify_result(ssl_.get());
      if (verify != X509_V_OK)
        throw Error(Errc::kIo, untrusted_certificate(ca_file, std::string("SSL certificate problem: ") +
                                                                  X509_verify_cert_error_string(verify)));
      throw Error(Errc::kIo, "TLS handshake with " + url.host + " failed: " + io_error_text(err, rc));
    }
  }

  // OpenSSL's default locations (SSL_CERT_FILE/SSL_CERT_DIR, else its build's folder), and the
  // bundle the image's distribution keeps: an enclave runs in the app's image, whose OpenSSL
  // folder may not exist (/usr/lib/ssl is Debian's; Debian's libcurl read the first bundle below).
  void load_system_store() {
    SSL_CTX_set_default_verify_paths(ctx_.get());
    for (const char* bundle : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"})
      if (::access(bundle, R_OK) == 0 && SSL_CTX_load_verify_locations(ctx_.get(), bundle, nullptr) == 1) break;
    ERR_clear_error();
  }

  void write_all(std::string_view data) {
    while (!data.empty()) {
      if (ssl_) {
        size_t n = 0;
        ERR_clear_error();
        int rc = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
        if (rc == 1) {
          data.remove_prefix(n);
          continue;
        }
        int err = SSL_get_error(ssl_.get(), rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) throw Error(Errc::kIo, "sending the request: " + io_error_text(err, rc));
        wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT);
      } else {
        ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
        if (n > 0) {
          data.remove_prefix(static_cast<size_t>(n));
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          wait(POLLOUT);
          continue;
        }
        throw Error(Errc::kIo, std::string("sending the request: ") + std::strerror(errno));
      }
    }
  }

  // Reads what is there (waiting for something); 0 at the end of the stream. clean_end tells
  // whether a TLS stream ended with close_notify (a cut one must not pass for a complete body).
  size_t read_some(char* buf, size_t cap, bool& clean_end) {
    for (;;) {
      if (ssl_) {
        size_t n = 0;
        ERR_clear_error();
        int rc = SSL_read_ex(ssl_.get(), buf, cap, &n);
        if (rc == 1) return n;
        int err = SSL_get_error(ssl_.get(), rc);
        if (err == SSL_ERROR_ZERO_RETURN) {
          clean_end = true;
          return 0;
        }
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
          wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT);
          continue;
        }
        // The peer closed the socket without close_notify (OpenSSL 3: "unexpected eof").
        if (err == SSL_ERROR_SYSCALL || (err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
          if (errno == 0 || err == SSL_ERROR_SSL) {
            ERR_clear_error();
            clean_end = false;
            return 0;
          }
        }
        throw Error(Errc::kIo, "reading the response: " + io_error_text(err, rc));
      }
      ssize_t n = ::recv(fd_.get(), buf, cap, 0);
      if (n >= 0) {
        clean_end = true;
        return static_cast<size_t>(n);
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait(POLLIN);
        continue;
      }
      throw Error(Errc::kIo, std::string("reading the response: ") + std::strerror(errno));
    }
  }

  bool tls() const { return ssl_ != nullptr; }

 private:
  void wait(short events) {
    for (;;) {
      int64_t left_ms = (deadline_ns_ - monotonic_ns()) / 1'000'000;
      if (left_ms <= 0) throw Error(Errc::kTimeout, "no complete answer within " + std::to_string(timeout_ms_) + " ms");
      pollfd p{fd_.get(), events, 0};
      int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 60'000)));
      if (rc > 0) return;
      if (rc < 0 && errno != EINTR) throw Error(Errc::kIo, std::string("poll: ") + std::strerror(errno));
    }
  }

  std::string io_error_text(int err, int rc) const {
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
      return rc == 0 || errno == 0 ? "the connection was closed" : std::strerror(errno);
    return openssl_error_text();
  }

  UniqueFd fd_;
  int64_t deadline_ns_;
  long timeout_ms_;
  SslCtxPtr ctx_{nullptr, SSL_CTX_free};
  SslPtr ssl_{nullptr, SSL_free};
};

bool has_crlf(const std::string& s) { return s.find_first_of("\r\n") != std::string::npos || s.find('\0') != std::string::npos; }

std::string request_head(const std::string& method, const HttpUrl& url, const HeaderList& headers, size_t body_size) {
  for (char c : method)
    if (!is_token_char(c)) throw Error(Errc::kUsage, "malformed HTTP method '" + method + "'");
  std::string head = method + " " + url.target + " HTTP/1.1\r\n";
  if (!find_header(headers, "Host")) head += "Host: " + url.host_header() + "\r\n";
  for (const auto& [name, value] : headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char) || has_crlf(value))
      throw Error(Errc::kUsage, "HTTP header '" + name + "' has a malformed name or a line break in its value");
    head += name + ": " + value + "\r\n";
  }
  if (method != "GET" && !find_header(headers, "Content-Length")) head += "Content-Length: " + std::to_string(body_size) + "\r\n";
  if (!find_header(headers, "Connection")) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

}  // namespace

std::string HttpUrl::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return explicit_port ? h + ":" + std::to_string(port) : h;
}

HttpUrl parse_http_url(const std::string& url) {
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) bad_url(url, "space or control character");
  HttpUrl u;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) bad_url(url, "no scheme (http:// or https://)");
  std::string_view scheme(url.data(), scheme_end);
  if (iequals(scheme, "https")) u.tls = true;
  else if (!iequals(scheme, "http")) bad_url(url, "scheme is not http or https");
  size_t auth_start = scheme_end + 3;
  size_t auth_end = url.find_first_of("/?#", auth_start);
  std::string_view authority = std::string_view(url).substr(auth_start, auth_end == std::string::npos ? std::string::npos : auth_end - auth_start);
  if (authority.find('@') != std::string_view::npos) bad_url(url, "user info is not supported");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) bad_url(url, "unclosed [ in the host");
    u.host = std::string(authority.substr(1, close - 1));
    unsigned char buf[16];
    if (::inet_pton(AF_INET6, u.host.c_str(), buf) != 1) bad_url(url, "[" + u.host + "] is not an IPv6 address");
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') bad_url(url, "text after ]");
    if (!rest.empty()) port_text = rest.substr(1);
    u.explicit_port = !rest.empty();
  } else {
    size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      u.explicit_port = true;
    }
  }
  if (u.host.empty()) bad_url(url, "no host");
  if (u.explicit_port) {
    if (!is_digits(port_text) || port_text.size() > 5 || std::stoul(std::string(port_text)) == 0 ||
        std::stoul(std::string(port_text)) > 65535)
      bad_url(url, "port '" + std::string(port_text) + "' is not 1-65535");
    u.port = static_cast<uint16_t>(std::stoul(std::string(port_text)));
  } else {
    u.port = u.tls ? 443 : 80;
  }
  std::string target = auth_end == std::string::npos ? "" : url.substr(auth_end);
  target = target.substr(0, target.find('#'));
  if (target.empty() || target.front() == '?') target = "/" + target;
  u.target = target;
  return u;
}

HttpResponseParse parse_http_response(std::string_view in, bool at_eof, const HttpResponseLimits& limits, HttpResponse& out,
                                      size_t& consumed) {
  size_t start = 0;
  for (;;) {  // interim 1xx answers first
    size_t end = in.find("\r\n\r\n", start);
    if (end == std::string_view::npos) {
      if (in.size() - start > limits.max_head_bytes) bad_response("head larger than " + std::to_string(limits.max_head_bytes) + " bytes");
      if (at_eof) bad_response(in.size() == start ? "no answer" : "the connection ended inside the head");
      return HttpResponseParse::kNeedMore;
    }
    if (end - start > limits.max_head_bytes) bad_response("head larger than " + std::to_string(limits.max_head_bytes) + " bytes");
    HttpResponse r;
    parse_head(in.substr(start, end - start), r.status, r.headers);
    size_t body_start = end + 4;
    if (r.status >= 100 && r.status < 200) {
      if (r.status == 101) bad_response("unexpected 101 Switching Protocols");
      start = body_start;
      continue;
    }
    if (r.status > 999) bad_response("status " + std::to_string(r.status));
    std::optional<std::string> te = find_header(r.headers, "Transfer-Encoding");
    std::optional<size_t> length;
    for (const auto& [name, value] : r.headers) {
      if (!iequals(name, "Content-Length")) continue;
      if (!is_digits(value) || value.size() > 15) bad_response("Content-Length '" + value.substr(0, 40) + "'");
      size_t n = std::stoull(value);
      if (length && *length != n) bad_response("two different Content-Length headers");
      length = n;
    }
    HttpResponseParse state;
    size_t used = 0;
    if (r.status == 204 || r.status == 304) {
      used = body_start;
      state = HttpResponseParse::kComplete;
    } else if (te) {
      if (!iequals(trim_ows(*te), "chunked")) bad_response("unsupported Transfer-Encoding '" + te->substr(0, 40) + "'");
      state = parse_chunked(in, body_start, limits, r.body, used);
      if (state == HttpResponseParse::kNeedMore && at_eof) bad_response("the connection ended inside a chunked body");
    } else if (length) {
      if (*length > limits.max_body_bytes) bad_response("body larger than " + std::to_string(limits.max_body_bytes) + " bytes");
      if (in.size() - body_start < *length) {
        if (at_eof) bad_response("the connection ended after " + std::to_string(in.size() - body_start) + " of " + std::to_string(*length) + " body bytes");
        return HttpResponseParse::kNeedMore;
      }
      r.body = std::string(in.substr(body_start, *length));
      used = body_start + *length;
      state = HttpResponseParse::kComplete;
    } else {  // the body runs to the end of the connection
      if (in.size() - body_start > limits.max_body_bytes) bad_response("body larger than " + std::to_string(limits.max_body_bytes) + " bytes");
      if (!at_eof) return HttpResponseParse::kNeedMore;
      r.body = std::string(in.substr(body_start));
      used = in.size();
      state = HttpResponseParse::kComplete;
    }
    if (state == HttpResponseParse::kComplete) {
      out = std::move(r);
      consumed = used;
    }
    return state;
  }
}

void check_via(const std::string& via) {
  if (via.empty()) return;
  try {
    net::Endpoint ep = net::Endpoint::parse(via);
    if (ep.kind != net::Endpoint::Kind::kTcp) return;
  } catch (const Error&) {
  }
  throw Error(Errc::kUsage, "--kms-via must be vsock://CID:PORT (e.g. vsock://3:8000) or unix:PATH, got '" + via + "'");
}

HttpResponse http_request(const std::string& method, const std::string& url, const HeaderList& headers, ByteView body,
                          const TransportOptions& transport) {
  check_via(transport.via);
  HttpUrl u = parse_http_url(url);
  const int64_t deadline = monotonic_ns() + int64_t{transport.timeout_ms} * 1'000'000;
  // The request and the answer may carry secrets (a session token, Encrypt's plaintext, a
  // data key): every buffer here is wiped however this ends.
  std::string wire = request_head(method, u, headers, method == "GET" ? 0 : body.size());
  std::string in;
  char chunk[16384];
  struct Wipe {
    std::string &a, &b;
    char* c;
    size_t n;
    ~Wipe() {
      wipe_string(a);
      wipe_string(b);
      secure_wipe(c, n);
    }
  } wipe{wire, in, chunk, sizeof chunk};
  if (method != "GET") wire.append(reinterpret_cast<const char*>(body.data()), body.size());

  std::string where = transport.via.empty() ? "" : " via " + transport.via;
  try {
    SigpipeBlock no_sigpipe;  // OpenSSL writes with write(2), which has no MSG_NOSIGNAL
    // The tunnel (or a TCP connection to the URL's host) carries the bytes; TLS still runs
    // here, to the URL's host. A vsock address resolves as the process's vsock network says.
    net::Endpoint ep = transport.via.empty() ? net::Endpoint::tcp(u.host, u.port) : net::Endpoint::parse(transport.via);
    long connect_ms = std::min(transport.connect_timeout_ms, transport.timeout_ms);
    UniqueFd fd;
    try {
      fd = net::connect(ep, std::chrono::milliseconds(std::max(1L, connect_ms)));
    } catch (const Error& e) {
      // A tunnel that cannot be opened is an I/O failure, whatever the reason (as before);
      // a TCP connection to the host that does not come up in time is a timeout.
      if (!transport.via.empty() && e.code() == Errc::kTimeout) throw Error(Errc::kIo, e.what());
      throw;
    }
    Connection c(std::move(fd), deadline, transport.timeout_ms);
    if (u.tls) c.start_tls(u, transport.ca_file);
    c.write_all(wire);
    HttpResponse resp;
    size_t used = 0;
    for (;;) {
      // Data that keeps coming (however slowly it completes) is cut off at the deadline too.
      if (monotonic_ns() > deadline) throw Error(Errc::kTimeout, "no complete answer within " + std::to_string(transport.timeout_ms) + " ms");
      bool clean_end = true;
      size_t n = c.read_some(chunk, sizeof chunk, clean_end);
      in.append(chunk, n);
      if (n == 0) {
        parse_http_response(in, true, {}, resp, used);  // throws when the answer is incomplete
        // A body that runs to the end of the connection is complete only if TLS says so.
        bool framed = find_header(resp.headers, "Content-Length") || find_header(resp.headers, "Transfer-Encoding") ||
                      resp.status == 204 || resp.status == 304;
        if (c.tls() && !clean_end && !framed) {
          wipe_string(resp.body);
          throw Error(Errc::kIo, "the TLS connection ended without close_notify: the body may be cut");
        }
        break;
      }
      if (parse_http_response(in, false, {}, resp, used) == HttpResponseParse::kComplete) break;
    }
    return resp;
  } catch (const Error& e) {
    Errc code = e.code() == Errc::kTimeout ? Errc::kTimeout : e.code() == Errc::kUsage ? Errc::kUsage : Errc::kIo;
    throw Error(code, method + " " + url + where + " failed: " + e.what());
  }
}

}  // namespace shield_nitro::kms
