// The runtime config: what the supervisor (`shield-nitro-enclave run`) does inside the enclave,
// and what the host agent (`shield-nitro host run`) relays for it. One YAML file, packed into the
// EIF by `eif build --runtime FILE` and therefore measured (it changes PCR2): the allowlists, ports,
// the app's user and the list of artifacts (each pinned by key id, encryption context and the
// sealed file's digest) are part of what a KMS key policy pins. docs/runtime.md documents every key.
//
//   version: 1
//   app:
//     user: "1000:1000"             # uid[:gid] (numbers; names are resolved by the supervisor)
//     workdir: /app
//     env: {MODEL_PATH: /run/shield/model.bin}
//     restart: on-failure           # never | on-failure
//     max_restarts: 5
//     restart_backoff_ms: 500       # doubled after each failure, at most 30 s
//   host: {cid: 3, port: 7000}      # the host agent's vsock control port (credentials, artifacts, logs, egress)
//   kms:
//     region: us-east-1
//     endpoint: https://kms.us-east-1.amazonaws.com   # optional; default from the region
//     proxy_port: 8000              # vsock port on the parent of the KMS proxy (vsock-proxy shape)
//     ca_file: /etc/kms-ca.pem      # optional: a private CA in the image (kms-local in development)
//     api_port: 9100                # 127.0.0.1 port of the attested KMS endpoint for the app; 0 = none
//   storage: {path: /run/shield, size_mib: 256}     # the tmpfs holding decrypted artifacts
//   artifacts:
//     - name: model
//       source: host                # "host" (streamed from the host agent) or an absolute path in the image
//       path: /run/shield/model.bin # where the plaintext appears, under storage.path
//       key_id: arn:aws:kms:us-east-1:111122223333:key/...
//       encryption_context: {purpose: model}
//       header_sha256: <64 hex>     # the sealed file's headers' digest (`shield-nitro seal` prints it); or
//                                   # sha256: <64 hex>, the whole sealed file's (costs a hash pass)
//   egress:
//     proxy_port: 3128              # 127.0.0.1 inside the enclave; the app gets HTTP(S)_PROXY
//     allow: ["api.example.com:443", "*.s3.amazonaws.com:443"]
//   ingress:
//     - {vsock_port: 5000, app_port: 8080, mode: passthrough}
//     - {vsock_port: 5443, app_port: 8443, mode: attested-tls, key: p256, rotate_hours: 24, user_data: "cafe"}
//   logs: {buffer_kib: 1024}
//
// Validation is strict, at build and at start: unknown keys, wrong types, ports out of range or
// reused, relative paths, artifact paths outside storage.path or used twice, duplicate names, a
// malformed digest, both or neither of header_sha256 / sha256 → Error(kFormat) naming the key
// ("runtime config: artifacts[1].sha256: ...").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shield_nitro::runtime {

enum class RestartPolicy { kNever, kOnFailure };

struct AppConfig {
  uint32_t uid = 65534;  // nobody, unless the config says otherwise
  uint32_t gid = 65534;
  std::string user;      // as written ("1000:1000" or a name); uid/gid after resolution
  std::string workdir = "/";
  std::map<std::string, std::string> env;
  RestartPolicy restart = RestartPolicy::kNever;
  uint32_t max_restarts = 5;
  uint32_t restart_backoff_ms = 500;
};

struct HostLinkConfig {
  uint32_t cid = 3;      // the parent
  uint32_t port = 7000;  // the host agent's control port (docs/runtime.md, "host link")
};

struct KmsConfig {
  std::string region;             // required when any artifact or api_port is configured
  std::string endpoint;           // empty: https://kms.<region>.amazonaws.com
  uint32_t proxy_port = 8000;     // vsock port of the parent's KMS proxy
  std::string ca_file;            // empty: the system's trust store
  uint16_t api_port = 0;          // 0: no KMS endpoint for the app
};

struct StorageConfig {
  std::string path = "/run/shield";
  uint64_t size_mib = 256;
};

struct ArtifactConfig {
  std::string name;
  std::string source;             // "host" or an absolute path inside the image
  std::string path;               // absolute, under storage.path
  std::string key_id;
  std::map<std::string, std::string> encryption_context;
  // Exactly one of the two pins is set (lowercase hex); the other is empty.
  // header_sha256: SHA-256 of the file's prefix before its first record, the sealed header and
  //   the stream header (sealed::Header::prefix_digest_hex). As strong as a whole-file pin: the
  //   stream key is derived from the data key, the sealed header's digest and the stream
  //   header's random salt, and every record (and the end) is authenticated under it with the
  //   stream header as AAD, so no other body opens behind a pinned prefix without the data key
  //   itself, even another file sealed under the same data key. Checked before the key is asked
  //   for; costs nothing per byte.
  // sha256: SHA-256 of the whole sealed file: the exact bytes, at one more hash pass per load.
  std::string header_sha256;
  std::string sha256;
  // Whether the sealed file is streamed from the host agent (else read from `source` in the image).
  bool from_host() const { return source == "host"; }
};

struct EgressRule {
  std::string host;               // exact name, or "*.suffix" for any name below suffix
  uint16_t port = 0;
  // The port must be equal; the name is compared case-insensitively, one final dot ignored.
  // "*.example.com" matches any name below example.com, never example.com itself; a host that
  // is not a well-formed DNS name matches nothing.
  bool matches(std::string_view host, uint16_t port) const;
};

struct EgressConfig {
  uint16_t proxy_port = 0;        // 0: no egress at all
  std::vector<EgressRule> allow;
  // Whether one rule matches; always false when proxy_port is 0 (egress off).
  bool allows(std::string_view host, uint16_t port) const;
};

enum class IngressMode {
  kPassthrough,  // bytes forwarded as they are
  kAttestedTls,  // TLS ends in the supervisor, its key bound into attestation documents (relay/attested_tls.h)
};
enum class TlsKeyType { kP256, kP384 };

struct IngressConfig {
  uint32_t vsock_port = 0;
  uint16_t app_port = 0;
  IngressMode mode = IngressMode::kPassthrough;
  // attested-tls only (refused with passthrough):
  TlsKeyType key = TlsKeyType::kP256;
  uint32_t rotate_hours = 24;          // a new key and certificate this often (1-168)
  std::vector<uint8_t> user_data;      // the app's part of the documents' user_data (0-472 bytes; hex in YAML)
};

struct LogsConfig {
  uint32_t buffer_kib = 1024;
};

struct RuntimeConfig {
  AppConfig app;
  HostLinkConfig host;
  KmsConfig kms;
  StorageConfig storage;
  std::vector<ArtifactConfig> artifacts;
  EgressConfig egress;
  std::vector<IngressConfig> ingress;
  LogsConfig logs;
};

// Parses and validates (see above). `source` names the file in messages. Throws Error(kFormat).
RuntimeConfig parse_runtime_config(std::string_view yaml, std::string_view source = "runtime config");
// Reads the file (Error(kIo) if it cannot), then parse_runtime_config.
RuntimeConfig load_runtime_config(const std::string& path);

}  // namespace shield_nitro::runtime
