#include <gtest/gtest.h>

#include <string>

#include "shield_nitro/relay/proxy_request.h"

using namespace shield_nitro::relay;

namespace {

ProxyRequest ok(std::string_view text, const ProxyLimits& limits = {}) {
  ProxyParse p = parse_proxy_request(text, limits);
  EXPECT_EQ(p.status, ProxyParse::Status::kOk) << text << " -> " << p.http_status << " " << p.why;
  return p.request;
}

void refused(std::string_view text, int status, const std::string& why, const ProxyLimits& limits = {}) {
  ProxyParse p = parse_proxy_request(text, limits);
  EXPECT_EQ(p.status, ProxyParse::Status::kRefused) << text;
  EXPECT_EQ(p.http_status, status) << text << " -> " << p.why;
  EXPECT_NE(p.why.find(why), std::string::npos) << text << " -> " << p.why;
}

bool need_more(std::string_view text) {
  return parse_proxy_request(text).status == ProxyParse::Status::kNeedMore;
}

}  // namespace

TEST(ProxyRequest, ParsesConnectAndLeavesWhatFollowsTheHead) {
  std::string head = "CONNECT API.Example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nUser-Agent: curl\r\n\r\n";
  ProxyRequest r = ok(head + "\x16\x03\x01 tls bytes");
  EXPECT_EQ(r.kind, ProxyRequest::Kind::kConnect);
  EXPECT_EQ(r.host, "api.example.com");
  EXPECT_EQ(r.port, 443);
  EXPECT_EQ(r.head_size, head.size());
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[1].first, "User-Agent");
  EXPECT_EQ(r.headers[1].second, "curl");
  EXPECT_EQ(r.authority(), "api.example.com:443");
  ProxyRequest v6 = ok("CONNECT [2001:DB8::1]:8443 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(v6.host, "2001:db8::1");
  EXPECT_EQ(v6.authority(), "[2001:db8::1]:8443");
  EXPECT_EQ(v6.version, "HTTP/1.0");
}

TEST(ProxyRequest, AbsoluteFormIsForwardedInOriginForm) {
  ProxyRequest r = ok(
      "GET http://Example.com/a/b?q=1&r=%20 HTTP/1.1\r\nHost: wrong.example\r\nProxy-Connection: keep-alive\r\n"
      "Proxy-Authorization: Basic eA==\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(r.kind, ProxyRequest::Kind::kForward);
  EXPECT_EQ(r.host, "example.com");
  EXPECT_EQ(r.port, 80);
  EXPECT_EQ(r.target, "/a/b?q=1&r=%20");
  EXPECT_EQ(origin_form_head(r),
            "GET /a/b?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nConnection: close\r\n\r\n");
  ProxyRequest bare = ok("POST http://10.0.0.1:8080 HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(bare.port, 8080);
  EXPECT_EQ(origin_form_head(bare), "POST / HTTP/1.0\r\nHost: 10.0.0.1:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ok("GET HTTP://h?x HTTP/1.1\r\n\r\n").target, "/?x");
  EXPECT_EQ(origin_form_head(ok("GET http://[::1]:81/ HTTP/1.1\r\n\r\n")),
            "GET / HTTP/1.1\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n");
}

TEST(ProxyRequest, WaitsForTheBlankLine) {
  EXPECT_TRUE(need_more(""));
  EXPECT_TRUE(need_more("CONNECT a.com:443 HTTP/1.1\r\n"));
  EXPECT_TRUE(need_more("CONNECT a.com:443 HTTP/1.1\r\nHost: a\r\n\r"));
}

TEST(ProxyRequest, RefusesWhatIsNotAStrictProxyRequest) {
  refused("GET /index.html HTTP/1.1\r\n\r\n", 400, "send an absolute http:// URL or CONNECT");
  refused("GET https://a.com/ HTTP/1.1\r\n\r\n", 400, "through CONNECT");
  refused("GET ftp://a.com/ HTTP/1.1\r\n\r\n", 400, "malformed request target");
  refused("GET http://user:pw@a.com/ HTTP/1.1\r\n\r\n", 400, "credentials");
  refused("GET http://a.com/#frag HTTP/1.1\r\n\r\n", 400, "fragment");
  refused("GET http://a..com/ HTTP/1.1\r\n\r\n", 400, "malformed host");
  refused("GET http://a.com:0/ HTTP/1.1\r\n\r\n", 400, "malformed host");
  refused("CONNECT a.com HTTP/1.1\r\n\r\n", 400, "HOST:PORT");
  refused("CONNECT a.com:65536 HTTP/1.1\r\n\r\n", 400, "HOST:PORT");
  refused("CONNECT a.com:44x HTTP/1.1\r\n\r\n", 400, "HOST:PORT");
  refused("CONNECT [::1 HTTP/1.1\r\n\r\n", 400, "HOST:PORT");
  refused("CONNECT [zz::1]:443 HTTP/1.1\r\n\r\n", 400, "HOST:PORT");
  refused("CONNECT a/b.com:443 HTTP/1.1\r\n\r\n", 400, "HOST:PORT");
  refused("CONNECT a.com:443 HTTP/2.0\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1");
  refused("CONNECT a.com:443 HTCPCP/1.0\r\n\r\n", 400, "HTTP version");
  refused("CONNECT  a.com:443 HTTP/1.1\r\n\r\n", 400, "request line");
  refused("CONNECT a.com:443\r\n\r\n", 400, "request line");
  refused(std::string("CONNECT a.com:443\0 HTTP/1.1\r\n\r\n", 32), 400, "request target");
  refused("GE(T http://a.com/ HTTP/1.1\r\n\r\n", 400, "method");
  refused("CONNECT a.com:443 HTTP/1.1\r\n folded\r\n\r\n", 400, "folding");
  refused("CONNECT a.com:443 HTTP/1.1\r\nNo-Colon\r\n\r\n", 400, "header line");
  refused("CONNECT a.com:443 HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "header name");
  refused("CONNECT a.com:443 HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "control character");
  refused("POST http://a.com/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
          "both Transfer-Encoding and Content-Length");
}

TEST(ProxyRequest, GarbageIsRefusedAsSoonAsItShows) {
  // A TLS ClientHello sent to the proxy itself, a bare LF: refused at once, not after 16 KiB.
  refused(std::string("\x16\x03\x01\x02\x00", 5), 400, "not an HTTP request");
  refused("CONNECT a.com:443 HTTP/1.1\n", 400, "bare LF");
  refused(std::string("\0", 1), 400, "not an HTTP request");
}

TEST(ProxyRequest, OversizeHeadsAre431) {
  ProxyLimits small;
  small.max_head_bytes = 64;
  small.max_headers = 2;
  std::string big = "CONNECT a.com:443 HTTP/1.1\r\nX-Pad: " + std::string(100, 'a');
  refused(big, 431, "exceeds 64 bytes", small);  // no end in sight: refused without waiting for it
  refused(big + "\r\n\r\n", 431, "exceeds 64 bytes", small);
  refused("CONNECT a.com:443 HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, "more than 2 header lines", small);
  ok("CONNECT a.com:443 HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", small);
}

TEST(ProxyRequest, SplitsAuthorities) {
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(split_authority("Kms.example.com:443", host, port));
  EXPECT_EQ(host, "kms.example.com");
  EXPECT_EQ(port, 443);
  EXPECT_TRUE(split_authority("[::1]:1", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(format_authority(host, port), "[::1]:1");
  for (const char* bad : {"", ":443", "a.com", "a.com:", "a.com:0", "a.com:-1", "a.com:+1", "a com:1", "a.com:1:2",
                          "[::1]443", "a\n.com:1"})
    EXPECT_FALSE(split_authority(bad, host, port)) << bad;
}
