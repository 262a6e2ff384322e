// net's HTTP/1.1 server and parser, protocol-free: the parser's verdicts, and the answers the
// server makes itself (plain text by default, shaped by fault_response when set, with the
// configured request id header). kms-local's KMS-shaped flavour is tested in tests/kms/load_test.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/net/http_server.h"
#include "shield_nitro/net/endpoint.h"

namespace {

using namespace shield_nitro;
using namespace shield_nitro::net;

HttpParse parse(const std::string& text, HttpServerRequest& out, size_t& used, HttpLimits limits = {}) {
  return parse_http_request(text, limits, out, used);
}

int parse_status(const std::string& text, HttpLimits limits = {}) {
  HttpServerRequest r;
  size_t used = 0;
  try {
    parse(text, r, used, limits);
  } catch (const HttpParseError& e) {
    return e.status;
  }
  return 0;
}

TEST(HttpParser, ParsesOneRequestAndLeavesThePipelinedNext) {
  std::string one = "POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-Amz-Target: T.Op\r\nContent-Length: 3\r\n\r\nabc";
  std::string two = "GET / HTTP/1.0\r\n\r\n";
  HttpServerRequest r;
  size_t used = 0;
  ASSERT_EQ(parse(one + two, r, used), HttpParse::kComplete);
  EXPECT_EQ(used, one.size());
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/a/b");
  EXPECT_EQ(r.query, "x=1");
  EXPECT_EQ(r.body, "abc");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(find_header(r.headers, "x-amz-target").value_or(""), "T.Op");
  EXPECT_FALSE(find_header(r.headers, "missing").has_value());
  ASSERT_EQ(parse(two, r, used), HttpParse::kComplete);
  EXPECT_FALSE(r.keep_alive);  // HTTP/1.0 without keep-alive
}

TEST(HttpParser, WaitsForTheWholeHeadAndBody) {
  HttpServerRequest r;
  size_t used = 0;
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n", r, used), HttpParse::kNeedMore);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", r, used), HttpParse::kNeedMore);
}

TEST(HttpParser, RefusesWhatItDoesNotSupportWithTheStatusToAnswer) {
  EXPECT_EQ(parse_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
  EXPECT_EQ(parse_status("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400);
  EXPECT_EQ(parse_status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
  EXPECT_EQ(parse_status("POST / HTTP/2.0\r\n\r\n"), 505);
  EXPECT_EQ(parse_status("POST nopath HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(parse_status("POST / HTTP/1.1\r\n folded: x\r\n\r\n"), 400);
  EXPECT_EQ(parse_status("POST / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n"), 400);
  HttpLimits small{64, 8};
  EXPECT_EQ(parse_status("POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n", small), 413);
  EXPECT_EQ(parse_status("GET / HTTP/1.1\r\nX: " + std::string(100, 'a') + "\r\n\r\n", small), 431);
  EXPECT_EQ(parse_status("GET / HTTP/1.1\r\nX: " + std::string(100, 'a'), small), 431);  // no end in sight
}

// ---- the server ----

// A connection to 127.0.0.1:port.
UniqueFd connect_to(int port) { return net::connect(net::Endpoint::tcp("127.0.0.1", static_cast<uint16_t>(port))); }

struct Answer {
  int status = 0;
  std::string head, body;
};

// Sends request and reads one answer (head, then Content-Length bytes).
Answer exchange(int port, const std::string& request) {
  UniqueFd fd = connect_to(port);
  EXPECT_EQ(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string data;
  char buf[4096];
  Answer a;
  for (;;) {
    auto end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      a.head = data.substr(0, end);
      auto cl = a.head.find("Content-Length: ");
      size_t len = cl == std::string::npos ? 0 : std::stoul(a.head.substr(cl + 16));
      if (data.size() >= end + 4 + len) {
        a.body = data.substr(end + 4, len);
        a.status = std::atoi(a.head.c_str() + 9);
        return a;
      }
    }
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) return a;
    data.append(buf, static_cast<size_t>(n));
  }
}

const std::string kGet = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";

TEST(HttpServer, ServesTheHandlersAnswerWithDate) {
  HttpServer server({"127.0.0.1:0"}, [](const HttpServerRequest& r) {
    return HttpServerResponse{200, {{"Content-Type", "text/plain"}}, "path " + r.path};
  });
  server.start();
  Answer a = exchange(server.port(), kGet);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "path /x");
  EXPECT_NE(a.head.find("\r\nDate: "), std::string::npos) << a.head;
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()));
}

// Without a responder the server's own answers are plain text naming the reason, and carry no
// protocol-specific headers (no x-amzn-RequestId).
TEST(HttpServer, ItsOwnAnswersArePlainTextByDefault) {
  HttpServer server({"127.0.0.1:0"}, [](const HttpServerRequest&) -> HttpServerResponse {
    throw std::runtime_error("boom");
  });
  server.start();
  Answer failed = exchange(server.port(), kGet);
  EXPECT_EQ(failed.status, 500);
  EXPECT_NE(failed.head.find("Content-Type: text/plain"), std::string::npos) << failed.head;
  EXPECT_EQ(failed.body, "the server failed to handle the request\n");
  EXPECT_EQ(failed.head.find("x-amzn-RequestId"), std::string::npos);
  Answer chunked = exchange(server.port(), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(chunked.status, 501);
  EXPECT_NE(chunked.body.find("Transfer-Encoding"), std::string::npos) << chunked.body;
}

TEST(HttpServer, AFullQueueIsAnsweredAsOverloaded503ByDefault) {
  HttpServerOptions o{"127.0.0.1:0"};
  o.max_queued = 0;  // every request is shed
  o.name = "test server";
  HttpServer server(o, [](const HttpServerRequest&) { return HttpServerResponse{200, {}, "served"}; });
  server.start();
  Answer a = exchange(server.port(), kGet);
  EXPECT_EQ(a.status, 503);
  EXPECT_NE(a.body.find("test server is shedding load"), std::string::npos) << a.body;
}

// fault_response shapes every answer the server makes itself, and request_id_header goes on
// all of them (handler answers included, unless the handler set it).
TEST(HttpServer, TheFaultResponderAndRequestIdShapeItsOwnAnswers) {
  std::atomic<int> ids{0};
  HttpServerOptions o{"127.0.0.1:0"};
  o.fault_response = [](HttpFault f, int status, const std::string& message) {
    int code = f == HttpFault::kOverloaded ? 429 : status;
    return HttpServerResponse{code, {{"Content-Type", "application/json"}},
                              "{\"fault\":" + std::to_string(static_cast<int>(f)) + "}"};
  };
  o.request_id_header = "X-Request-Id";
  o.request_id = [&ids] { return "id-" + std::to_string(++ids); };
  HttpServer server(o, [](const HttpServerRequest& r) -> HttpServerResponse {
    if (r.path == "/throw") throw std::runtime_error("boom");
    if (r.path == "/own") return {200, {{"X-Request-Id", "mine"}}, "ok"};
    return {200, {}, "ok"};
  });
  server.start();
  Answer failed = exchange(server.port(), "GET /throw HTTP/1.1\r\n\r\n");
  EXPECT_EQ(failed.status, 500);
  EXPECT_EQ(failed.body, "{\"fault\":" + std::to_string(static_cast<int>(HttpFault::kHandlerFailed)) + "}");
  EXPECT_NE(failed.head.find("X-Request-Id: id-"), std::string::npos) << failed.head;
  Answer malformed = exchange(server.port(), "BAD\r\n\r\n");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.body, "{\"fault\":" + std::to_string(static_cast<int>(HttpFault::kMalformed)) + "}");
  Answer ok = exchange(server.port(), kGet);
  EXPECT_NE(ok.head.find("X-Request-Id: id-"), std::string::npos) << ok.head;
  Answer own = exchange(server.port(), "GET /own HTTP/1.1\r\n\r\n");
  EXPECT_NE(own.head.find("X-Request-Id: mine"), std::string::npos) << own.head;
  EXPECT_EQ(own.head.find("X-Request-Id: id-"), std::string::npos) << own.head;
}

}  // namespace
