// The host link: framing, strict request/answer parsing, log records, and the enclave's client
// against a scripted host on simulated vsock.
#include "shield_nitro/host_link/host_link.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/vsock_network.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

namespace shield_nitro::host_link {
namespace {

using shield_nitro::test_support::code_of;
using shield_nitro::test_support::message_of;
using shield_nitro::test_support::TempDir;
using namespace std::chrono_literals;

const std::string kDigest(64, 'a');

struct SocketPair {
  UniqueFd a, b;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

void send_text(int fd, const std::string& s) { write_all(fd, reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

std::string recv_rest(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// ---- framing ----

TEST(HostLinkFraming, ReadsOneLineAndLeavesWhatFollows) {
  SocketPair p;
  send_text(p.a.get(), "{\"ok\":true}\nRAW BYTES");
  p.a.reset();
  EXPECT_EQ(read_line(p.b.get(), 5s, "peer"), "{\"ok\":true}");
  EXPECT_EQ(recv_rest(p.b.get()), "RAW BYTES");
}

TEST(HostLinkFraming, ReadsALineThatArrivesInPieces) {
  SocketPair p;
  std::thread writer([&] {
    for (char c : std::string("{\"op\":\"logs\"}\n")) send_text(p.a.get(), std::string(1, c));
  });
  EXPECT_EQ(read_line(p.b.get(), 10s, "peer"), "{\"op\":\"logs\"}");
  writer.join();
}

TEST(HostLinkFraming, OversizeLineIsAFormatError) {
  SocketPair p;
  std::thread writer([&] {
    try {
      send_text(p.a.get(), std::string(kMaxLineBytes + 10, 'x') + "\n");
    } catch (const Error&) {  // the reader may close first
    }
  });
  EXPECT_EQ(code_of([&] { read_line(p.b.get(), 10s, "peer"); }), Errc::kFormat);
  p.b.reset();
  writer.join();
}

TEST(HostLinkFraming, LineOfExactlyTheLimitIsRead) {
  SocketPair p;
  std::string line(kMaxLineBytes - 1, 'y');
  std::thread writer([&] { send_text(p.a.get(), line + "\n"); });
  EXPECT_EQ(read_line(p.b.get(), 10s, "peer"), line);
  writer.join();
}

TEST(HostLinkFraming, SilencePastTheTimeoutIsATimeout) {
  SocketPair p;
  send_text(p.a.get(), "{\"op\":");  // no newline, ever
  EXPECT_EQ(code_of([&] { read_line(p.b.get(), 20ms, "peer"); }), Errc::kTimeout);
}

TEST(HostLinkFraming, CloseBeforeTheNewlineIsAnIoError) {
  SocketPair p;
  send_text(p.a.get(), "{\"op\":");
  p.a.reset();
  std::string m = message_of([&] { read_line(p.b.get(), 5s, "host agent"); });
  EXPECT_NE(m.find("host agent closed the connection in the middle of a line"), std::string::npos) << m;
}

TEST(HostLinkFraming, WriteLineRefusesNewlinesAndOversize) {
  SocketPair p;
  EXPECT_EQ(code_of([&] { write_line(p.a.get(), "a\nb", 1s); }), Errc::kUsage);
  EXPECT_EQ(code_of([&] { write_line(p.a.get(), std::string(kMaxLineBytes, 'x'), 1s); }), Errc::kUsage);
  write_line(p.a.get(), "{}", 1s);
  p.a.reset();
  EXPECT_EQ(recv_rest(p.b.get()), "{}\n");
}

// ---- requests ----

TEST(HostLinkRequest, EachOpRoundTrips) {
  Request c = parse_request(format_request({.op = Op::kCredentials}));
  EXPECT_EQ(c.op, Op::kCredentials);
  Request a = parse_request(format_request({.op = Op::kArtifact, .name = "model"}));
  EXPECT_EQ(a.op, Op::kArtifact);
  EXPECT_EQ(a.name, "model");
  Request l = parse_request(R"({"op":"logs"})");
  EXPECT_EQ(l.op, Op::kLogs);
  Request t = parse_request(format_request({.op = Op::kConnect, .host = "api.example.com", .port = 443}));
  EXPECT_EQ(t.op, Op::kConnect);
  EXPECT_EQ(t.host, "api.example.com");
  EXPECT_EQ(t.port, 443);
  Request v6 = parse_request(format_request({.op = Op::kConnect, .host = "::1", .port = 8443}));
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 8443);
}

TEST(HostLinkRequest, RefusesWhatTheContractDoesNotSay) {
  struct Case {
    const char* line;
    const char* says;
  } cases[] = {
      {R"({"op":"shell"})", "unknown op 'shell'"},
      {R"({"op":"credentials","extra":1})", "unexpected member 'extra'"},
      {R"({"op":"artifact"})", "missing 'name'"},
      {R"({"op":"artifact","name":7})", "'name' is not a string"},
      {R"({"op":"artifact","name":""})", "'name' is empty"},
      {R"({"op":"logs","op":"credentials"})", "appears twice"},
      {R"({"op":"connect","target":"example.com"})", "expected HOST:PORT"},
      {R"({"op":"connect","target":"example.com:0"})", "out of range"},
      {R"({"op":"connect","target":"example.com:65536"})", "out of range"},
      {R"({"op":"connect","target":"example.com:+443"})", "not a decimal"},
      {R"({"op":"connect","target":"exa mple.com:443"})", "not a DNS name"},
      {R"({"op":"connect","target":"[zz]:443"})", "IPv6"},
      {R"({"op":{"x":1}})", "not a plain value"},
      {R"(["op","logs"])", "not a JSON object"},
      {"garbage", "not one JSON object"},
      {R"({"op":"logs"} trailing)", "not one JSON object"},
      {"", "not one JSON object"},
      {"{\"op\":\"artifact\",\"name\":\"\xff\"}", "not one JSON object"},  // invalid UTF-8
  };
  for (const auto& c : cases) {
    std::string m = message_of([&] { parse_request(c.line); });
    EXPECT_NE(m.find(c.says), std::string::npos) << c.line << " → " << m;
    EXPECT_EQ(code_of([&] { parse_request(c.line); }), Errc::kFormat) << c.line;
  }
  std::string big = R"({"op":"artifact","name":")" + std::string(kMaxLineBytes, 'a') + "\"}";
  EXPECT_NE(message_of([&] { parse_request(big); }).find("over the"), std::string::npos);
}

// ---- answers ----

TEST(HostLinkAnswer, RefusalCarriesTheHostsReasonAsPolicy) {
  std::string line = answer_error("artifact 'x' is not served\nby this host");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  std::string m = message_of([&] { parse_artifact_answer(line); });
  EXPECT_EQ(m, "host agent refused artifact: artifact 'x' is not served by this host");
  EXPECT_EQ(code_of([&] { parse_ok_answer(answer_error("egress to a:1 is not allowed"), Op::kConnect); }), Errc::kPolicy);
  EXPECT_LE(answer_error(std::string(10000, 'e')).size(), kMaxErrorBytes + 40);
}

TEST(HostLinkAnswer, ArtifactAnswerIsStrict) {
  ArtifactAnswer a = parse_artifact_answer(answer_artifact({1234, kDigest, ""}));
  EXPECT_EQ(a.size, 1234u);
  EXPECT_EQ(a.sha256, kDigest);
  EXPECT_TRUE(a.header_sha256.empty());
  a = parse_artifact_answer(answer_artifact({99, "", kDigest}));
  EXPECT_EQ(a.size, 99u);
  EXPECT_EQ(a.header_sha256, kDigest);
  EXPECT_TRUE(a.sha256.empty());
  EXPECT_EQ(code_of([&] { answer_artifact({1, kDigest, kDigest}); }), Errc::kUsage);
  EXPECT_EQ(code_of([&] { answer_artifact({1, "", ""}); }), Errc::kUsage);
  const char* bad[] = {
      R"({"ok":true,"size":-1,"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})",
      R"({"ok":true,"size":1.5,"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})",
      R"({"ok":true,"size":"1","sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})",
      R"({"ok":true,"size":1,"sha256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})",
      R"({"ok":true,"size":1,"sha256":"abc"})",
      R"({"ok":true,"size":1})",
      R"({"ok":true,"size":1,"header_sha256":"abc"})",
      R"({"ok":true,"size":1,"header_sha256":7})",
      R"({"ok":true,"size":1,"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","header_sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})",
      R"({"ok":true,"size":1,"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","more":true})",
      R"({"ok":"yes"})",
      R"({"ok":false})",
      R"({"ok":false,"error":""})",
      R"({"ok":false,"error":"x","size":1})",
      "not json",
  };
  for (const char* line : bad) EXPECT_EQ(code_of([&] { parse_artifact_answer(line); }), Errc::kFormat) << line;
}

TEST(HostLinkAnswer, OkAnswerIsExactlyOk) {
  parse_ok_answer(answer_ok(), Op::kLogs);
  EXPECT_EQ(code_of([&] { parse_ok_answer(R"({"ok":true,"x":1})", Op::kLogs); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { parse_ok_answer(R"({})", Op::kConnect); }), Errc::kFormat);
}

kms::Credentials sample_credentials(int64_t expiration_s) {
  return kms::Credentials{"ASIAEXAMPLE", SecureBytes(as_bytes(std::string_view("se\"cr\\et/+="))),
                          SecureBytes(as_bytes(std::string_view("token-value"))), expiration_s, "test"};
}

TEST(HostLinkAnswer, CredentialsRoundTripThroughTheWire) {
  SocketPair p;
  FixedClock clock(1'800'000'000'000);
  write_credentials_answer(p.a.get(), sample_credentials(1'800'003'600), 1s);
  std::string line = read_line(p.b.get(), 1s, "peer");
  kms::Credentials c = parse_credentials_answer(line, clock);
  EXPECT_EQ(c.access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(std::string(c.secret_access_key.view().begin(), c.secret_access_key.view().end()), "se\"cr\\et/+=");
  EXPECT_EQ(std::string(c.session_token.view().begin(), c.session_token.view().end()), "token-value");
  EXPECT_EQ(c.expiration_s, 1'800'003'600);
  EXPECT_EQ(c.source, "host agent");
  // Past the expiration: refused as expired.
  clock.set_ms(1'800'003'600'000);
  EXPECT_EQ(code_of([&] { parse_credentials_answer(line, clock); }), Errc::kExpired);
}

TEST(HostLinkAnswer, CredentialsWithoutExpirationAreNotSent) {
  SocketPair p;
  EXPECT_EQ(code_of([&] { write_credentials_answer(p.a.get(), sample_credentials(0), 1s); }), Errc::kUsage);
}

TEST(HostLinkAnswer, CredentialsAnswerIsStrict) {
  const char* bad[] = {
      R"({"ok":true,"SecretAccessKey":"s","Token":"t","Expiration":"2099-01-01T00:00:00Z"})",
      R"({"ok":true,"AccessKeyId":"A","Token":"t","Expiration":"2099-01-01T00:00:00Z"})",
      R"({"ok":true,"AccessKeyId":"A","SecretAccessKey":"s","Token":"t"})",
      R"({"ok":true,"AccessKeyId":"A","SecretAccessKey":"s","Token":"t","Expiration":"tomorrow"})",
      R"({"ok":true,"AccessKeyId":"A","SecretAccessKey":"s","Token":"t","Expiration":"2099-01-01T00:00:00+02:00"})",
      R"({"ok":true,"AccessKeyId":"A","SecretAccessKey":"s","Token":5,"Expiration":"2099-01-01T00:00:00Z"})",
      R"({"ok":true,"AccessKeyId":"","SecretAccessKey":"s","Token":"t","Expiration":"2099-01-01T00:00:00Z"})",
      R"({"ok":true,"AccessKeyId":"A","SecretAccessKey":"s","Token":"t","Expiration":"2099-01-01T00:00:00Z","Code":"x"})",
  };
  for (const char* line : bad) EXPECT_EQ(code_of([&] { parse_credentials_answer(line); }), Errc::kFormat) << line;
  kms::Credentials c =
      parse_credentials_answer(R"({"ok":true,"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"2099-01-01T00:00:00.5Z"})");
  EXPECT_TRUE(c.session_token.empty());
}

// ---- log records ----

TEST(HostLinkLogs, RecordsRoundTrip) {
  LogRecord r{.time = format_log_time(1'796'544'000'123), .source = "supervisor", .stream = "event",
              .line = "app exited with status 3", .event = "app_exited",
              .fields = {{"status", int64_t{3}}, {"restarts", int64_t{1}}, {"reason", std::string("exit")}}};
  EXPECT_EQ(r.time, "2026-12-06T08:00:00.123Z");
  LogRecord back = parse_log_record(format_log_record(r));
  EXPECT_EQ(back.time, r.time);
  EXPECT_EQ(back.source, "supervisor");
  EXPECT_EQ(back.event, "app_exited");
  EXPECT_EQ(std::get<int64_t>(back.fields.at("status")), 3);
  EXPECT_EQ(std::get<std::string>(back.fields.at("reason")), "exit");
}

TEST(HostLinkLogs, LongOrInvalidTextStillMakesOneValidLine) {
  LogRecord r{.time = format_log_time(0), .source = "app", .stream = "stdout",
              .line = std::string(10000, 'z') + "\xff\n\x01"};
  std::string line = format_log_record(r);
  EXPECT_LE(line.size(), kMaxLineBytes - 1);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  LogRecord back = parse_log_record(line);
  EXPECT_GT(back.line.size(), 3000u);
  LogRecord bad_utf8{.time = format_log_time(0), .source = "app", .stream = "stderr", .line = "a\xff"};
  EXPECT_EQ(parse_log_record(format_log_record(bad_utf8)).line, "a\xef\xbf\xbd");  // U+FFFD
}

TEST(HostLinkLogs, MalformedRecordsAreRefused) {
  const char* bad[] = {
      R"({"time":"x","source":"app","stream":"stdout","line":"a"})",
      R"({"time":"2026-12-06T08:00:00Z","source":"kernel","stream":"stdout","line":"a"})",
      R"({"time":"2026-12-06T08:00:00Z","source":"app","stream":"stdin","line":"a"})",
      R"({"time":"2026-12-06T08:00:00Z","source":"app","stream":"stdout","line":"a","status":1})",
      R"({"time":"2026-12-06T08:00:00Z","source":"supervisor","stream":"event","line":"a"})",
      R"({"time":"2026-12-06T08:00:00Z","source":"supervisor","stream":"event","event":"x","n":1.5})",
      R"({"time":"2026-12-06T08:00:00Z","source":"app","stream":"stdout","line":"a","line":"b"})",
  };
  for (const char* line : bad) EXPECT_EQ(code_of([&] { parse_log_record(line); }), Errc::kFormat) << line;
}

// ---- the client against a scripted host ----

// A host agent stand-in on simulated vsock (the parent, CID 3): answers each connection with
// what `answer` returns for the parsed request, then writes `after` and closes.
class FakeHost {
 public:
  using Script = std::function<void(int fd, const Request&)>;
  FakeHost(const std::string& dir, uint32_t port, Script script) : script_(std::move(script)) {
    net::install_vsock_network(net::simulated_vsock(dir, 16));
    fd_ = net::listen(net::Endpoint::vsock(net::kVsockCidParent, port));
    thread_ = std::thread([this] { run(); });
  }
  ~FakeHost() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
    net::install_vsock_network(nullptr);
  }
  std::vector<std::string> requests;

 private:
  void run() {
    for (;;) {
      int c = ::accept(fd_.get(), nullptr, nullptr);
      if (c < 0) return;
      UniqueFd conn(c);
      try {
        std::string line = read_line(c, 5s, "enclave");
        requests.push_back(line);
        script_(c, parse_request(line));
      } catch (const Error& e) {
        ADD_FAILURE() << "fake host: " << e.what();
      }
    }
  }
  Script script_;
  UniqueFd fd_;
  std::thread thread_;
};

TEST(HostLinkClient, FetchesCredentialsAndArtifacts) {
  TempDir dir;
  const std::string payload = "sealed artifact bytes";
  FakeHost host(dir.path(), 7000, [&](int fd, const Request& r) {
    if (r.op == Op::kCredentials) {
      write_credentials_answer(fd, sample_credentials(4'000'000'000), 1s);
    } else if (r.op == Op::kArtifact && r.name == "model") {
      write_line(fd, answer_artifact({payload.size(), kDigest, ""}), 1s);
      send_text(fd, payload);
    } else {
      write_line(fd, answer_error("artifact '" + r.name + "' is not configured"), 1s);
    }
  });
  HostLink link({.cid = 3, .port = 7000});
  EXPECT_EQ(link.describe(), "vsock://3:7000");
  kms::Credentials c = link.fetch_credentials();
  EXPECT_EQ(c.access_key_id, "ASIAEXAMPLE");
  HostLink::Artifact a = link.open_artifact("model");
  EXPECT_EQ(a.size, payload.size());
  EXPECT_EQ(a.sha256, kDigest);
  EXPECT_EQ(recv_rest(a.fd.get()), payload);
  Error e = *test_support::thrown([&] { link.open_artifact("weights"); });
  EXPECT_EQ(e.code(), Errc::kPolicy);
  EXPECT_STREQ(e.what(), "host agent refused artifact: artifact 'weights' is not configured");
}

TEST(HostLinkClient, LogsAndConnectGetAStreamOrARefusal) {
  TempDir dir;
  FakeHost host(dir.path(), 7001, [&](int fd, const Request& r) {
    if (r.op == Op::kConnect && r.host == "api.example.com") {
      write_line(fd, answer_ok(), 1s);
      send_text(fd, "relayed:" + read_line(fd, 5s, "enclave"));  // an echo stands in for the target
    } else if (r.op == Op::kLogs) {
      write_line(fd, answer_ok(), 1s);
    } else {
      write_line(fd, answer_error("egress to " + r.host + ":" + std::to_string(r.port) + " is not allowed"), 1s);
    }
  });
  HostLink link({.cid = 3, .port = 7001});
  UniqueFd up = link.connect("api.example.com", 443);
  send_text(up.get(), "hello\n");
  EXPECT_EQ(recv_rest(up.get()), "relayed:hello");
  EXPECT_TRUE(link.open_logs().valid());
  std::string m = message_of([&] { link.connect("evil.example.com", 443); });
  EXPECT_EQ(m, "host agent refused connect: egress to evil.example.com:443 is not allowed");
  EXPECT_EQ(host.requests.back(), R"({"op":"connect","target":"evil.example.com:443"})");
}

TEST(HostLinkClient, UnreachableSilentOrGarbageHosts) {
  TempDir dir;
  net::install_vsock_network(net::simulated_vsock(dir.path(), 16));
  HostLink nobody({.cid = 3, .port = 7999}, {.connect_timeout = 1s, .answer_timeout = 1s});
  std::string m = message_of([&] { nobody.fetch_credentials(); });
  EXPECT_EQ(code_of([&] { nobody.fetch_credentials(); }), Errc::kIo);
  EXPECT_NE(m.find("host agent at vsock://3:7999 is unreachable"), std::string::npos) << m;
  net::install_vsock_network(nullptr);

  FakeHost closes(dir.path(), 7002, [](int, const Request&) {});
  HostLink link({.cid = 3, .port = 7002});
  EXPECT_EQ(code_of([&] { link.open_logs(); }), Errc::kIo);

  FakeHost garbage(dir.path(), 7003, [](int fd, const Request&) { send_text(fd, "HTTP/1.1 200 OK\r\n\r\n"); });
  HostLink g({.cid = 3, .port = 7003});
  EXPECT_EQ(code_of([&] { g.fetch_credentials(); }), Errc::kFormat);
}

}  // namespace
}  // namespace shield_nitro::host_link
