// `shield-nitro host run` end to end on simulated vsock: the test plays the enclave with HostLink
// (credentials, an artifact, logs), an app behind ingress, and scrapes /healthz and /metrics;
// then the refusals of the command itself (bad config: exit 2, taken endpoint: exit 3).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "http_get.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/host/agent.h"
#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/vsock_network.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace shield_nitro::host {
namespace {

using shield_nitro::test_support::TempDir;
using namespace std::chrono_literals;

uint16_t free_tcp_port() {
  UniqueFd fd = net::listen(net::Endpoint::tcp("127.0.0.1", 0));
  return static_cast<uint16_t>(net::bound_endpoint(fd.get(), net::Endpoint::tcp("127.0.0.1", 0)).port);
}

// A test never hangs on a relay that lost bytes: reads and accepts give up after 20 s.
void give_up_after(int fd) {
  timeval tv{.tv_sec = 20, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

double sample(const std::string& metrics, const std::string& series) {
  size_t at = metrics.find("\n" + series + " ");
  return at == std::string::npos ? -999 : std::stod(metrics.substr(at + series.size() + 2));
}

struct HostSetup {
  TempDir dir{"sn-host"};
  std::string vsock = dir / "vsock";
  std::string model = dir / "model.sealed";
  std::string config = dir / "host.yaml";
  uint16_t ingress_port = free_tcp_port(), metrics_port = free_tcp_port(), kms_port = free_tcp_port();

  HostSetup() {
    ::mkdir(vsock.c_str(), 0700);
    write_file_atomic(model, as_bytes(std::string_view("sealed bytes of the model, as the parent holds them")));
    std::ofstream(dir / "runtime.yaml") << "version: 1\n"
                                           "host: {cid: 3, port: 7100}\n"
                                           "kms: {region: us-east-1, proxy_port: 8100}\n"
                                           "artifacts:\n"
                                           "  - name: model\n"
                                           "    source: host\n"
                                           "    path: /run/shield/model.bin\n"
                                           "    key_id: arn:aws:kms:us-east-1:111122223333:key/test\n"
                                           "    sha256: " + file_sha256(model) + "\n"
                                           "egress: {proxy_port: 3128, allow: [\"api.example.com:443\"]}\n"
                                           "ingress:\n"
                                           "  - {vsock_port: 5000, app_port: 8080}\n";
    write_host_config("");
    ::setenv("SHIELD_NITRO_VSOCK_DIR", vsock.c_str(), 1);
    ::setenv("AWS_ACCESS_KEY_ID", "AKIDHOSTE2E", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "e2e-secret", 1);
    ::unsetenv("AWS_SESSION_TOKEN");
  }
  ~HostSetup() { ::unsetenv("SHIELD_NITRO_VSOCK_DIR"); }

  void write_host_config(const std::string& extra) {
    std::ofstream(config) << "enclaves:\n"
                             "  - name: app\n"
                             "    cid: 16\n"
                             "    runtime: runtime.yaml\n"
                             "    artifacts: {model: model.sealed}\n"
                             "    ingress:\n"
                             "      - {listen: \"tcp://127.0.0.1:" + std::to_string(ingress_port) + "\", vsock_port: 5000}\n"
                             "    logs: stdout\n"
                             "kms: {target: \"127.0.0.1:" + std::to_string(kms_port) + "\"}\n"
                             "credentials: environment\n"
                             "metrics: \"tcp://127.0.0.1:" + std::to_string(metrics_port) + "\"\n" + extra;
  }
  net::Endpoint metrics() const { return net::Endpoint::tcp("127.0.0.1", metrics_port); }
};

TEST(HostRun, ServesAnEnclaveEndToEnd) {
  HostSetup s;
  std::string log = s.dir / "host.log";
  sn_test::Process host({SN_CLI, "host", "run", "--config", s.config}, log);
  host.wait_ready([&] {
    try {
      return http_get(s.metrics(), "/healthz").rfind("HTTP/1.1 200", 0) == 0;
    } catch (const Error&) {
      return false;
    }
  });
  net::install_vsock_network(net::simulated_vsock(s.vsock, 16));
  std::string before = http_get(s.metrics(), "/metrics");
  EXPECT_EQ(sample(before, "shield_nitro_credentials_served_total{enclave=\"app\"}"), 0) << before;

  host_link::HostLink link({.cid = 3, .port = 7100});
  // Credentials: the parent's, from its environment.
  kms::Credentials c = link.fetch_credentials();
  EXPECT_EQ(c.access_key_id, "AKIDHOSTE2E");
  EXPECT_EQ(std::string(c.secret_access_key.view().begin(), c.secret_access_key.view().end()), "e2e-secret");

  // The artifact streams with the digest the runtime config pins.
  host_link::HostLink::Artifact a = link.open_artifact("model");
  Bytes got;
  uint8_t buf[4096];
  ssize_t n;
  give_up_after(a.fd.get());
  while ((n = ::recv(a.fd.get(), buf, sizeof buf, 0)) > 0) got.insert(got.end(), buf, buf + n);
  EXPECT_EQ(got, read_file(s.model));
  EXPECT_EQ(a.sha256, file_sha256(s.model));

  // The app behind ingress: the enclave's side listens on vsock port 5000 and echoes.
  UniqueFd app = net::listen(net::Endpoint::vsock(16, 5000));
  give_up_after(app.get());
  std::thread echo([&] {
    UniqueFd conn(::accept(app.get(), nullptr, nullptr));
    give_up_after(conn.get());
    char b[64];
    ssize_t r;
    while ((r = ::recv(conn.get(), b, sizeof b, 0)) > 0) host_link::write_all(conn.get(), reinterpret_cast<uint8_t*>(b), r);
  });
  {
    UniqueFd client = net::connect(net::Endpoint::tcp("127.0.0.1", s.ingress_port));
    give_up_after(client.get());
    host_link::write_all(client.get(), reinterpret_cast<const uint8_t*>("ping"), 4);
    ::shutdown(client.get(), SHUT_WR);
    std::string back;
    char b[64];
    while ((n = ::recv(client.get(), b, sizeof b, 0)) > 0) back.append(b, static_cast<size_t>(n));
    EXPECT_EQ(back, "ping");
  }
  echo.join();

  // Logs: two records in, both on the agent's stdout with the enclave's name first.
  {
    UniqueFd logs = link.open_logs();
    std::string records =
        host_link::format_log_record({.time = host_link::format_log_time(1'796'544'000'000), .source = "supervisor",
                                      .stream = "event", .line = "app started", .event = "app_started"}) +
        "\n" +
        host_link::format_log_record({.time = host_link::format_log_time(1'796'544'000'001), .source = "app",
                                      .stream = "stdout", .line = "hello from the enclave"}) +
        "\n";
    host_link::write_all(logs.get(), reinterpret_cast<const uint8_t*>(records.data()), records.size());
  }
  std::string out;
  for (int i = 0; i < 400 && out.find("hello from the enclave") == std::string::npos; ++i) {
    std::this_thread::sleep_for(25ms);
    out = read_text_file(log);
  }
  EXPECT_NE(out.find(R"({"enclave":"app","line":"hello from the enclave","source":"app","stream":"stdout",)"),
            std::string::npos)
      << out;
  // Egress outside the allowlist is refused by the host.
  EXPECT_THROW(link.connect("evil.example.com", 443), Error);

  std::string after = http_get(s.metrics(), "/metrics");
  EXPECT_EQ(sample(after, "shield_nitro_credentials_served_total{enclave=\"app\"}"), 1) << after;
  EXPECT_EQ(sample(after, "shield_nitro_artifacts_served_total{enclave=\"app\"}"), 1);
  EXPECT_EQ(sample(after, "shield_nitro_bytes_relayed_total{enclave=\"app\",path=\"artifact\",direction=\"down\"}"), got.size());
  EXPECT_EQ(sample(after, "shield_nitro_app_running{enclave=\"app\"}"), 1);
  EXPECT_EQ(sample(after, "shield_nitro_egress_refused_total{enclave=\"app\"}"), 1);
  EXPECT_GE(sample(after, "shield_nitro_ingress_connections_total{enclave=\"app\"}"), 1);
  std::string health = http_get(s.metrics(), "/healthz");
  EXPECT_NE(health.find(R"("app":{"connected":)"), std::string::npos) << health;
  net::install_vsock_network(nullptr);

  host.stop();  // SIGTERM
  EXPECT_NE(read_text_file(log).find("shutting down"), std::string::npos);
}

TEST(HostRun, BadConfigIsExit2NamingTheKey) {
  HostSetup s;
  s.write_host_config("colour: blue\n");
  sn_test::RunResult r = sn_test::run({SN_CLI, "host", "run", "--config", s.config}, s.dir.path());
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("colour"), std::string::npos) << r.err;
}

TEST(HostRun, AnEndpointItCannotListenOnIsExit3InOneLine) {
  HostSetup s;
  UniqueFd taken = net::listen(net::Endpoint::tcp("127.0.0.1", s.metrics_port));
  sn_test::RunResult r = sn_test::run({SN_CLI, "host", "run", "--config", s.config}, s.dir.path());
  EXPECT_EQ(r.status, 3) << r.err;
  std::string want = "cannot listen on tcp://127.0.0.1:" + std::to_string(s.metrics_port) + " (metrics)";
  EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("shield-nitro:"), r.err.rfind("shield-nitro:")) << r.err;  // one error line
}

}  // namespace
}  // namespace shield_nitro::host
