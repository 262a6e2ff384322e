// kms-local's HTTP server under load and abuse: a thousand concurrent connections, connections
// past the cap, slow clients trickling headers, and an oversize body, plain and over TLS. Each
// request must get a complete HTTP answer (never a reset or a silent close).
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/kms_local/http_server.h"
#include "support/temp_dir.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
using shield_nitro::test_support::TempDir;

namespace {

const std::string kRequest = "POST / HTTP/1.1\r\nHost: kms\r\nContent-Length: 2\r\n\r\n{}";

HttpServerResponse ok(const HttpServerRequest&) { return {200, {{"Content-Type", "application/x-amz-json-1.1"}}, "{}"}; }

// A socket connected to 127.0.0.1:port; a stuck peer fails the test instead of hanging it.
UniqueFd connect_to(int port, bool nonblocking = false) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0));
  timeval tv{30, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  EXPECT_TRUE(rc == 0 || (nonblocking && errno == EINPROGRESS)) << std::strerror(errno);
  return fd;
}

// One HTTP answer as the client saw it.
struct Answer {
  std::string head, body;
  bool complete = false;
  int error = 0;  // errno of a failed read (ECONNRESET: the answer was destroyed)
  int status() const { return head.size() > 12 ? std::atoi(head.c_str() + 9) : 0; }
  bool has(const std::string& s) const { return head.find(s) != std::string::npos; }
};

// Parses what arrived so far; true once the head and Content-Length bytes of body are in.
bool parse_answer(const std::string& data, Answer& a) {
  auto end = data.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  a.head = data.substr(0, end);
  auto cl = a.head.find("Content-Length: ");
  size_t len = cl == std::string::npos ? 0 : std::stoul(a.head.substr(cl + 16));
  if (data.size() < end + 4 + len) return false;
  a.body = data.substr(end + 4, len);
  return a.complete = true;
}

// Reads one answer on a blocking socket.
Answer read_answer(int fd) {
  Answer a;
  std::string data;
  char buf[4096];
  while (!parse_answer(data, a)) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      a.error = n < 0 ? errno : 0;
      break;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  return a;
}

// After a "Connection: close" answer: the server's FIN, not a reset.
bool closes_cleanly(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

void send_all(int fd, const std::string& data) {
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << "send failed after " << off << " bytes: " << std::strerror(errno);
    off += static_cast<size_t>(n);
  }
}

bool is_throttling(const Answer& a) {
  return a.status() == 400 && a.body.find("\"__type\":\"ThrottlingException\"") != std::string::npos;
}

// Drives n connections at once, each sending kRequest; returns every answer.
std::vector<Answer> concurrent_requests(int port, size_t n) {
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < n; ++i) fds.push_back(connect_to(port, true));
  std::vector<Answer> answers(n);
  std::vector<std::string> data(n);
  std::vector<size_t> sent(n, 0);
  std::vector<bool> finished(n, false);
  size_t left = n;
  std::vector<pollfd> p(n);
  char buf[4096];
  while (left > 0) {
    for (size_t i = 0; i < n; ++i)
      p[i] = {finished[i] ? -1 : fds[i].get(),
              static_cast<short>(POLLIN | (sent[i] < kRequest.size() ? POLLOUT : 0)), 0};
    int ready = ::poll(p.data(), p.size(), 30000);
    if (ready <= 0) {
      ADD_FAILURE() << left << " connections got no answer within 30 s";
      break;
    }
    for (size_t i = 0; i < n; ++i) {
      if (finished[i] || p[i].revents == 0) continue;
      if ((p[i].revents & POLLOUT) && sent[i] < kRequest.size()) {
        ssize_t w = ::send(fds[i].get(), kRequest.data() + sent[i], kRequest.size() - sent[i], MSG_NOSIGNAL);
        if (w > 0) sent[i] += static_cast<size_t>(w);
      }
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = ::recv(fds[i].get(), buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r > 0) data[i].append(buf, static_cast<size_t>(r));
      else answers[i].error = r < 0 ? errno : 0;
      if (parse_answer(data[i], answers[i]) || r <= 0) {
        finished[i] = true;
        --left;
      }
    }
  }
  return answers;
}

// The handler blocks until opened; counts the calls that entered.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  int entered = 0;
  bool open = false;
  HttpServerResponse pass(const HttpServerRequest& r) {
    std::unique_lock lock(mu);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
    return ok(r);
  }
  bool wait_entered(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return entered >= n; });
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  // A started server whose handler waits here; the gate opens before it stops (so a failed
  // assertion cannot leave a handler waiting forever).
  std::unique_ptr<HttpServer, std::function<void(HttpServer*)>> serve(HttpServerOptions o) {
    std::unique_ptr<HttpServer, std::function<void(HttpServer*)>> s(
        new HttpServer(std::move(o), [this](const HttpServerRequest& r) { return pass(r); }), [this](HttpServer* p) {
          release();
          delete p;
        });
    s->start();
    return s;
  }
};

}  // namespace

// Above the old 64-thread cap, half of these were closed unanswered.
TEST(KmsHttpLoad, AThousandConcurrentConnectionsAreAllAnswered) {
  std::atomic<int> handled{0};
  HttpServerOptions o{"127.0.0.1:0"};
  o.workers = 2;
  o.max_queued = 64;  // small enough that a burst of 1,000 may be shed: shedding must answer too
  HttpServer server(o, [&](const HttpServerRequest& r) {
    ++handled;
    return ok(r);
  });
  server.start();
  std::vector<Answer> answers = concurrent_requests(server.port(), 1000);
  int served = 0, throttled = 0;
  for (size_t i = 0; i < answers.size(); ++i) {
    const Answer& a = answers[i];
    ASSERT_TRUE(a.complete) << "connection " << i << ": no complete answer (errno " << a.error << ", "
                            << std::strerror(a.error) << ") after: " << a.head;
    EXPECT_TRUE(a.status() == 200 || is_throttling(a)) << a.head << "\n" << a.body;
    EXPECT_TRUE(a.has("x-amzn-RequestId: ")) << a.head;
    EXPECT_TRUE(a.has("Date: ")) << a.head;
    (a.status() == 200 ? served : throttled)++;
  }
  EXPECT_EQ(served + throttled, 1000);
  EXPECT_EQ(served, handled.load());
}

// Past max_connections a request is still read and answered: ThrottlingException, then a
// clean close; the connections within the cap are served.
TEST(KmsHttpLoad, AConnectionPastTheCapGetsAThrottlingExceptionNotAReset) {
  Gate gate;
  HttpServerOptions o{"127.0.0.1:0"};
  o.max_connections = o.workers = 4;
  auto server = gate.serve(o);
  std::vector<UniqueFd> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(connect_to(server->port()));
    send_all(held.back().get(), kRequest);
  }
  ASSERT_TRUE(gate.wait_entered(4));
  UniqueFd extra = connect_to(server->port());
  send_all(extra.get(), kRequest);
  Answer a = read_answer(extra.get());
  ASSERT_TRUE(a.complete) << "errno " << a.error << " " << std::strerror(a.error);
  EXPECT_TRUE(is_throttling(a)) << a.head << "\n" << a.body;
  EXPECT_TRUE(a.has("x-amzn-RequestId: ")) << a.head;
  EXPECT_TRUE(a.has("Date: ")) << a.head;
  EXPECT_TRUE(a.has("Connection: close")) << a.head;
  EXPECT_NE(a.body.find("connection limit 4 reached"), std::string::npos) << a.body;
  EXPECT_TRUE(closes_cleanly(extra.get()));
  gate.release();
  for (auto& fd : held) EXPECT_EQ(read_answer(fd.get()).status(), 200);
  EXPECT_EQ(gate.entered, 4);
}

// With the one handler busy and its queue (1) full, the next request is answered at once with a
// ThrottlingException on a connection that stays open; the queued one is served after.
TEST(KmsHttpLoad, AFullQueueAnswersThrottlingExceptionAndKeepsTheConnection) {
  Gate gate;
  HttpServerOptions o{"127.0.0.1:0"};
  o.workers = 1;
  o.max_queued = 1;
  auto server = gate.serve(o);
  UniqueFd busy = connect_to(server->port());
  send_all(busy.get(), kRequest);
  ASSERT_TRUE(gate.wait_entered(1));
  UniqueFd b = connect_to(server->port()), c = connect_to(server->port());
  send_all(b.get(), kRequest);
  send_all(c.get(), kRequest);
  // Whichever of b and c arrived second is refused; the first answer can only be that refusal.
  pollfd p[2] = {{b.get(), POLLIN, 0}, {c.get(), POLLIN, 0}};
  ASSERT_GT(::poll(p, 2, 30000), 0);
  int refused = (p[0].revents & POLLIN) ? b.get() : c.get();
  int queued = refused == b.get() ? c.get() : b.get();
  Answer a = read_answer(refused);
  ASSERT_TRUE(a.complete) << "errno " << a.error;
  EXPECT_TRUE(is_throttling(a)) << a.head << "\n" << a.body;
  EXPECT_NE(a.body.find("request queue of 1 full"), std::string::npos) << a.body;
  EXPECT_TRUE(a.has("Connection: keep-alive")) << a.head;
  gate.release();
  EXPECT_EQ(read_answer(busy.get()).status(), 200);
  EXPECT_EQ(read_answer(queued).status(), 200);
  send_all(refused, kRequest);  // the SDK's retry, on the same connection
  EXPECT_EQ(read_answer(refused).status(), 200);
}

// A handler that throws is answered 500 KMSInternalException; the server keeps serving.
TEST(KmsHttpLoad, AThrowingHandlerIsAnswered500) {
  std::atomic<int> calls{0};
  HttpServer server({"127.0.0.1:0"}, [&](const HttpServerRequest& r) -> HttpServerResponse {
    if (calls++ == 0) throw std::runtime_error("boom");
    return ok(r);
  });
  server.start();
  UniqueFd fd = connect_to(server.port());
  send_all(fd.get(), kRequest);
  Answer a = read_answer(fd.get());
  EXPECT_EQ(a.status(), 500) << a.head;
  EXPECT_NE(a.body.find("\"__type\":\"KMSInternalException\""), std::string::npos) << a.body;
  EXPECT_EQ(a.body.find("boom"), std::string::npos) << "internal detail leaked: " << a.body;
  send_all(fd.get(), kRequest);
  EXPECT_EQ(read_answer(fd.get()).status(), 200);
}

// 100 clients trickling headers a byte at a time hold connections open (more than the old
// 64-thread cap) while ordinary requests are served; each slow client gets a 408 at its
// deadline, a complete answer.
TEST(KmsHttpLoad, SlowClientsTricklingHeadersDoNotStarveOthers) {
  HttpServerOptions o{"127.0.0.1:0"};
  o.request_timeout_s = 1;
  HttpServer server(o, ok);
  server.start();
  const std::string trickle = "POST / HTTP/1.1\r\nHost: kms\r\nX-Slow: ";
  std::vector<UniqueFd> slow;
  for (int i = 0; i < 100; ++i) slow.push_back(connect_to(server.port()));
  std::vector<size_t> pos(slow.size(), 0);
  std::atomic<bool> normal_done{false};
  std::vector<Answer> slow_answers(slow.size());
  std::thread trickler([&] {
    std::vector<bool> answered(slow.size(), false);
    size_t left = slow.size();
    while (left > 0) {
      for (size_t i = 0; i < slow.size(); ++i) {
        if (answered[i]) continue;
        pollfd p{slow[i].get(), POLLIN, 0};
        if (::poll(&p, 1, 0) > 0) {  // the server answered: read it whole
          slow_answers[i] = read_answer(slow[i].get());
          answered[i] = true;
          --left;
          continue;
        }
        char c = pos[i] < trickle.size() ? trickle[pos[i]] : 'a';
        ++pos[i];
        if (::send(slow[i].get(), &c, 1, MSG_NOSIGNAL) != 1) {
          slow_answers[i].error = errno;
          answered[i] = true;
          --left;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  // Ordinary requests while the slow clients hold their connections.
  for (int i = 0; i < 20; ++i) {
    UniqueFd fd = connect_to(server.port());
    send_all(fd.get(), kRequest);
    Answer a = read_answer(fd.get());
    EXPECT_EQ(a.status(), 200) << "request " << i << ": errno " << a.error << " " << a.head;
  }
  normal_done = true;
  trickler.join();
  for (size_t i = 0; i < slow_answers.size(); ++i) {
    const Answer& a = slow_answers[i];
    ASSERT_TRUE(a.complete) << "slow client " << i << ": errno " << a.error << " " << std::strerror(a.error);
    EXPECT_EQ(a.status(), 408) << a.head;
    EXPECT_NE(a.body.find("RequestTimeoutException"), std::string::npos) << a.body;
  }
}

namespace {

const size_t kOversize = 3 * 1024 * 1024;  // the default limit is 1 MiB

std::string oversize_head() {
  return "POST / HTTP/1.1\r\nHost: kms\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: " +
         std::to_string(kOversize) + "\r\n\r\n";
}

void expect_413(const Answer& a) {
  ASSERT_TRUE(a.complete) << "no 413: errno " << a.error << " (" << std::strerror(a.error) << ")";
  EXPECT_EQ(a.head.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0), 0u) << a.head;
  EXPECT_TRUE(a.has("x-amzn-RequestId: ")) << a.head;
  EXPECT_TRUE(a.has("Date: ")) << a.head;
  EXPECT_NE(a.body.find("exceeds 1048576 bytes"), std::string::npos) << a.body;
}

}  // namespace

// The client sends its whole body before reading (as the SDKs do): the server reads and
// discards it, then answers 413; closing with it unread would reset the connection.
TEST(KmsHttpLoad, AnOversizeBodyIsReadAndDiscardedThenAnswered413) {
  std::atomic<int> handled{0};
  HttpServer server({"127.0.0.1:0"}, [&](const HttpServerRequest& r) {
    ++handled;
    return ok(r);
  });
  server.start();
  UniqueFd fd = connect_to(server.port());
  send_all(fd.get(), oversize_head() + std::string(kOversize, 'x'));
  Answer a = read_answer(fd.get());
  expect_413(a);
  EXPECT_TRUE(closes_cleanly(fd.get()));
  EXPECT_EQ(handled.load(), 0);
}

namespace {

// A self-signed certificate for the TLS tests.
struct TlsFiles {
  TempDir dir{"sn-kms-load"};
  std::string cert = dir / "c.pem", key = dir / "k.pem";
  TlsFiles() {
    EXPECT_EQ(std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + key +
                           " -out " + cert + " -days 2 -subj /CN=localhost >/dev/null 2>&1").c_str()),
              0);
  }
};

// A blocking TLS client (no certificate check: the server's is self-signed).
class TlsClient {
 public:
  explicit TlsClient(int port) : fd_(connect_to(port)), ctx_(SSL_CTX_new(TLS_client_method())), ssl_(SSL_new(ctx_)) {
    SSL_set_fd(ssl_, fd_.get());
    connected_ = SSL_connect(ssl_) == 1;
    ERR_clear_error();
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  bool connected() const { return connected_; }
  bool send(const std::string& data) {
    for (size_t off = 0; off < data.size();) {
      int n = SSL_write(ssl_, data.data() + off, static_cast<int>(std::min<size_t>(data.size() - off, 65536)));
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  Answer read_answer() {
    Answer a;
    std::string data;
    char buf[4096];
    while (!parse_answer(data, a)) {
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) {
        a.error = errno;
        break;
      }
      data.append(buf, static_cast<size_t>(n));
    }
    return a;
  }
  // The server's close_notify: a clean TLS end, not a reset.
  bool closes_cleanly() {
    char buf[256];
    int n = SSL_read(ssl_, buf, sizeof buf);
    bool clean = n == 0 && SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN;
    ERR_clear_error();
    return clean;
  }

 private:
  UniqueFd fd_;
  SSL_CTX* ctx_;
  SSL* ssl_;
  bool connected_ = false;
};

}  // namespace

TEST(KmsHttpLoad, AnOversizeBodyOverTlsIsAnswered413) {
  TlsFiles files;
  HttpServer server({"127.0.0.1:0", files.cert, files.key}, ok);
  server.start();
  TlsClient c(server.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(oversize_head() + std::string(kOversize, 'x'))) << std::strerror(errno);
  expect_413(c.read_answer());
  EXPECT_TRUE(c.closes_cleanly());
}

// TLS handshakes run in the event loop without blocking it: 100 clients that stop after the
// first byte of their ClientHello (more than the old 64-thread cap) do not keep others from
// being served, and are closed at their deadline (a FIN: they have nothing unread).
TEST(KmsHttpLoad, StalledTlsHandshakesDoNotBlockOthers) {
  TlsFiles files;
  HttpServerOptions o{"127.0.0.1:0", files.cert, files.key};
  o.request_timeout_s = 1;
  HttpServer server(o, ok);
  server.start();
  std::vector<UniqueFd> stalled;
  for (int i = 0; i < 100; ++i) {
    stalled.push_back(connect_to(server.port()));
    send_all(stalled.back().get(), std::string(1, '\x16'));  // a TLS handshake record starts
  }
  for (int i = 0; i < 10; ++i) {
    TlsClient c(server.port());
    ASSERT_TRUE(c.connected()) << "client " << i;
    ASSERT_TRUE(c.send(kRequest));
    Answer a = c.read_answer();
    EXPECT_EQ(a.status(), 200) << "client " << i << ": errno " << a.error << " " << a.head;
  }
  for (auto& fd : stalled) EXPECT_TRUE(closes_cleanly(fd.get()));
}
