// The host agent's config: paths resolved against its folder, each enclave's runtime config
// loaded, and the cross-checks against it refused with the key path.
#include <gtest/gtest.h>

#include <string>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/runtime/host_config.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

namespace shield_nitro::runtime {
namespace {

using test_support::TempDir;
using test_support::thrown;

const std::string kRuntime =
    "version: 1\n"
    "kms: {region: us-east-1}\n"
    "artifacts:\n"
    "  - {name: model, source: host, path: /run/shield/model.bin, key_id: alias/m, sha256: " + std::string(64, 'b') + "}\n"
    "  - {name: baked, source: /opt/b.sealed, path: /run/shield/b, key_id: alias/b, sha256: " + std::string(64, 'c') + "}\n"
    "ingress:\n"
    "  - {vsock_port: 5000, app_port: 8080}\n"
    "  - {vsock_port: 5001, app_port: 8081}\n";

const std::string kHost =
    "enclaves:\n"
    "  - name: app\n"
    "    cid: 16\n"
    "    runtime: app.runtime.yaml\n"
    "    artifacts: {model: sealed/model.sealed}\n"
    "    ingress:\n"
    "      - {listen: \"tcp://0.0.0.0:8080\", vsock_port: 5000}\n"
    "    logs: file:logs/app.jsonl\n"
    "kms:\n"
    "  target: kms.us-east-1.amazonaws.com:443\n"
    "credentials: file:creds\n"
    "metrics: \"tcp://127.0.0.1:9090\"\n";

std::string with(const std::string& from, const std::string& to, const std::string& base = kHost) {
  size_t at = base.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? base : base.substr(0, at) + to + base.substr(at + from.size());
}

class HostConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { write_file_atomic(dir / "app.runtime.yaml", as_bytes(kRuntime)); }
  HostConfig parse(const std::string& yaml) { return parse_host_config(yaml, dir.path(), "host.yaml"); }
  std::string refusal(const std::string& yaml) {
    auto e = thrown<Error>([&] { parse(yaml); });
    if (!e) return "";
    EXPECT_EQ(e->code(), Errc::kFormat) << e->what();
    return e->what();
  }
  TempDir dir;
};

#define EXPECT_REFUSED(yaml, text) EXPECT_PRED_FORMAT2(::testing::IsSubstring, text, refusal(yaml))

TEST_F(HostConfigTest, ReadsEveryKeyAndResolvesPaths) {
  HostConfig c = parse(kHost);
  ASSERT_EQ(c.enclaves.size(), 1u);
  const HostEnclave& e = c.enclaves[0];
  EXPECT_EQ(e.name, "app");
  EXPECT_EQ(e.cid, 16u);
  EXPECT_EQ(e.runtime_path, dir / "app.runtime.yaml");
  EXPECT_EQ(e.runtime.artifacts.size(), 2u);
  EXPECT_EQ(e.artifacts.at("model"), dir / "sealed/model.sealed");
  ASSERT_EQ(e.ingress.size(), 1u);
  EXPECT_EQ(e.ingress[0].listen, "tcp://0.0.0.0:8080");
  EXPECT_EQ(e.ingress[0].vsock_port, 5000u);
  EXPECT_EQ(e.logs, "file:" + dir / "logs/app.jsonl");
  EXPECT_EQ(c.kms_target, "kms.us-east-1.amazonaws.com:443");
  EXPECT_EQ(c.credentials, "file:" + dir / "creds");
  EXPECT_EQ(c.metrics, "tcp://127.0.0.1:9090");
}

TEST_F(HostConfigTest, DefaultsAndLoadFromFile) {
  write_file_atomic(dir / "plain.yaml", as_bytes(std::string("version: 1\n")));
  write_file_atomic(dir / "host.yaml", as_bytes(std::string("enclaves: [{name: a, runtime: plain.yaml}]\n")));
  HostConfig c = load_host_config(dir / "host.yaml");
  EXPECT_EQ(c.enclaves[0].cid, 16u);
  EXPECT_EQ(c.enclaves[0].logs, "stdout");
  EXPECT_EQ(c.enclaves[0].runtime_path, dir / "plain.yaml");
  EXPECT_EQ(c.credentials, "environment");
  EXPECT_TRUE(c.kms_target.empty());  // no enclave uses KMS
  EXPECT_TRUE(c.metrics.empty());
}

TEST_F(HostConfigTest, RefusesUnknownKeysAndTypes) {
  EXPECT_REFUSED(kHost + "extra: 1\n", "host.yaml: extra: unknown key");
  EXPECT_REFUSED(with("    cid: 16\n", "    cid: 16\n    cdi: 1\n"), "host.yaml: enclaves[0].cdi: unknown key; expected one of: name, cid, runtime, artifacts, ingress, logs (line 4)");
  EXPECT_REFUSED(with("    cid: 16\n", "    cid: 3\n"), "enclaves[0].cid: out of range 4-");
  EXPECT_REFUSED("kms: {target: a:1}\n", "enclaves: required key missing");
  EXPECT_REFUSED("enclaves: []\n", "enclaves: at least one enclave is needed");
  EXPECT_REFUSED(with("    logs: file:logs/app.jsonl\n", "    logs: syslog\n"), "enclaves[0].logs: expected stdout or file:PATH");
  EXPECT_REFUSED(with("credentials: file:creds\n", "credentials: vault\n"), "credentials: expected environment, imds or file:PATH");
  EXPECT_REFUSED(with("metrics: \"tcp://127.0.0.1:9090\"\n", "metrics: \"vsock://3:9090\"\n"), "metrics: expected tcp://HOST:PORT");
  EXPECT_REFUSED(with("  target: kms.us-east-1.amazonaws.com:443\n", "  target: kms.us-east-1.amazonaws.com\n"), "kms.target: expected HOST:PORT");
}

TEST_F(HostConfigTest, CrossChecksTheRuntimeConfig) {
  EXPECT_REFUSED(with("{model: sealed/model.sealed}", "{model: m, other: o}"),
                 "enclaves[0].artifacts.other: the runtime config " + dir / "app.runtime.yaml" + " has no artifact 'other'");
  EXPECT_REFUSED(with("{model: sealed/model.sealed}", "{model: m, baked: b}"),
                 "enclaves[0].artifacts.baked: artifact 'baked' comes from /opt/b.sealed in the image");
  EXPECT_REFUSED(with("    artifacts: {model: sealed/model.sealed}\n", ""), "enclaves[0].artifacts: no file for artifact 'model'");
  EXPECT_REFUSED(with("vsock_port: 5000}", "vsock_port: 6000}"), "enclaves[0].ingress[0].vsock_port: 6000 is not an ingress vsock_port");
  EXPECT_REFUSED(with("kms:\n  target: kms.us-east-1.amazonaws.com:443\n", ""), "kms.target: required: enclaves[0] uses KMS");
}

TEST_F(HostConfigTest, RefusesDuplicates) {
  std::string two = with("      - {listen: \"tcp://0.0.0.0:8080\", vsock_port: 5000}\n",
                         "      - {listen: \"tcp://0.0.0.0:8080\", vsock_port: 5000}\n"
                         "      - {listen: \"tcp://0.0.0.0:8080\", vsock_port: 5001}\n");
  EXPECT_REFUSED(two, "enclaves[0].ingress[1].listen: tcp://0.0.0.0:8080 is already used by enclaves[0].ingress[0].listen");
  EXPECT_REFUSED(with("metrics: \"tcp://127.0.0.1:9090\"\n", "metrics: \"tcp://0.0.0.0:8080\"\n"),
                 "metrics: tcp://0.0.0.0:8080 is already used by enclaves[0].ingress[0].listen");
  std::string second = "  - {name: app, cid: 17, runtime: app.runtime.yaml, artifacts: {model: m}}\n";
  EXPECT_REFUSED(with("kms:\n", second + "kms:\n"), "enclaves[1].name: 'app' is already the name of enclaves[0]");
  second = "  - {name: b, cid: 16, runtime: app.runtime.yaml, artifacts: {model: m}}\n";
  EXPECT_REFUSED(with("kms:\n", second + "kms:\n"), "enclaves[1].cid: 16 is already the cid of enclaves[0]");
  second = "  - {name: b, cid: 17, runtime: app.runtime.yaml, artifacts: {model: m}}\n";
  EXPECT_EQ(parse(with("kms:\n", second + "kms:\n")).enclaves.size(), 2u);
}

TEST_F(HostConfigTest, RuntimeConfigErrorsNameTheirFile) {
  write_file_atomic(dir / "app.runtime.yaml", as_bytes(std::string("version: 1\nbogus: 1\n")));
  auto e = thrown<Error>([&] { parse(kHost); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::kFormat);
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, dir / "app.runtime.yaml: bogus: unknown key", e->what());
  auto missing = thrown<Error>([&] { parse(with("runtime: app.runtime.yaml", "runtime: none.yaml")); });
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->code(), Errc::kIo);
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "enclaves[0].runtime: ", missing->what());
}

}  // namespace
}  // namespace shield_nitro::runtime
