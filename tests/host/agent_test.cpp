// The host agent in process, on simulated vsock, with the enclave's side played by HostLink:
// each op good and bad, logs and their events, metrics, credentials refresh, config checks.
#include "shield_nitro/host/agent.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/vsock_network.h"
#include "shield_nitro/sealed/sealed.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "http_get.h"

namespace shield_nitro::host {
namespace {

using shield_nitro::test_support::code_of;
using shield_nitro::test_support::message_of;
using shield_nitro::test_support::TempDir;
using namespace std::chrono_literals;

constexpr uint32_t kLinkPort = 7000;

kms::Credentials creds(const std::string& akid, int64_t expiration_s) {
  return kms::Credentials{akid, SecureBytes(as_bytes(std::string_view("secret"))), SecureBytes(), expiration_s, "test"};
}

// Hands out AKID-<n> on the n-th call, or fails when told to.
class CountingProvider final : public kms::CredentialsProvider {
 public:
  explicit CountingProvider(const Clock& clock) : clock_(clock) {}
  kms::Credentials get() override {
    int n = ++calls;
    if (fail) throw Error(Errc::kEnvironment, "IMDS is down");
    return creds("AKID-" + std::to_string(n), clock_.now_s() + 3600);
  }
  void invalidate() override { ++invalidations; }
  std::atomic<int> calls{0}, invalidations{0};
  std::atomic<bool> fail{false};

 private:
  const Clock& clock_;
};

std::string read_available(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net::install_vsock_network(net::simulated_vsock(dir.path(), 16));
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    log_read.reset(p[0]);
    log_write.reset(p[1]);
    ::fcntl(log_read.get(), F_SETFL, O_NONBLOCK);
    model = dir / "model.sealed";
    write_file_atomic(model, as_bytes(std::string_view("SEALED-MODEL-BYTES-0123456789")));
    enclave.name = "app";
    enclave.cid = 16;
    enclave.runtime.host = {.cid = 3, .port = kLinkPort};
    enclave.runtime.artifacts.push_back(
        {.name = "model", .source = "host", .path = "/run/shield/model.bin", .key_id = "k", .encryption_context = {}, .header_sha256 = {}, .sha256 = file_sha256(model)});
    enclave.runtime.artifacts.push_back(
        {.name = "baked", .source = "/opt/baked.sealed", .path = "/run/shield/baked.bin", .key_id = "k", .encryption_context = {}, .header_sha256 = {}, .sha256 = std::string(64, '0')});
    enclave.runtime.egress.proxy_port = 3128;
    enclave.runtime.egress.allow.push_back({.host = "api.example.com", .port = 443});
    enclave.artifacts["model"] = model;
  }
  void TearDown() override {
    agent.reset();
    net::install_vsock_network(nullptr);
  }

  void start(std::string metrics = "tcp://127.0.0.1:0") {
    AgentOptions o;
    o.config.enclaves = {enclave};
    o.config.kms_target = kms_target;
    o.config.metrics = std::move(metrics);
    o.credentials = provider;
    o.stdout_fd = log_write.get();
    o.clock = &clock;
    agent = std::make_unique<Agent>(std::move(o));
    agent->start();
  }

  // A raw host-link exchange: sends `request` as is, returns the answer line.
  std::string raw(const std::string& request) {
    UniqueFd fd = net::connect(net::Endpoint::vsock(3, kLinkPort));
    host_link::write_all(fd.get(), reinterpret_cast<const uint8_t*>(request.data()), request.size());
    return host_link::read_line(fd.get(), 10s, "agent");
  }

  // A metrics sample's value ("name{labels}" as printed), or -999 when absent.
  double metric(const std::string& series) {
    std::string text = agent->metrics_text();
    size_t at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -999;
    return std::stod(text.substr(at + series.size() + 2));
  }

  // metric(), once it shows `expected` or 5 s passed: the agent counts an answer or a relayed
  // byte after it is written, which can be just after the other side has read it.
  double settled(const std::string& series, double expected) {
    double v = metric(series);
    for (int i = 0; i < 1000 && v != expected; ++i) {
      std::this_thread::sleep_for(5ms);
      v = metric(series);
    }
    return v;
  }

  TempDir dir;
  FixedClock clock{1'800'000'000'000};
  std::shared_ptr<CountingProvider> provider = std::make_shared<CountingProvider>(clock);
  UniqueFd log_read, log_write;
  std::string model;
  runtime::HostEnclave enclave;
  std::string kms_target = "127.0.0.1:1";
  std::unique_ptr<Agent> agent;
  host_link::HostLink link{{.cid = 3, .port = kLinkPort}, {}, clock};
};

TEST_F(AgentTest, ServesCredentialsAndRefreshesThemBeforeExpiry) {
  start();
  EXPECT_EQ(link.fetch_credentials().access_key_id, "AKID-1");
  EXPECT_EQ(link.fetch_credentials().access_key_id, "AKID-1");  // cached: 60 min left
  EXPECT_EQ(provider->calls, 1);
  clock.advance_ms(41 * 60 * 1000);  // 19 min left: inside the 20-min margin (the enclave asks at 15)
  EXPECT_EQ(link.fetch_credentials().access_key_id, "AKID-2");
  EXPECT_EQ(provider->invalidations, 1);  // past the source's own cache
  // The source fails while the current ones are still valid: they are served.
  clock.advance_ms(41 * 60 * 1000);
  provider->fail = true;
  EXPECT_EQ(link.fetch_credentials().access_key_id, "AKID-2");
  EXPECT_EQ(link.fetch_credentials().access_key_id, "AKID-2");
  EXPECT_EQ(provider->calls, 3);  // a failing source is asked at most once a minute
  // Expired and the source is down: refused with the reason.
  clock.advance_ms(20 * 60 * 1000);
  std::string m = message_of([&] { link.fetch_credentials(); });
  EXPECT_NE(m.find("host agent refused credentials: the host agent has no credentials: IMDS is down"), std::string::npos) << m;
  EXPECT_EQ(settled("shield_nitro_credentials_served_total{enclave=\"app\"}", 5), 5);
}

TEST_F(AgentTest, StreamsAnArtifactWithItsDigest) {
  start();
  host_link::HostLink::Artifact a = link.open_artifact("model");
  Bytes got;
  uint8_t buf[8];
  ssize_t n;
  while ((n = ::recv(a.fd.get(), buf, sizeof buf, 0)) > 0) got.insert(got.end(), buf, buf + n);
  EXPECT_EQ(got, read_file(model));
  EXPECT_EQ(a.size, got.size());
  EXPECT_EQ(a.sha256, file_sha256(model));
  EXPECT_EQ(settled("shield_nitro_artifacts_served_total{enclave=\"app\"}", 1), 1);
  EXPECT_EQ(settled("shield_nitro_bytes_relayed_total{enclave=\"app\",path=\"artifact\",direction=\"down\"}", got.size()), got.size());
}

TEST_F(AgentTest, RefusesAFileWhoseDigestIsNotTheRuntimeConfigs) {
  start();
  std::string pinned = file_sha256(model);
  write_file_atomic(model, as_bytes(std::string_view("SUBSTITUTED")));  // the parent swapped the file
  Error e = *test_support::thrown([&] { link.open_artifact("model"); });
  EXPECT_EQ(e.code(), Errc::kPolicy);
  EXPECT_NE(std::string(e.what()).find("has sha256 " + file_sha256(model) + ", the runtime config pins " + pinned),
            std::string::npos)
      << e.what();
  EXPECT_EQ(settled("shield_nitro_host_link_refused_total{enclave=\"app\"}", 1), 1);
}

// A header pin: the agent reads only the file's prefix (sealed header + stream header) to check
// the file and announces its digest.
TEST_F(AgentTest, ServesAHeaderPinnedArtifactByItsHeaderDigest) {
  const sealed::DataKey first{"arn:aws:kms:us-east-1:111122223333:key/k", os_random().bytes(64),
                              SecureBytes(os_random().bytes(32))};
  auto seal = [](char fill, const sealed::DataKey* reuse = nullptr) {
    return sealed::seal(as_bytes(std::string(100000, fill)),
                        reuse ? sealed::DataKey{reuse->key_id, reuse->ciphertext_blob, reuse->plaintext.clone()}
                              : sealed::DataKey{"arn:aws:kms:us-east-1:111122223333:key/k", os_random().bytes(64),
                                                SecureBytes(os_random().bytes(32))},
                        {});
  };
  Bytes file = seal('a', &first);
  const std::string pinned = sealed::parse_prefix(file).prefix_digest_hex();
  write_file_atomic(model, file);
  enclave.runtime.artifacts[0].sha256.clear();
  enclave.runtime.artifacts[0].header_sha256 = pinned;
  start();
  host_link::HostLink::Artifact a = link.open_artifact("model");
  EXPECT_EQ(a.header_sha256, pinned);
  EXPECT_TRUE(a.sha256.empty());
  EXPECT_EQ(a.size, file.size());
  Bytes got;
  uint8_t buf[65536];
  ssize_t n;
  while ((n = ::recv(a.fd.get(), buf, sizeof buf, 0)) > 0) got.insert(got.end(), buf, buf + n);
  EXPECT_EQ(got, file);
  // The parent swaps in another sealed file, then one that is not sealed: not served.
  Bytes other = seal('a');
  write_file_atomic(model, other);
  std::string m = message_of([&] { link.open_artifact("model"); });
  EXPECT_NE(m.find("has header_sha256 " + sealed::parse_prefix(other).prefix_digest_hex() + ", the runtime config pins " + pinned),
            std::string::npos)
      << m;
  // Another file sealed under the same data key: the same sealed header, another stream salt.
  Bytes same_key = seal('a', &first);
  ASSERT_EQ(sealed::parse_header(same_key).bytes, sealed::parse_header(file).bytes);
  write_file_atomic(model, same_key);
  m = message_of([&] { link.open_artifact("model"); });
  EXPECT_NE(m.find("has header_sha256 " + sealed::parse_prefix(same_key).prefix_digest_hex() + ", the runtime config pins " +
                   pinned),
            std::string::npos)
      << m;
  write_file_atomic(model, as_bytes(std::string_view("NOT-A-SEALED-FILE")));
  m = message_of([&] { link.open_artifact("model"); });
  EXPECT_NE(m.find("not a sealed file"), std::string::npos) << m;
  EXPECT_EQ(settled("shield_nitro_host_link_refused_total{enclave=\"app\"}", 3), 3);
}

TEST_F(AgentTest, RefusesArtifactsItDoesNotServe) {
  start();
  EXPECT_NE(message_of([&] { link.open_artifact("weights"); }).find("'weights' is not in enclave 'app''s runtime config"),
            std::string::npos);
  EXPECT_NE(message_of([&] { link.open_artifact("baked"); }).find("inside the image, not from the host"), std::string::npos);
  ::unlink(model.c_str());
  EXPECT_NE(message_of([&] { link.open_artifact("model"); }).find("the host cannot read its file"), std::string::npos);
}

TEST_F(AgentTest, BadRequestsGetAReasonAndAreCounted) {
  start();
  EXPECT_EQ(raw("{\"op\":\"shell\"}\n"), R"({"error":"host-link request: unknown op 'shell'","ok":false})");
  EXPECT_NE(raw("GET / HTTP/1.1\r\n\r\n").find("not one JSON object"), std::string::npos);
  EXPECT_NE(raw("{\"op\":\"logs\",\"x\":1}\n").find("unexpected member 'x'"), std::string::npos);
  std::string oversize = raw(std::string(host_link::kMaxLineBytes + 100, ' ') + "\n");
  EXPECT_NE(oversize.find("longer than 4096 bytes"), std::string::npos) << oversize;
  EXPECT_EQ(settled("shield_nitro_host_link_bad_requests_total{enclave=\"app\"}", 4), 4);
}

TEST_F(AgentTest, EgressOutsideTheAllowlistIsRefused) {
  start();
  Error e = *test_support::thrown([&] { link.connect("evil.example.com", 443); });
  EXPECT_EQ(e.code(), Errc::kPolicy);
  EXPECT_NE(std::string(e.what()).find("not allowed"), std::string::npos) << e.what();
  EXPECT_EQ(settled("shield_nitro_egress_refused_total{enclave=\"app\"}", 1), 1);
}

// A TCP echo server on 127.0.0.1 for one connection: the egress and KMS destinations.
class EchoServer {
 public:
  EchoServer() : fd_(net::listen(net::Endpoint::tcp("127.0.0.1", 0))) {
    port = static_cast<uint16_t>(net::bound_endpoint(fd_.get(), net::Endpoint::tcp("127.0.0.1", 0)).port);
    thread_ = std::thread([this] {
      UniqueFd c(::accept(fd_.get(), nullptr, nullptr));
      char b[256];
      ssize_t n;
      while ((n = ::recv(c.get(), b, sizeof b, 0)) > 0) host_link::write_all(c.get(), reinterpret_cast<uint8_t*>(b), n);
    });
  }
  ~EchoServer() { thread_.join(); }
  uint16_t port = 0;

 private:
  UniqueFd fd_;
  std::thread thread_;
};

// Writes s, half-closes, and returns everything that comes back until the other side closes.
std::string round_trip(int fd, const std::string& s) {
  host_link::write_all(fd, reinterpret_cast<const uint8_t*>(s.data()), s.size());
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char b[256];
  ssize_t n;
  while ((n = ::recv(fd, b, sizeof b, 0)) > 0) out.append(b, static_cast<size_t>(n));
  return out;
}

TEST_F(AgentTest, AllowedEgressIsRelayedByTheHost) {
  EchoServer target;
  enclave.runtime.egress.allow.push_back({.host = "127.0.0.1", .port = target.port});
  start();
  UniqueFd up = link.connect("127.0.0.1", target.port);
  EXPECT_EQ(round_trip(up.get(), "through the host"), "through the host");
  up.reset();
  for (int i = 0; i < 1000 && metric("shield_nitro_bytes_relayed_total{enclave=\"app\",path=\"egress\",direction=\"down\"}") < 16; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(settled("shield_nitro_bytes_relayed_total{enclave=\"app\",path=\"egress\",direction=\"up\"}", 16), 16);
  EXPECT_EQ(settled("shield_nitro_egress_connections_total{enclave=\"app\"}", 1), 1);
  EXPECT_EQ(settled("shield_nitro_egress_refused_total{enclave=\"app\"}", 0), 0);
}

TEST_F(AgentTest, TheKmsProxyRelaysToItsTarget) {
  EchoServer kms;
  kms_target = "127.0.0.1:" + std::to_string(kms.port);
  start();
  UniqueFd c = net::connect(net::Endpoint::vsock(3, 8000));  // the runtime config's kms.proxy_port
  EXPECT_EQ(round_trip(c.get(), "TLS bytes"), "TLS bytes");
  EXPECT_EQ(settled("shield_nitro_kms_proxy_connections_total", 1), 1);
}

TEST_F(AgentTest, LogRecordsGoOutWithTheEnclavesNameAndEventsSetTheState) {
  start();
  EXPECT_EQ(settled("shield_nitro_app_running{enclave=\"app\"}", -1), -1);
  UniqueFd logs = link.open_logs();
  auto send = [&](const std::string& s) {
    host_link::write_all(logs.get(), reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  host_link::LogRecord started{.time = host_link::format_log_time(0), .source = "supervisor", .stream = "event",
                               .line = "app started", .event = "app_started", .fields = {{"restarts", int64_t{2}}}};
  host_link::LogRecord hello{.time = host_link::format_log_time(1), .source = "app", .stream = "stdout", .line = "hello"};
  host_link::LogRecord dropped{.time = host_link::format_log_time(2), .source = "supervisor", .stream = "event",
                               .line = "dropped", .event = "logs_dropped", .fields = {{"count", int64_t{7}}}};
  send(host_link::format_log_record(started) + "\n" + host_link::format_log_record(hello) + "\nnot a record\n" +
       host_link::format_log_record(dropped) + "\n" + std::string(5000, 'x') + "\n");
  logs.reset();
  // Wait for the stream to end on the agent's side (the connected gauge drops back to 0).
  for (int i = 0; i < 1000 && metric("shield_nitro_log_lines_total{enclave=\"app\"}") < 3; ++i) std::this_thread::sleep_for(5ms);
  for (int i = 0; i < 1000 && metric("shield_nitro_enclave_connected{enclave=\"app\"}") != 0; ++i) std::this_thread::sleep_for(5ms);
  std::string out = read_available(log_read.get());
  EXPECT_NE(out.find(R"({"enclave":"app","line":"hello","source":"app","stream":"stdout","time":"1970-01-01T00:00:00.001Z"})" "\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("not a record"), std::string::npos);
  EXPECT_EQ(settled("shield_nitro_log_lines_total{enclave=\"app\"}", 3), 3);
  EXPECT_EQ(settled("shield_nitro_log_lines_dropped_total{enclave=\"app\",where=\"host\"}", 2), 2);
  EXPECT_EQ(settled("shield_nitro_log_lines_dropped_total{enclave=\"app\",where=\"enclave\"}", 7), 7);
  EXPECT_EQ(settled("shield_nitro_app_running{enclave=\"app\"}", 1), 1);
  EXPECT_EQ(settled("shield_nitro_app_restarts_total{enclave=\"app\"}", 2), 2);
  EXPECT_EQ(settled("shield_nitro_app_start_failures_total{enclave=\"app\"}", 0), 0);
  EXPECT_NE(agent->health_json().find(R"("app":{"connected":false,"app":"running","restarts":2})"), std::string::npos)
      << agent->health_json();
}

TEST_F(AgentTest, AStartFailedEventMarksTheAppNotRunning) {
  start();
  {
    UniqueFd logs = link.open_logs();
    std::string line = host_link::format_log_record({.time = host_link::format_log_time(0), .source = "supervisor",
                                                     .stream = "event", .line = "artifact model: refused by KMS",
                                                     .event = "start_failed", .fields = {{"step", std::string("artifact")}}}) +
                       "\n";
    host_link::write_all(logs.get(), reinterpret_cast<const uint8_t*>(line.data()), line.size());
  }
  for (int i = 0; i < 1000 && metric("shield_nitro_log_lines_total{enclave=\"app\"}") < 1; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(settled("shield_nitro_app_start_failures_total{enclave=\"app\"}", 1), 1);
  EXPECT_EQ(settled("shield_nitro_app_running{enclave=\"app\"}", 0), 0);
}

TEST_F(AgentTest, LogRecordsGoToTheConfiguredFile) {
  std::string file = dir / "app.jsonl";
  enclave.logs = "file:" + file;
  start();
  {
    UniqueFd logs = link.open_logs();
    std::string line = host_link::format_log_record(
                           {.time = host_link::format_log_time(0), .source = "app", .stream = "stderr", .line = "to the file"}) +
                       "\n";
    host_link::write_all(logs.get(), reinterpret_cast<const uint8_t*>(line.data()), line.size());
  }
  for (int i = 0; i < 1000 && metric("shield_nitro_log_lines_total{enclave=\"app\"}") < 1; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(read_text_file(file),
            R"({"enclave":"app","line":"to the file","source":"app","stream":"stderr","time":"1970-01-01T00:00:00.000Z"})" "\n");
  EXPECT_EQ(read_available(log_read.get()), "");  // nothing on stdout
  agent.reset();
  enclave.logs = "file:" + dir.path() + "/missing/app.jsonl";
  EXPECT_NE(message_of([&] { start(); }).find("cannot open the log file"), std::string::npos);
}

TEST_F(AgentTest, MetricsAndHealthOverHttp) {
  start();
  link.fetch_credentials();
  settled("shield_nitro_credentials_served_total{enclave=\"app\"}", 1);
  auto get = [&](const std::string& path) { return http_get(*agent->metrics_endpoint(), path); };
  std::string m = get("/metrics");
  EXPECT_EQ(m.rfind("HTTP/1.1 200", 0), 0u) << m;
  EXPECT_NE(m.find("\nshield_nitro_credentials_served_total{enclave=\"app\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("# TYPE shield_nitro_kms_proxy_connections_total counter"), std::string::npos);
  std::string h = get("/healthz");
  EXPECT_EQ(h.rfind("HTTP/1.1 200", 0), 0u) << h;
  EXPECT_NE(h.find(R"({"status":"ok","enclaves":{"app":)"), std::string::npos) << h;
  EXPECT_EQ(get("/other").rfind("HTTP/1.1 404", 0), 0u);
}

TEST_F(AgentTest, OneAgentServesSeveralEnclavesEachOnItsOwnLink) {
  runtime::HostEnclave second;
  second.name = "second";
  second.cid = 17;
  second.runtime.host = {.cid = 3, .port = kLinkPort + 1};
  AgentOptions o;
  o.config.enclaves = {enclave, second};
  o.config.kms_target = kms_target;
  o.credentials = provider;
  o.stdout_fd = log_write.get();
  o.clock = &clock;
  agent = std::make_unique<Agent>(std::move(o));
  agent->start();
  host_link::HostLink link2({.cid = 3, .port = kLinkPort + 1}, {}, clock);
  // The second enclave's runtime config names no artifact: the first one's is not served to it.
  EXPECT_NE(message_of([&] { link2.open_artifact("model"); }).find("not in enclave 'second''s runtime config"),
            std::string::npos);
  EXPECT_EQ(link.open_artifact("model").size, read_file(model).size());
  for (auto* l : {&link, &link2}) {
    UniqueFd logs = l->open_logs();
    std::string line = host_link::format_log_record(
                           {.time = host_link::format_log_time(0), .source = "app", .stream = "stdout", .line = "hi"}) +
                       "\n";
    host_link::write_all(logs.get(), reinterpret_cast<const uint8_t*>(line.data()), line.size());
  }
  for (int i = 0; i < 1000 && metric("shield_nitro_log_lines_total{enclave=\"second\"}") < 1; ++i) std::this_thread::sleep_for(5ms);
  for (int i = 0; i < 1000 && metric("shield_nitro_log_lines_total{enclave=\"app\"}") < 1; ++i) std::this_thread::sleep_for(5ms);
  std::string out = read_available(log_read.get());
  EXPECT_NE(out.find(R"({"enclave":"app","line":"hi")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"({"enclave":"second","line":"hi")"), std::string::npos) << out;
  EXPECT_EQ(settled("shield_nitro_host_link_refused_total{enclave=\"second\"}", 1), 1);
  EXPECT_EQ(settled("shield_nitro_host_link_refused_total{enclave=\"app\"}", 0), 0);
}

TEST_F(AgentTest, ConfigsItCannotServeAreRefusedBeforeListening) {
  AgentOptions o;
  o.credentials = provider;
  o.config.kms_target = "kms.example.com:443";
  runtime::HostEnclave second = enclave;
  second.name = "second";
  second.cid = 17;
  o.config.enclaves = {enclave, second};  // the same host-link port
  std::string m = message_of([&] { Agent a(o); });
  EXPECT_NE(m.find("both listen on vsock://3:7000"), std::string::npos) << m;

  o.config.enclaves = {enclave};
  o.config.enclaves[0].ingress.push_back({.listen = "tcp://127.0.0.1:0", .vsock_port = 5000});
  EXPECT_EQ(code_of([&] { Agent a(o); }), Errc::kUsage);
  EXPECT_NE(message_of([&] { Agent a(o); }).find("enclaves[app].ingress[0].vsock_port"), std::string::npos);

  o.config.enclaves = {enclave};
  o.config.kms_target = "";
  EXPECT_NE(message_of([&] { Agent a(o); }).find("kms.target: required"), std::string::npos);
}

TEST_F(AgentTest, AnEndpointItCannotListenOnIsAnIoErrorNamingIt) {
  UniqueFd taken = net::listen(net::Endpoint::tcp("127.0.0.1", 0));
  net::Endpoint ep = net::bound_endpoint(taken.get(), net::Endpoint::tcp("127.0.0.1", 0));
  Error e = *test_support::thrown([&] { start(ep.to_string()); });
  EXPECT_EQ(e.code(), Errc::kIo);
  EXPECT_NE(std::string(e.what()).find("cannot listen on " + ep.to_string() + " (metrics)"), std::string::npos) << e.what();
  // Nothing is left listening: the host link's socket can be taken again.
  agent.reset();
  EXPECT_NO_THROW(net::listen(net::Endpoint::vsock(3, kLinkPort)));
}

TEST(HostCredentials, SourcesFromTheConfig) {
  EXPECT_NE(credentials_provider("environment"), nullptr);
  EXPECT_NE(credentials_provider("imds"), nullptr);
  TempDir dir;
  std::string file = dir / "credentials";
  write_file_atomic(file, as_bytes(std::string_view("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n")));
  EXPECT_EQ(credentials_provider("file:" + file)->get().access_key_id, "AKIDFILE");
  EXPECT_EQ(code_of([&] { credentials_provider("vault"); }), Errc::kUsage);
}

}  // namespace
}  // namespace shield_nitro::host
