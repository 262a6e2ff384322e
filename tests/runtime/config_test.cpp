// The runtime config parser: every key read, every strictness rule refused with the key path,
// the source name and the line.
#include <gtest/gtest.h>

#include <string>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/runtime/config.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

namespace shield_nitro::runtime {
namespace {

using test_support::thrown;

const std::string kSha(64, 'a');

// Every key set; each line is distinct so tests can replace one.
const std::string kFull =
    "version: 1\n"                                          // 1
    "app:\n"                                                // 2
    "  user: \"1000:1001\"\n"                               // 3
    "  workdir: /app\n"                                     // 4
    "  env: {MODEL_PATH: /run/shield/model.bin, N: 3}\n"    // 5
    "  restart: on-failure\n"                               // 6
    "  max_restarts: 7\n"                                   // 7
    "  restart_backoff_ms: 250\n"                           // 8
    "host: {cid: 3, port: 7001}\n"                          // 9
    "kms:\n"                                                // 10
    "  region: eu-west-1\n"                                 // 11
    "  endpoint: https://kms.example.test:4443\n"           // 12
    "  proxy_port: 8001\n"                                  // 13
    "  ca_file: /etc/kms-ca.pem\n"                          // 14
    "  api_port: 9100\n"                                    // 15
    "storage: {path: /run/shield, size_mib: 64}\n"          // 16
    "artifacts:\n"                                          // 17
    "  - name: model\n"                                     // 18
    "    source: host\n"                                    // 19
    "    path: /run/shield/model.bin\n"                     // 20
    "    key_id: arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\n"  // 21
    "    encryption_context: {purpose: model}\n"            // 22
    "    header_sha256: " + kSha + "\n"                     // 23
    "  - name: vocab\n"                                     // 24
    "    source: /opt/vocab.sealed\n"                       // 25
    "    path: /run/shield/vocab/words.txt\n"               // 26
    "    key_id: alias/vocab\n"                             // 27
    "    sha256: " + std::string(64, '0') + "\n"            // 28
    "egress:\n"                                             // 29
    "  proxy_port: 3128\n"                                  // 30
    "  allow: [\"api.example.com:443\", \"*.s3.amazonaws.com:443\"]\n"  // 31
    "ingress:\n"                                            // 32
    "  - {vsock_port: 5000, app_port: 8080, mode: passthrough}\n"  // 33
    "  - {vsock_port: 5001, app_port: 8081}\n"             // 34
    "logs: {buffer_kib: 2048}\n";                           // 35

// kFull with `from` (which must occur) replaced by `to`.
std::string with(const std::string& from, const std::string& to, const std::string& base = kFull) {
  size_t at = base.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at == std::string::npos) return base;
  return base.substr(0, at) + to + base.substr(at + from.size());
}

// The one-line refusal of yaml (kFormat), named after "app.runtime.yaml".
std::string refusal(const std::string& yaml) {
  auto e = thrown<Error>([&] { parse_runtime_config(yaml, "app.runtime.yaml"); });
  if (!e) return "";
  EXPECT_EQ(e->code(), Errc::kFormat) << e->what();
  std::string what = e->what();
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  EXPECT_TRUE(what.starts_with("app.runtime.yaml: ")) << what;
  return what;
}

#define EXPECT_REFUSED(yaml, text) EXPECT_PRED_FORMAT2(::testing::IsSubstring, text, refusal(yaml))

TEST(RuntimeConfig, ReadsEveryKey) {
  RuntimeConfig c = parse_runtime_config(kFull);
  EXPECT_EQ(c.app.user, "1000:1001");
  EXPECT_EQ(c.app.uid, 1000u);
  EXPECT_EQ(c.app.gid, 1001u);
  EXPECT_EQ(c.app.workdir, "/app");
  EXPECT_EQ(c.app.env.at("MODEL_PATH"), "/run/shield/model.bin");
  EXPECT_EQ(c.app.env.at("N"), "3");
  EXPECT_EQ(c.app.restart, RestartPolicy::kOnFailure);
  EXPECT_EQ(c.app.max_restarts, 7u);
  EXPECT_EQ(c.app.restart_backoff_ms, 250u);
  EXPECT_EQ(c.host.cid, 3u);
  EXPECT_EQ(c.host.port, 7001u);
  EXPECT_EQ(c.kms.region, "eu-west-1");
  EXPECT_EQ(c.kms.endpoint, "https://kms.example.test:4443");
  EXPECT_EQ(c.kms.proxy_port, 8001u);
  EXPECT_EQ(c.kms.ca_file, "/etc/kms-ca.pem");
  EXPECT_EQ(c.kms.api_port, 9100);
  EXPECT_EQ(c.storage.path, "/run/shield");
  EXPECT_EQ(c.storage.size_mib, 64u);
  ASSERT_EQ(c.artifacts.size(), 2u);
  EXPECT_EQ(c.artifacts[0].name, "model");
  EXPECT_TRUE(c.artifacts[0].from_host());
  EXPECT_EQ(c.artifacts[0].path, "/run/shield/model.bin");
  EXPECT_EQ(c.artifacts[0].key_id, "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab");
  EXPECT_EQ(c.artifacts[0].encryption_context, (std::map<std::string, std::string>{{"purpose", "model"}}));
  EXPECT_EQ(c.artifacts[0].header_sha256, kSha);
  EXPECT_TRUE(c.artifacts[0].sha256.empty());
  EXPECT_EQ(c.artifacts[1].sha256, std::string(64, '0'));
  EXPECT_TRUE(c.artifacts[1].header_sha256.empty());
  EXPECT_FALSE(c.artifacts[1].from_host());
  EXPECT_EQ(c.artifacts[1].source, "/opt/vocab.sealed");
  EXPECT_TRUE(c.artifacts[1].encryption_context.empty());
  EXPECT_EQ(c.egress.proxy_port, 3128);
  ASSERT_EQ(c.egress.allow.size(), 2u);
  EXPECT_EQ(c.egress.allow[1].host, "*.s3.amazonaws.com");
  EXPECT_EQ(c.egress.allow[1].port, 443);
  ASSERT_EQ(c.ingress.size(), 2u);
  EXPECT_EQ(c.ingress[1].vsock_port, 5001u);
  EXPECT_EQ(c.ingress[1].app_port, 8081);
  EXPECT_EQ(c.ingress[0].mode, IngressMode::kPassthrough);
  EXPECT_EQ(c.logs.buffer_kib, 2048u);
}

TEST(RuntimeConfig, DefaultsForAMinimalConfig) {
  RuntimeConfig c = parse_runtime_config("version: 1\n");
  RuntimeConfig d;
  EXPECT_EQ(c.app.uid, 65534u);
  EXPECT_EQ(c.app.gid, 65534u);
  EXPECT_EQ(c.app.workdir, "/");
  EXPECT_EQ(c.app.restart, RestartPolicy::kNever);
  EXPECT_EQ(c.host.port, d.host.port);
  EXPECT_EQ(c.storage.path, "/run/shield");
  EXPECT_EQ(c.egress.proxy_port, 0);
  EXPECT_TRUE(c.artifacts.empty() && c.ingress.empty() && c.egress.allow.empty());
  EXPECT_EQ(c.logs.buffer_kib, 1024u);
}

TEST(RuntimeConfig, UsersAsNumbersOrNames) {
  RuntimeConfig c = parse_runtime_config("version: 1\napp: {user: 1000}\n");
  EXPECT_EQ(c.app.uid, 1000u);
  EXPECT_EQ(c.app.gid, 1000u);  // a lone uid takes the same group
  c = parse_runtime_config("version: 1\napp: {user: \"0:0\"}\n");
  EXPECT_EQ(c.app.uid, 0u);
  EXPECT_EQ(c.app.gid, 0u);
  c = parse_runtime_config("version: 1\napp: {user: \"app:staff\"}\n");
  EXPECT_EQ(c.app.user, "app:staff");
  EXPECT_EQ(c.app.uid, 65534u);  // names are resolved by the supervisor in the image
  EXPECT_REFUSED("version: 1\napp: {user: \"\"}\n", "app.user: must not be empty");
  EXPECT_REFUSED("version: 1\napp: {user: \"1000:\"}\n", "app.user: expected uid[:gid]");
  EXPECT_REFUSED("version: 1\napp: {user: \"Root\"}\n", "app.user: expected uid[:gid]");
  EXPECT_REFUSED("version: 1\napp: {user: \"a b\"}\n", "app.user: expected uid[:gid]");
  EXPECT_REFUSED("version: 1\napp: {user: \"1:2:3\"}\n", "app.user: expected uid[:gid]");
  EXPECT_REFUSED("version: 1\napp: {user: 4294967295}\n", "app.user: id 4294967295 out of range");
  EXPECT_REFUSED("version: 1\napp: {user: [1]}\n", "app.user: expected a string, got a list");
}

TEST(RuntimeConfig, VersionMustBeOne) {
  EXPECT_REFUSED("app: {}\n", "version: required key missing");
  EXPECT_REFUSED("version: 2\n", "version: unsupported version (expected 1) (line 1)");
  EXPECT_REFUSED("version: \"1\"\n", "version: expected an integer");
  EXPECT_REFUSED("version: 1.0\n", "version: expected an integer");
}

TEST(RuntimeConfig, RefusesUnknownAndDuplicateKeys) {
  EXPECT_REFUSED(kFull + "extra: 1\n", "extra: unknown key; expected one of: version, app,");
  EXPECT_REFUSED(with("  workdir: /app\n", "  workdir: /app\n  wrkdir: /x\n"), "app.wrkdir: unknown key; expected one of: user, workdir, env, restart, max_restarts, restart_backoff_ms (line 5)");
  EXPECT_REFUSED(with("    key_id: alias/vocab\n", "    key_id: alias/vocab\n    keyid: x\n"), "artifacts[1].keyid: unknown key");
  EXPECT_REFUSED(with("{vsock_port: 5001, app_port: 8081}", "{vsock_port: 5001, app_port: 8081, tls: on}"),
                 "ingress[1].tls: unknown key; expected one of: vsock_port, app_port, mode, key, rotate_hours, user_data (line 34)");
  EXPECT_REFUSED(with("  max_restarts: 7\n", "  max_restarts: 7\n  max_restarts: 8\n"), "app.max_restarts: duplicate key (line 8)");
  EXPECT_REFUSED("version: 1\nversion: 1\n", "version: duplicate key (line 2)");
  EXPECT_REFUSED(with("{purpose: model}", "{purpose: model, purpose: x}"), "artifacts[0].encryption_context.purpose: duplicate key");
  EXPECT_REFUSED("version: 1\n[a]: 1\n", "expected a plain key");
  // What the file holds never breaks the one-line message (refusal() checks there is no newline).
  EXPECT_REFUSED("version: 1\n\"a\\nb\": 1\n", "a?b: unknown key");
  std::string long_value = refusal("version: 1\napp: {restart: " + std::string(5000, 'x') + "}\n");
  EXPECT_LT(long_value.size(), 600u);
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "app.restart: expected never or on-failure, got 'xxx", long_value);
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "x... (line 2)", long_value);
}

TEST(RuntimeConfig, RefusesWrongTypes) {
  EXPECT_REFUSED("- version: 1\n", "expected a mapping, got a list (line 1)");
  EXPECT_REFUSED("", "empty file");
  EXPECT_REFUSED("version: 1\n---\nversion: 1\n", "expected one YAML document (line 2)");
  EXPECT_REFUSED("version: 1\napp: 3\n", "app: expected a mapping, got a scalar (line 2)");
  EXPECT_REFUSED(with("  workdir: /app\n", "  workdir:\n"), "app.workdir: expected a string, got null (line 4)");
  EXPECT_REFUSED(with("  max_restarts: 7\n", "  max_restarts: seven\n"), "app.max_restarts: expected an integer 0-1000000, got 'seven' (line 7)");
  EXPECT_REFUSED(with("  max_restarts: 7\n", "  max_restarts: \"7\"\n"), "app.max_restarts: expected an integer 0-1000000, got a quoted string");
  EXPECT_REFUSED(with("  max_restarts: 7\n", "  max_restarts: -1\n"), "app.max_restarts: expected an integer");
  EXPECT_REFUSED(with("  max_restarts: 7\n", "  max_restarts: 07\n"), "app.max_restarts: expected an integer");
  EXPECT_REFUSED(with("  max_restarts: 7\n", "  max_restarts: 99999999999999999999999\n"), "app.max_restarts: expected an integer");
  EXPECT_REFUSED(with("  max_restarts: 7\n", "  max_restarts: 18446744073709551616\n"), "app.max_restarts: out of range");
  EXPECT_REFUSED(with("  env: {MODEL_PATH: /run/shield/model.bin, N: 3}\n", "  env: [A]\n"), "app.env: expected a mapping, got a list");
  EXPECT_REFUSED(with("N: 3}", "N: {x: 1}}"), "app.env.N: expected a string, got a mapping");
  EXPECT_REFUSED(with("N: 3}", "1N: 3}"), "app.env: '1N' is not a variable name");
  EXPECT_REFUSED(with("  restart: on-failure\n", "  restart: always\n"), "app.restart: expected never or on-failure, got 'always' (line 6)");
  EXPECT_REFUSED("version: 1\nartifacts: {}\n", "artifacts: expected a list, got a mapping");
  EXPECT_REFUSED(with("  allow: [", "  allow: [[1], "), "egress.allow[0]: expected a string, got a list");
  EXPECT_REFUSED(with("mode: passthrough", "mode: tls"), "ingress[0].mode: expected passthrough or attested-tls, got 'tls'");
  EXPECT_REFUSED("version: 1\napp: {user: \"a\n", "YAML syntax:");
  // Stray tokens that yaml-cpp's LoadAll would loop on forever (a fuzzer find).
  EXPECT_REFUSED(", \"x\"]\n000\negress:\n ", "expected one YAML document");
}

TEST(RuntimeConfig, AttestedTlsIngress) {
  const std::string base = "{vsock_port: 5001, app_port: 8081}";
  RuntimeConfig c = parse_runtime_config(with(base, "{vsock_port: 5001, app_port: 8081, mode: attested-tls}"));
  EXPECT_EQ(c.ingress[1].mode, IngressMode::kAttestedTls);
  EXPECT_EQ(c.ingress[1].key, TlsKeyType::kP256);
  EXPECT_EQ(c.ingress[1].rotate_hours, 24u);
  EXPECT_TRUE(c.ingress[1].user_data.empty());
  c = parse_runtime_config(with(base, "{vsock_port: 5001, app_port: 8081, mode: attested-tls, key: p384, rotate_hours: 168, user_data: \"00ff10\"}"));
  EXPECT_EQ(c.ingress[1].key, TlsKeyType::kP384);
  EXPECT_EQ(c.ingress[1].rotate_hours, 168u);
  EXPECT_EQ(c.ingress[1].user_data, (std::vector<uint8_t>{0x00, 0xff, 0x10}));
  c = parse_runtime_config(with(base, "{vsock_port: 5001, app_port: 8081, mode: attested-tls, user_data: " + std::string(944, 'a') + "}"));
  EXPECT_EQ(c.ingress[1].user_data.size(), 472u);
  auto tls = [&](const std::string& extra) { return with(base, "{vsock_port: 5001, app_port: 8081, mode: attested-tls, " + extra + "}"); };
  EXPECT_REFUSED(tls("key: p521"), "ingress[1].key: expected p256 or p384, got 'p521' (line 34)");
  EXPECT_REFUSED(tls("rotate_hours: 0"), "ingress[1].rotate_hours: out of range 1-168");
  EXPECT_REFUSED(tls("rotate_hours: 169"), "ingress[1].rotate_hours: out of range 1-168");
  EXPECT_REFUSED(tls("user_data: abc"), "ingress[1].user_data: expected lowercase hex of 0-472 bytes");
  EXPECT_REFUSED(tls("user_data: ABCD"), "ingress[1].user_data: expected lowercase hex");
  EXPECT_REFUSED(tls("user_data: " + std::string(946, 'a')), "ingress[1].user_data: expected lowercase hex of 0-472 bytes");
  // TLS keys with passthrough are a mistake, not something to ignore.
  EXPECT_REFUSED(with(base, "{vsock_port: 5001, app_port: 8081, key: p256}"), "ingress[1].key: only with mode: attested-tls");
  EXPECT_REFUSED(with(base, "{vsock_port: 5001, app_port: 8081, mode: passthrough, rotate_hours: 2}"), "ingress[1].rotate_hours: only with mode: attested-tls");
}

TEST(RuntimeConfig, RefusesPortsOutOfRange) {
  EXPECT_REFUSED(with("port: 7001}", "port: 0}"), "host.port: out of range 1-4294967294: 0 (line 9)");
  EXPECT_REFUSED(with("port: 7001}", "port: 4294967295}"), "host.port: out of range");
  EXPECT_REFUSED(with("{cid: 3,", "{cid: 1,"), "host.cid: out of range 2-4294967294");
  EXPECT_REFUSED(with("  api_port: 9100\n", "  api_port: 65536\n"), "kms.api_port: out of range 0-65535: 65536 (line 15)");
  EXPECT_REFUSED(with("  proxy_port: 8001\n", "  proxy_port: 0\n"), "kms.proxy_port: out of range");
  EXPECT_REFUSED(with("  proxy_port: 3128\n", "  proxy_port: 70000\n"), "egress.proxy_port: out of range");
  EXPECT_REFUSED(with("app_port: 8081}", "app_port: 0}"), "ingress[1].app_port: out of range 1-65535");
  EXPECT_REFUSED(with("{vsock_port: 5001, ", "{"), "ingress[1].vsock_port: required key missing (line 34)");
  EXPECT_REFUSED(with("size_mib: 64}", "size_mib: 0}"), "storage.size_mib: out of range");
  EXPECT_REFUSED(with("{buffer_kib: 2048}", "{buffer_kib: 0}"), "logs.buffer_kib: out of range");
  EXPECT_REFUSED(with("  restart_backoff_ms: 250\n", "  restart_backoff_ms: 30001\n"), "app.restart_backoff_ms: out of range");
}

TEST(RuntimeConfig, RefusesReusedPorts) {
  // Two ingresses may lead to one app port (passthrough and attested-tls side by side).
  RuntimeConfig shared = parse_runtime_config(with("app_port: 8081}", "app_port: 8080}"));
  EXPECT_EQ(shared.ingress[0].app_port, shared.ingress[1].app_port);
  EXPECT_REFUSED(with("app_port: 8081}", "app_port: 3128}"), "ingress[1].app_port: port 3128 is already used by egress.proxy_port");
  EXPECT_REFUSED(with("  proxy_port: 3128\n", "  proxy_port: 9100\n"), "egress.proxy_port: port 9100 is already used by kms.api_port");
  EXPECT_REFUSED(with("{vsock_port: 5001,", "{vsock_port: 5000,"), "ingress[1].vsock_port: vsock port 5000 is already used by ingress[0].vsock_port");
  EXPECT_REFUSED(with("  proxy_port: 8001\n", "  proxy_port: 7001\n"), "kms.proxy_port: vsock port 7001 is already used by host.port (line 13)");
  EXPECT_REFUSED(with("{vsock_port: 5001,", "{vsock_port: 8001,"), "ingress[1].vsock_port: vsock port 8001 is already used by kms.proxy_port");
  // The KMS proxy port is only claimed when KMS is used.
  EXPECT_NO_THROW(parse_runtime_config("version: 1\nkms: {proxy_port: 5000}\ningress: [{vsock_port: 5000, app_port: 80}]\n"));
}

TEST(RuntimeConfig, RefusesRelativeOrUnnormalizedPaths) {
  EXPECT_REFUSED(with("  workdir: /app\n", "  workdir: app\n"), "app.workdir: expected an absolute path, got 'app' (line 4)");
  EXPECT_REFUSED(with("  workdir: /app\n", "  workdir: /app/../etc\n"), "app.workdir: '..' component");
  EXPECT_REFUSED(with("  workdir: /app\n", "  workdir: /app/./x\n"), "app.workdir: '.' component");
  EXPECT_REFUSED(with("  workdir: /app\n", "  workdir: /app//x\n"), "app.workdir: empty component");
  EXPECT_REFUSED(with("  workdir: /app\n", "  workdir: /app/\n"), "app.workdir: trailing '/'");
  EXPECT_REFUSED(with("  ca_file: /etc/kms-ca.pem\n", "  ca_file: kms-ca.pem\n"), "kms.ca_file: expected an absolute path");
  EXPECT_REFUSED(with("{path: /run/shield,", "{path: run/shield,"), "storage.path: expected an absolute path");
  EXPECT_REFUSED(with("{path: /run/shield,", "{path: /,"), "storage.path: the memory filesystem cannot be mounted on /");
  EXPECT_REFUSED(with("    source: /opt/vocab.sealed\n", "    source: opt/vocab.sealed\n"),
                 "artifacts[1].source: expected host or an absolute path in the image (line 25)");
  EXPECT_REFUSED(with("    source: /opt/vocab.sealed\n", "    source: /run/shield/vocab.sealed\n"),
                 "artifacts[1].source: is under storage.path /run/shield");
  EXPECT_REFUSED(with("    path: /run/shield/model.bin\n", "    path: model.bin\n"), "artifacts[0].path: expected an absolute path");
  EXPECT_EQ(parse_runtime_config(with("  workdir: /app\n", "  workdir: /\n")).app.workdir, "/");
}

TEST(RuntimeConfig, ArtifactPathsStayInStorageAndAreUsedOnce) {
  EXPECT_REFUSED(with("    path: /run/shield/model.bin\n", "    path: /etc/model.bin\n"),
                 "artifacts[0].path: /etc/model.bin is not under storage.path /run/shield (line 20)");
  EXPECT_REFUSED(with("    path: /run/shield/model.bin\n", "    path: /run/shield\n"), "artifacts[0].path: /run/shield is not under");
  EXPECT_REFUSED(with("    path: /run/shield/model.bin\n", "    path: /run/shieldx/m\n"), "is not under storage.path");
  EXPECT_REFUSED(with("    path: /run/shield/vocab/words.txt\n", "    path: /run/shield/model.bin\n"),
                 "artifacts[1].path: /run/shield/model.bin is already the path of artifacts[0] (line 26)");
  EXPECT_REFUSED(with("    path: /run/shield/vocab/words.txt\n", "    path: /run/shield/model.bin/x\n"),
                 "artifacts[1].path: /run/shield/model.bin/x and artifacts[0].path /run/shield/model.bin are nested");
  // storage.path is honoured whatever the order of the sections.
  std::string moved = with("storage: {path: /run/shield, size_mib: 64}\n", "");
  moved = with("version: 1\n", "version: 1\nstorage: {path: /data}\n", moved);
  EXPECT_REFUSED(moved, "artifacts[0].path: /run/shield/model.bin is not under storage.path /data");
}

TEST(RuntimeConfig, ArtifactIdentity) {
  EXPECT_REFUSED(with("  - name: vocab\n", "  - name: model\n"), "artifacts[1].name: 'model' is already the name of artifacts[0] (line 24)");
  EXPECT_REFUSED(with("  - name: vocab\n", "  - name: ../x\n"), "artifacts[1].name: expected letters");
  EXPECT_REFUSED(with("  - name: vocab\n", "  - source: host\n    name: v\n"), "duplicate key");
  EXPECT_REFUSED(with("    sha256: " + std::string(64, '0') + "\n", "    sha256: " + std::string(64, 'A') + "\n"),
                 "app.runtime.yaml: artifacts[1].sha256: expected 64 lowercase hex digits (line 28)");
  EXPECT_REFUSED(with("    sha256: " + std::string(64, '0') + "\n", "    sha256: " + std::string(63, '0') + "\n"),
                 "artifacts[1].sha256: expected 64 lowercase hex digits");
  EXPECT_REFUSED(with("    sha256: " + std::string(64, '0') + "\n", "    sha256: " + std::string(63, '0') + "g\n"),
                 "artifacts[1].sha256: expected 64 lowercase hex digits");
  EXPECT_REFUSED(with("    sha256: " + std::string(64, '0') + "\n", ""),
                 "artifacts[1].header_sha256: required key missing (or sha256, the whole file's digest)");
}

TEST(RuntimeConfig, ArtifactTakesExactlyOnePin) {
  const std::string header_pin = "    header_sha256: " + kSha + "\n";
  EXPECT_REFUSED(with(header_pin, header_pin + "    sha256: " + kSha + "\n"),
                 "app.runtime.yaml: artifacts[0].sha256: give header_sha256 or sha256, not both (header_sha256 is enough) (line 24)");
  EXPECT_REFUSED(with(header_pin, ""), "artifacts[0].header_sha256: required key missing");
  EXPECT_REFUSED(with(header_pin, "    header_sha256: " + std::string(64, 'A') + "\n"),
                 "artifacts[0].header_sha256: expected 64 lowercase hex digits (line 23)");
  EXPECT_REFUSED(with(header_pin, "    header_sha256: " + std::string(65, 'a') + "\n"),
                 "artifacts[0].header_sha256: expected 64 lowercase hex digits");
  EXPECT_REFUSED(with(header_pin, "    header_sha256: [" + kSha + "]\n"), "artifacts[0].header_sha256: expected a string");
  EXPECT_REFUSED(with(header_pin, "    header_sha256: ~\n"), "artifacts[0].header_sha256: expected a string");
  // Either pin alone is accepted.
  auto c = parse_runtime_config(with(header_pin, "    sha256: " + kSha + "\n"));
  EXPECT_EQ(c.artifacts[0].sha256, kSha);
  EXPECT_TRUE(c.artifacts[0].header_sha256.empty());
  EXPECT_REFUSED(with("    key_id: alias/vocab\n", ""), "artifacts[1].key_id: required key missing");
  EXPECT_REFUSED(with("    key_id: alias/vocab\n", "    key_id: \"alias vocab\"\n"), "artifacts[1].key_id: expected a KMS key id");
  EXPECT_REFUSED(with("    encryption_context: {purpose: model}\n", "    encryption_context: [purpose]\n"),
                 "artifacts[0].encryption_context: expected a mapping");
  EXPECT_REFUSED(with("    source: host\n", ""), "artifacts[0].source: required key missing (line 18)");
}

TEST(RuntimeConfig, KmsSettings) {
  EXPECT_REFUSED(with("  region: eu-west-1\n", ""), "kms.region: required when artifacts or kms.api_port are configured");
  EXPECT_NO_THROW(parse_runtime_config("version: 1\nkms: {proxy_port: 8000}\n"));  // no KMS use, no region needed
  EXPECT_REFUSED("version: 1\nkms: {api_port: 9000}\n", "kms.region: required");
  EXPECT_REFUSED(with("  region: eu-west-1\n", "  region: EU_WEST\n"), "kms.region: expected an AWS region");
  EXPECT_REFUSED(with("  endpoint: https://kms.example.test:4443\n", "  endpoint: http://kms.example.test\n"),
                 "kms.endpoint: expected an https:// URL (TLS ends inside the enclave)");
  EXPECT_REFUSED(with("  endpoint: https://kms.example.test:4443\n", "  endpoint: https://\n"), "kms.endpoint: expected https://HOST");
  EXPECT_REFUSED(with("  endpoint: https://kms.example.test:4443\n", "  endpoint: \"https://a b\"\n"), "kms.endpoint: expected https://HOST");
}

TEST(RuntimeConfig, EgressRules) {
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"api.example.com\""),
                 "egress.allow[0]: expected HOST:PORT (the port is required), got 'api.example.com' (line 31)");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"api.example.com:\""), "egress.allow[0]: port must be 1-65535");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"api.example.com:0\""), "egress.allow[0]: port must be 1-65535");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"api.example.com:65536\""), "egress.allow[0]: port must be 1-65535");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"*:443\""), "egress.allow[0]: expected an exact DNS name or *.SUFFIX");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"api.*.com:443\""), "expected an exact DNS name or *.SUFFIX");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"**.example.com:443\""), "expected an exact DNS name or *.SUFFIX");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"-a.example.com:443\""), "expected an exact DNS name");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"a..com:443\""), "expected an exact DNS name");
  EXPECT_REFUSED(with("\"api.example.com:443\"", "\"http://a.com:443\""), "expected an exact DNS name");
  EXPECT_REFUSED(with("\"*.s3.amazonaws.com:443\"", "\"API.example.com:443\""), "egress.allow[1]: duplicates egress.allow[0]");
  EXPECT_REFUSED(with("  proxy_port: 3128\n", ""), "egress.allow: rules need egress.proxy_port (0 means no egress)");
  RuntimeConfig c = parse_runtime_config(with("\"api.example.com:443\"", "\"API.Example.COM:443\""));
  EXPECT_EQ(c.egress.allow[0].host, "api.example.com");  // stored lowercase
}

TEST(RuntimeConfig, LoadNamesTheFile) {
  test_support::TempDir dir;
  std::string path = dir / "app.runtime.yaml";
  write_file_atomic(path, as_bytes(with("    header_sha256: " + kSha + "\n", "    header_sha256: zz\n")));
  auto e = thrown<Error>([&] { load_runtime_config(path); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::kFormat);
  EXPECT_EQ(std::string(e->what()), path + ": artifacts[0].header_sha256: expected 64 lowercase hex digits (line 23)");
  write_file_atomic(path, as_bytes(kFull));
  EXPECT_EQ(load_runtime_config(path).artifacts.size(), 2u);
  EXPECT_EQ(test_support::code_of([&] { load_runtime_config(dir / "missing.yaml"); }), Errc::kIo);
  // An endless file is refused after 1 MiB, not read whole.
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "/dev/zero: 1048577 bytes, more than the 1048576 allowed",
                      test_support::message_of([] { load_runtime_config("/dev/zero"); }));
}

TEST(RuntimeConfig, RefusesOversizedInput) {
  std::string big = "version: 1\n#" + std::string(1 << 20, 'x') + "\n";
  EXPECT_REFUSED(big, "more than the 1048576 allowed");
}

}  // namespace
}  // namespace shield_nitro::runtime
