// The KMS client's HTTP/1.1 transport on OpenSSL: URLs, the response parser, and requests
// against a scripted server on a unix socket (the tunnel KMS calls take inside an enclave).
// TLS through the tunnel, with the real host name verified, is in local_kms_test.cpp.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <thread>

#include "shield_nitro/kms/http_client.h"
#include "shield_nitro/net/endpoint.h"
#include "support/expect_error.h"
#include "support/net_util.h"
#include "support/tls_cert.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
using test_support::code_of;
using test_support::message_of;

namespace {

HttpResponse parse_all(const std::string& text, bool at_eof = true) {
  HttpResponse r;
  size_t used = 0;
  EXPECT_EQ(parse_http_response(text, at_eof, {}, r, used), HttpResponseParse::kComplete) << text;
  return r;
}

// Every proper prefix of a complete answer needs more (and never throws).
void expect_needs_more_until_the_end(const std::string& text) {
  for (size_t n = 0; n < text.size(); ++n) {
    HttpResponse r;
    size_t used = 0;
    EXPECT_EQ(parse_http_response(std::string_view(text).substr(0, n), false, {}, r, used), HttpResponseParse::kNeedMore)
        << n << " bytes of " << text;
  }
}

// One connection on a unix socket: reads the request head and Content-Length bytes of body,
// keeps it, writes `answer` (unless empty), then closes (unless hold).
class ScriptedServer {
 public:
  ScriptedServer(std::string answer, bool hold = false) : answer_(std::move(answer)), hold_(hold) {
    path_ = dir_.path() + "/s.sock";
    listener_ = net::listen(net::Endpoint::unix_path(path_));
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    release_ = true;
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
  }
  std::string via() const { return "unix:" + path_; }
  std::string request() {
    thread_.join();
    thread_ = std::thread([] {});
    return request_;
  }

 private:
  void serve() {
    UniqueFd c(::accept(listener_.get(), nullptr, nullptr));
    if (!c) return;
    char buf[4096];
    size_t want = std::string::npos;
    for (;;) {
      size_t end = request_.find("\r\n\r\n");
      if (end != std::string::npos && want == std::string::npos) {
        auto at = request_.find("Content-Length: ");
        want = end + 4 + (at == std::string::npos || at > end ? 0 : std::stoul(request_.substr(at + 16)));
      }
      if (want != std::string::npos && request_.size() >= want) break;
      ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
      if (n <= 0) return;
      request_.append(buf, static_cast<size_t>(n));
    }
    if (!answer_.empty()) sn_test::write_all(c.get(), as_bytes(answer_));
    while (hold_ && !release_) ::usleep(10000);
  }

  test_support::TempDir dir_;
  std::string path_, answer_, request_;
  bool hold_;
  std::atomic<bool> release_{false};
  UniqueFd listener_;
  std::thread thread_;
};

TransportOptions via(const ScriptedServer& s, long timeout_ms = 10000) {
  TransportOptions t;
  t.via = s.via();
  t.timeout_ms = timeout_ms;
  return t;
}

}  // namespace

TEST(HttpUrl, SplitsSchemeHostPortAndTarget) {
  HttpUrl u = parse_http_url("https://kms.us-east-1.amazonaws.com/");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.host, "kms.us-east-1.amazonaws.com");
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.target, "/");
  EXPECT_EQ(u.host_header(), "kms.us-east-1.amazonaws.com");
  u = parse_http_url("http://169.254.169.254/latest/api/token");
  EXPECT_FALSE(u.tls);
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.target, "/latest/api/token");
  u = parse_http_url("HTTP://127.0.0.1:8080?x=1#frag");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.target, "/?x=1");
  EXPECT_EQ(u.host_header(), "127.0.0.1:8080");
  u = parse_http_url("https://[::1]:4443/a");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.host_header(), "[::1]:4443");
  for (const char* bad : {"ftp://x/", "x/y", "https:///", "https://u:p@host/", "https://host:0/", "https://host:65536/",
                          "https://host:8a/", "https://[::1/", "https://[nothost]/", "https://host/a b", "https://host/\r\nX: y"})
    EXPECT_EQ(code_of([&] { parse_http_url(bad); }), Errc::kUsage) << bad;
  EXPECT_EQ(message_of([] { parse_http_url("https://u@h/"); }), "malformed URL 'https://u@h/': user info is not supported");
}

TEST(HttpResponseParser, ContentLengthChunkedAndCloseDelimited) {
  std::string sized = "HTTP/1.1 400 Bad Request\r\nx-amzn-RequestId: r-1\r\nContent-Length: 5\r\n\r\nhello";
  expect_needs_more_until_the_end(sized);
  HttpResponse r = parse_all(sized, false);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(find_header(r.headers, "X-Amzn-RequestId"), "r-1");

  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: t\r\n\r\n";
  expect_needs_more_until_the_end(chunked);
  EXPECT_EQ(parse_all(chunked, false).body, "hello!");

  std::string until_close = "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it";
  HttpResponse more;
  size_t used = 0;
  EXPECT_EQ(parse_http_response(until_close, false, {}, more, used), HttpResponseParse::kNeedMore);
  EXPECT_EQ(parse_all(until_close, true).body, "all of it");

  // Interim answers are skipped; a 204 has no body.
  r = parse_all("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nA: b\r\n\r\n", false);
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.body, "");
}

TEST(HttpResponseParser, RefusesMalformedAndOversizeAnswers) {
  HttpResponseLimits small{.max_head_bytes = 64, .max_body_bytes = 8};
  auto parse = [&](const std::string& text, bool eof = true) {
    HttpResponse r;
    size_t used = 0;
    parse_http_response(text, eof, small, r, used);
  };
  for (const char* bad : {
           "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n",
           "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "HTTP/1.1 200 OK\r\nBad name: x\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
           "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", "HTTP/1.1 101 Switching\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab",  // cut at the end of the connection
           "HTTP/1.1 200 OK\r\nX: y",                         // cut inside the head
           ""})
    EXPECT_EQ(code_of([&] { parse(bad); }), Errc::kFormat) << bad;
  EXPECT_EQ(code_of([&] { parse("HTTP/1.1 200 OK\r\nX: " + std::string(100, 'a'), false); }), Errc::kFormat);
  EXPECT_EQ(message_of([&] { parse("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"); }),
            "malformed HTTP response: the connection ended after 2 of 4 body bytes");
}

TEST(HttpRequest, SendsHostLengthAndCloseAndReturnsAnErrorAnswerWithItsBody) {
  ScriptedServer s("HTTP/1.1 400 Bad Request\r\nx-amzn-RequestId: r-9\r\nContent-Length: 44\r\n\r\n"
                   "{\"__type\":\"NotFoundException\",\"message\":\"x\"}");
  HttpResponse r = http_request("PUT", "http://169.254.169.254/latest/api/token", {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}},
                                {}, via(s));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "{\"__type\":\"NotFoundException\",\"message\":\"x\"}");
  EXPECT_EQ(find_header(r.headers, "x-amzn-requestid"), "r-9");
  EXPECT_EQ(s.request(),
            "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(HttpRequest, PostsTheBodyWithTheCallersHostAndReadsAChunkedAnswer) {
  ScriptedServer s("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
  std::string body = "{\"KeyId\":\"k\"}";
  HttpResponse r = http_request("POST", "http://kms.example:4443/",
                                {{"Host", "kms.example:4443"}, {"X-Amz-Target", "TrentService.Decrypt"}}, as_bytes(body), via(s));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{}");
  EXPECT_EQ(s.request(), "POST / HTTP/1.1\r\nHost: kms.example:4443\r\nX-Amz-Target: TrentService.Decrypt\r\n"
                         "Content-Length: 13\r\nConnection: close\r\n\r\n" + body);
}

TEST(HttpRequest, TransportFailuresNameTheRequestAndTheTunnel) {
  {  // no answer at all: the timeout ends it
    ScriptedServer s("", true);
    auto e = test_support::thrown<Error>([&] { http_request("GET", "http://h/x", {}, {}, via(s, 200)); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::kTimeout);
    EXPECT_EQ(std::string(e->what()), "GET http://h/x via " + s.via() + " failed: no complete answer within 200 ms");
  }
  {  // an answer cut short by the end of the connection
    ScriptedServer s("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    auto e = test_support::thrown<Error>([&] { http_request("GET", "http://h/x", {}, {}, via(s)); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::kIo);
    EXPECT_NE(std::string(e->what()).find("failed: malformed HTTP response: the connection ended after 3 of 10 body bytes"),
              std::string::npos) << e->what();
  }
  {  // nothing listening
    test_support::TempDir d;
    TransportOptions t;
    t.via = "unix:" + d.path() + "/none.sock";
    auto e = test_support::thrown<Error>([&] { http_request("GET", "http://h/x", {}, {}, t); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), Errc::kIo);
    EXPECT_EQ(std::string(e->what()).rfind("GET http://h/x via " + t.via + " failed: ", 0), 0u) << e->what();
  }
  // A header that would end the head early is refused before anything is sent.
  EXPECT_EQ(code_of([] { http_request("GET", "http://h/", {{"X-A", "1\r\nX-B: 2"}}, {}, {}); }), Errc::kUsage);
  EXPECT_EQ(code_of([] { http_request("GET", "http://h/", {{"X A", "1"}}, {}, {}); }), Errc::kUsage);
  EXPECT_EQ(code_of([] { http_request("GET", "gopher://h/", {}, {}, {}); }), Errc::kUsage);
}

namespace {

// One TLS connection on a unix socket (the tunnel): the answer, then close_notify or not.
void serve_tls_once(int listener, const std::string& dir, const std::string& answer, bool close_notify) {
  UniqueFd c(::accept(listener, nullptr, nullptr));
  if (!c) return;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  SSL_CTX_use_certificate_file(ctx.get(), (dir + "/srv.pem").c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_use_PrivateKey_file(ctx.get(), (dir + "/srv.key").c_str(), SSL_FILETYPE_PEM);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), c.get());
  if (SSL_accept(ssl.get()) != 1) return;
  std::string got;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    int n = SSL_read(ssl.get(), buf, sizeof buf);
    if (n <= 0) return;
    got.append(buf, static_cast<size_t>(n));
  }
  SSL_write(ssl.get(), answer.data(), static_cast<int>(answer.size()));
  if (close_notify) SSL_shutdown(ssl.get());
}

}  // namespace

// A body that runs to the end of the connection is complete over TLS only with close_notify:
// a cut connection must not pass for the whole answer.
TEST(HttpRequest, ACloseDelimitedTlsBodyNeedsCloseNotify) {
  test_support::TempDir d;
  ASSERT_TRUE(sn_test::make_test_tls(d.path(), "kms.test"));
  TransportOptions t;
  t.via = "unix:" + d.path() + "/tls.sock";
  t.ca_file = d.path() + "/ca.pem";
  for (bool notify : {true, false}) {
    UniqueFd listener = net::listen(net::Endpoint::unix_path(d.path() + "/tls.sock"));
    std::thread server([&] { serve_tls_once(listener.get(), d.path(), "HTTP/1.1 200 OK\r\n\r\nthe whole body", notify); });
    if (notify) {
      EXPECT_EQ(http_request("GET", "https://kms.test/", {}, {}, t).body, "the whole body");
    } else {
      auto e = test_support::thrown<Error>([&] { http_request("GET", "https://kms.test/", {}, {}, t); });
      ASSERT_TRUE(e);
      EXPECT_EQ(e->code(), Errc::kIo);
      EXPECT_NE(std::string(e->what()).find("without close_notify"), std::string::npos) << e->what();
    }
    server.join();
    listener.reset();
    ::unlink((d.path() + "/tls.sock").c_str());
  }
  // An IP literal in the URL is checked against the certificate's IP names (it has none: refused).
  UniqueFd listener = net::listen(net::Endpoint::unix_path(d.path() + "/tls.sock"));
  std::thread server([&] { serve_tls_once(listener.get(), d.path(), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true); });
  auto e = test_support::thrown<Error>([&] { http_request("GET", "https://127.0.0.1/", {}, {}, t); });
  server.join();
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("does not verify with the CA file " + t.ca_file + " (SSL certificate problem: "),
            std::string::npos) << e->what();
}
