// The host agent's config (`shield-nitro host run --config host.yaml`): what the parent instance
// does for one or more supervised enclaves. Not measured (the parent is not trusted); what it must
// honour (ports, allowlists, artifact digests) comes from each enclave's runtime config, which it
// reads too, and the enclave enforces it again on its side.
//
//   enclaves:
//     - name: app
//       cid: 16                          # the enclave's CID (nitro-cli run-enclave --enclave-cid)
//       runtime: app.runtime.yaml        # that enclave's runtime config (relative to this file)
//       artifacts: {model: /srv/model.sealed}   # sealed files served for `source: host` artifacts
//       ingress:
//         - {listen: "tcp://0.0.0.0:8080", vsock_port: 5000}
//       logs: stdout                     # stdout | file:/var/log/app.jsonl
//   kms:
//     target: kms.us-east-1.amazonaws.com:443   # what the KMS proxy relays to (allowlisted)
//   credentials: environment             # environment | imds | file:PATH (AWS shared-credentials file)
//   metrics: "tcp://127.0.0.1:9090"      # /healthz and Prometheus /metrics; absent = off
//
// Strict like the runtime config: unknown keys, a listen endpoint used twice, an artifact that the
// runtime config does not name → Error(kFormat) naming the key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "shield_nitro/runtime/config.h"

namespace shield_nitro::runtime {

struct HostIngress {
  std::string listen;        // a net::Endpoint string (tcp://HOST:PORT)
  uint32_t vsock_port = 0;   // one of the runtime config's ingress vsock ports
};

struct HostEnclave {
  std::string name;
  uint32_t cid = 16;
  std::string runtime_path;  // absolute after loading
  RuntimeConfig runtime;     // parsed from runtime_path
  std::map<std::string, std::string> artifacts;  // artifact name → sealed file path (absolute)
  std::vector<HostIngress> ingress;
  std::string logs = "stdout";                   // "stdout" or "file:PATH"
};

struct HostConfig {
  std::vector<HostEnclave> enclaves;
  std::string kms_target;    // "HOST:PORT"; empty when no enclave uses KMS
  std::string credentials = "environment";
  std::string metrics;       // a net::Endpoint string, or empty
};

// Parses and validates; relative paths are resolved against base_dir (the file's folder).
// Loads each enclave's runtime config. Throws Error(kFormat) or Error(kIo).
HostConfig parse_host_config(std::string_view yaml, const std::string& base_dir,
                             std::string_view source = "host config");
HostConfig load_host_config(const std::string& path);

}  // namespace shield_nitro::runtime
