#include "shield_nitro/runtime/config.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "yaml_check.h"

namespace shield_nitro::runtime {
namespace {

using detail::Doc;
using detail::Map;
using detail::abs_path;
using detail::index;
using detail::integer;
using detail::is_below;
using detail::nonempty;
using detail::sequence;
using detail::string_map;
using detail::text;

constexpr uint64_t kMaxVsock = 0xFFFFFFFEu;  // 0xFFFFFFFF is VMADDR_PORT_ANY / VMADDR_CID_ANY
constexpr uint64_t kMaxId = 0xFFFFFFFEu;     // (uid_t)-1 means "unchanged" to setresuid

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Lowercase hex of whole bytes (the form measurements and pins are written in).
bool is_lower_hex(std::string_view s) {
  return s.size() % 2 == 0 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// POSIX portable user/group names: [a-z_][a-z0-9_-]*, at most 32.
bool is_account_name(std::string_view s) {
  if (s.empty() || s.size() > 32 || !(std::islower(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

bool is_env_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// A DNS name in lowercase: labels of [a-z0-9_-], 1-63 bytes, not starting or ending with '-'.
bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t end = s.find('.', start);
    std::string_view label = s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
        return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A host name as a client gave it, in the form the rules are written in (lowercase, no final
// dot); empty when it is not a DNS name, so it matches nothing.
std::string canonical_host(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  std::string h = lower(host);
  return is_dns_name(h) ? h : std::string();
}

// Ports are claimed once per namespace: TCP on the enclave's loopback, and vsock.
class Ports {
 public:
  explicit Ports(const Doc& doc) : doc_(doc) {}
  void claim(bool vsock, uint64_t port, const std::string& path, const YAML::Node& at) {
    auto& used = vsock ? vsock_ : tcp_;
    auto [it, fresh] = used.emplace(port, path);
    if (!fresh)
      doc_.fail_at(path, doc_.mark_of(path).value_or(at.Mark()),
                   (vsock ? "vsock port " : "port ") + std::to_string(port) + " is already used by " + it->second);
  }

 private:
  const Doc& doc_;
  std::map<uint64_t, std::string> tcp_, vsock_;
};

void parse_user(const Doc& doc, const YAML::Node& node, AppConfig& app) {
  const std::string path = "app.user";
  std::string s = nonempty(doc, node, path);
  size_t colon = s.find(':');
  std::string_view u = std::string_view(s).substr(0, colon);
  std::string_view g = colon == std::string::npos ? std::string_view() : std::string_view(s).substr(colon + 1);
  auto id = [&](std::string_view part) -> std::optional<uint32_t> {
    if (is_digits(part)) {
      if (part.size() > 10 || std::stoull(std::string(part)) > kMaxId)
        doc.fail(path, node, "id " + std::string(part) + " out of range 0-" + std::to_string(kMaxId));
      return static_cast<uint32_t>(std::stoull(std::string(part)));
    }
    if (!is_account_name(part))
      doc.fail(path, node, "expected uid[:gid] (numbers) or user[:group] (names like 'app'), got '" + s + "'");
    return std::nullopt;
  };
  auto uid = id(u);
  std::optional<uint32_t> gid;
  if (colon != std::string::npos) gid = id(g);
  app.user = s;
  // Names are resolved in the image by the supervisor; numbers are final here. A lone uid
  // takes the group of the same number (like `docker run --user 1000`).
  if (uid) app.uid = *uid;
  if (gid) app.gid = *gid;
  else if (uid && colon == std::string::npos) app.gid = *uid;
}

void parse_app(const Doc& doc, const YAML::Node& node, AppConfig& app) {
  Map m(doc, node, "app", {"user", "workdir", "env", "restart", "max_restarts", "restart_backoff_ms"});
  if (auto v = m.get("user")) parse_user(doc, *v, app);
  if (auto v = m.get("workdir")) app.workdir = abs_path(doc, *v, m.path("workdir"));
  if (auto v = m.get("env")) {
    app.env = string_map(doc, *v, m.path("env"));
    for (const auto& [name, _] : app.env)
      if (!is_env_name(name))
        doc.fail(m.path("env"), *v, "'" + name + "' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
  }
  if (auto v = m.get("restart")) {
    std::string r = text(doc, *v, m.path("restart"));
    if (r == "never") app.restart = RestartPolicy::kNever;
    else if (r == "on-failure") app.restart = RestartPolicy::kOnFailure;
    else doc.fail(m.path("restart"), *v, "expected never or on-failure, got '" + r + "'");
  }
  if (auto v = m.get("max_restarts")) app.max_restarts = integer(doc, *v, m.path("max_restarts"), 0, 1000000);
  if (auto v = m.get("restart_backoff_ms"))
    app.restart_backoff_ms = integer(doc, *v, m.path("restart_backoff_ms"), 0, 30000);
}

void parse_host(const Doc& doc, const YAML::Node& node, HostLinkConfig& host) {
  Map m(doc, node, "host", {"cid", "port"});
  if (auto v = m.get("cid")) host.cid = integer(doc, *v, m.path("cid"), 2, kMaxVsock);
  if (auto v = m.get("port")) host.port = integer(doc, *v, m.path("port"), 1, kMaxVsock);
}

void parse_kms(const Doc& doc, const YAML::Node& node, KmsConfig& kms) {
  Map m(doc, node, "kms", {"region", "endpoint", "proxy_port", "ca_file", "api_port"});
  if (auto v = m.get("region")) {
    kms.region = nonempty(doc, *v, m.path("region"));
    bool ok = kms.region.size() <= 32 && std::all_of(kms.region.begin(), kms.region.end(), [](char c) {
      return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-';
    });
    if (!ok) doc.fail(m.path("region"), *v, "expected an AWS region like us-east-1, got '" + kms.region + "'");
  }
  if (auto v = m.get("endpoint")) {
    kms.endpoint = nonempty(doc, *v, m.path("endpoint"));
    // TLS ends inside the enclave: a plain-HTTP endpoint would hand the parent every KMS answer.
    std::string_view rest = kms.endpoint;
    if (!rest.starts_with("https://"))
      doc.fail(m.path("endpoint"), *v, "expected an https:// URL (TLS ends inside the enclave)");
    rest.remove_prefix(8);
    bool ok = !rest.empty() && rest.front() != '/' &&
              std::none_of(rest.begin(), rest.end(), [](char c) { return c <= ' ' || c >= 0x7f; });
    if (!ok) doc.fail(m.path("endpoint"), *v, "expected https://HOST[:PORT][/PATH]");
  }
  if (auto v = m.get("proxy_port")) kms.proxy_port = integer(doc, *v, m.path("proxy_port"), 1, kMaxVsock);
  if (auto v = m.get("ca_file")) kms.ca_file = abs_path(doc, *v, m.path("ca_file"));
  if (auto v = m.get("api_port")) kms.api_port = integer(doc, *v, m.path("api_port"), 0, 65535);
}

void parse_storage(const Doc& doc, const YAML::Node& node, StorageConfig& storage) {
  Map m(doc, node, "storage", {"path", "size_mib"});
  if (auto v = m.get("path")) {
    storage.path = abs_path(doc, *v, m.path("path"));
    if (storage.path == "/") doc.fail(m.path("path"), *v, "the memory filesystem cannot be mounted on /");
  }
  if (auto v = m.get("size_mib")) storage.size_mib = integer(doc, *v, m.path("size_mib"), 1, 1u << 20);
}

void parse_artifacts(const Doc& doc, const YAML::Node& node, const StorageConfig& storage,
                     std::vector<ArtifactConfig>& out) {
  std::vector<YAML::Node> items = sequence(doc, node, "artifacts");
  for (size_t i = 0; i < items.size(); ++i) {
    Map m(doc, items[i], index("artifacts", i), {"name", "source", "path", "key_id", "encryption_context", "header_sha256", "sha256"});
    ArtifactConfig a;
    YAML::Node n = m.need("name");
    a.name = nonempty(doc, n, m.path("name"));
    if (!detail::is_simple_name(a.name))
      doc.fail(m.path("name"), n, "expected letters, digits, '.', '_', '-' (at most 64, starting alphanumeric)");
    for (size_t j = 0; j < out.size(); ++j)
      if (out[j].name == a.name) doc.fail(m.path("name"), n, "'" + a.name + "' is already the name of " + index("artifacts", j));

    YAML::Node s = m.need("source");
    a.source = nonempty(doc, s, m.path("source"));
    if (!a.from_host()) {
      if (a.source[0] != '/') doc.fail(m.path("source"), s, "expected host or an absolute path in the image");
      a.source = abs_path(doc, s, m.path("source"));
      if (a.source == storage.path || is_below(a.source, storage.path))
        doc.fail(m.path("source"), s, "is under storage.path " + storage.path + ", which the memory filesystem hides");
    }

    YAML::Node p = m.need("path");
    a.path = abs_path(doc, p, m.path("path"));
    if (!is_below(a.path, storage.path))
      doc.fail(m.path("path"), p, a.path + " is not under storage.path " + storage.path);
    for (size_t j = 0; j < out.size(); ++j) {
      const std::string& other = out[j].path;
      if (other == a.path) doc.fail(m.path("path"), p, a.path + " is already the path of " + index("artifacts", j));
      if (is_below(a.path, other) || is_below(other, a.path))
        doc.fail(m.path("path"), p, a.path + " and " + index("artifacts", j) + ".path " + other + " are nested");
    }

    YAML::Node k = m.need("key_id");
    a.key_id = nonempty(doc, k, m.path("key_id"));
    bool key_ok = a.key_id.size() <= 2048 && std::all_of(a.key_id.begin(), a.key_id.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '/' || c == '_' || c == '-' || c == '.';
    });
    if (!key_ok) doc.fail(m.path("key_id"), k, "expected a KMS key id, ARN or alias");

    if (auto v = m.get("encryption_context")) a.encryption_context = string_map(doc, *v, m.path("encryption_context"));

    // Exactly one pin: the sealed header's digest (O(header); the stream key binds it) or the
    // whole file's (one more SHA-256 pass over every byte when it is loaded).
    auto pin = [&](std::string_view key, std::string& out) {
      auto v = m.get(key);
      if (!v) return false;
      out = text(doc, *v, m.path(key));
      if (out.size() != 64 || !is_lower_hex(out)) doc.fail(m.path(key), *v, "expected 64 lowercase hex digits");
      return true;
    };
    bool header_pin = pin("header_sha256", a.header_sha256);
    bool file_pin = pin("sha256", a.sha256);
    if (header_pin && file_pin)
      doc.fail(m.path("sha256"), *m.get("sha256"), "give header_sha256 or sha256, not both (header_sha256 is enough)");
    if (!header_pin && !file_pin)
      doc.fail(m.path("header_sha256"), m.node(),
               "required key missing (or sha256, the whole file's digest): `shield-nitro seal` prints both");
    out.push_back(std::move(a));
  }
}

EgressRule parse_rule(const Doc& doc, const YAML::Node& node, const std::string& path) {
  std::string s = nonempty(doc, node, path);
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) doc.fail(path, node, "expected HOST:PORT (the port is required), got '" + s + "'");
  std::string port = s.substr(colon + 1);
  if (!is_digits(port) || port.size() > 5 || port[0] == '0' || std::stoul(port) > 65535)
    doc.fail(path, node, "port must be 1-65535, got '" + port + "'");
  EgressRule rule;
  rule.port = static_cast<uint16_t>(std::stoul(port));
  rule.host = lower(s.substr(0, colon));
  std::string_view name = rule.host;
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (!is_dns_name(name))
    doc.fail(path, node, "expected an exact DNS name or *.SUFFIX, got '" + s.substr(0, colon) + "'");
  return rule;
}

void parse_egress(const Doc& doc, const YAML::Node& node, EgressConfig& egress) {
  Map m(doc, node, "egress", {"proxy_port", "allow"});
  if (auto v = m.get("proxy_port")) egress.proxy_port = integer(doc, *v, m.path("proxy_port"), 0, 65535);
  if (auto v = m.get("allow")) {
    std::vector<YAML::Node> items = sequence(doc, *v, m.path("allow"));
    for (size_t i = 0; i < items.size(); ++i) {
      std::string path = index(m.path("allow"), i);
      EgressRule rule = parse_rule(doc, items[i], path);
      for (size_t j = 0; j < egress.allow.size(); ++j)
        if (egress.allow[j].host == rule.host && egress.allow[j].port == rule.port)
          doc.fail(path, items[i], "duplicates " + index(m.path("allow"), j));
      egress.allow.push_back(rule);
    }
    if (!egress.allow.empty() && egress.proxy_port == 0)
      doc.fail(m.path("allow"), *v, "rules need egress.proxy_port (0 means no egress)");
  }
}

void parse_ingress(const Doc& doc, const YAML::Node& node, std::vector<IngressConfig>& out) {
  std::vector<YAML::Node> items = sequence(doc, node, "ingress");
  for (size_t i = 0; i < items.size(); ++i) {
    Map m(doc, items[i], index("ingress", i), {"vsock_port", "app_port", "mode", "key", "rotate_hours", "user_data"});
    IngressConfig in;
    in.vsock_port = integer(doc, m.need("vsock_port"), m.path("vsock_port"), 1, kMaxVsock);
    in.app_port = integer(doc, m.need("app_port"), m.path("app_port"), 1, 65535);
    if (auto v = m.get("mode")) {
      std::string mode = text(doc, *v, m.path("mode"));
      if (mode == "attested-tls") in.mode = IngressMode::kAttestedTls;
      else if (mode != "passthrough") doc.fail(m.path("mode"), *v, "expected passthrough or attested-tls, got '" + mode + "'");
    }
    // The TLS keys mean nothing to passthrough: refused rather than silently ignored.
    for (const char* key : {"key", "rotate_hours", "user_data"})
      if (auto v = m.get(key); v && in.mode != IngressMode::kAttestedTls)
        doc.fail(m.path(key), *v, "only with mode: attested-tls");
    if (auto v = m.get("key")) {
      std::string k = text(doc, *v, m.path("key"));
      if (k == "p256") in.key = TlsKeyType::kP256;
      else if (k == "p384") in.key = TlsKeyType::kP384;
      else doc.fail(m.path("key"), *v, "expected p256 or p384, got '" + k + "'");
    }
    if (auto v = m.get("rotate_hours")) in.rotate_hours = integer(doc, *v, m.path("rotate_hours"), 1, 168);
    if (auto v = m.get("user_data")) {
      // 512 bytes of NSM user_data, less "sn-tls/1" and the SPKI hash (docs/attested-tls contract).
      std::string h = text(doc, *v, m.path("user_data"));
      if (h.size() > 2 * 472 || !is_lower_hex(h)) doc.fail(m.path("user_data"), *v, "expected lowercase hex of 0-472 bytes");
      in.user_data = hex_decode(h);
    }
    out.push_back(in);
  }
}

}  // namespace

bool EgressRule::matches(std::string_view candidate, uint16_t candidate_port) const {
  if (candidate_port != port || port == 0) return false;
  std::string h = canonical_host(candidate);
  if (h.empty()) return false;
  if (host.starts_with("*.")) {
    std::string_view suffix = std::string_view(host).substr(1);  // ".example.com"
    return h.size() > suffix.size() && std::string_view(h).ends_with(suffix);
  }
  return h == host;
}

bool EgressConfig::allows(std::string_view host, uint16_t port) const {
  if (proxy_port == 0) return false;
  return std::any_of(allow.begin(), allow.end(), [&](const EgressRule& r) { return r.matches(host, port); });
}

RuntimeConfig parse_runtime_config(std::string_view yaml, std::string_view source) {
  Doc doc(source);
  YAML::Node root = doc.load(yaml);
  Map top(doc, root, "", {"version", "app", "host", "kms", "storage", "artifacts", "egress", "ingress", "logs"});
  YAML::Node version = top.need("version");
  if (integer(doc, version, "version", 0, UINT32_MAX) != 1) doc.fail("version", version, "unsupported version (expected 1)");

  RuntimeConfig c;
  // Sections in dependency order, whatever their order in the file.
  if (auto v = top.get("app")) parse_app(doc, *v, c.app);
  if (auto v = top.get("host")) parse_host(doc, *v, c.host);
  if (auto v = top.get("kms")) parse_kms(doc, *v, c.kms);
  if (auto v = top.get("storage")) parse_storage(doc, *v, c.storage);
  if (auto v = top.get("artifacts")) parse_artifacts(doc, *v, c.storage, c.artifacts);
  if (auto v = top.get("egress")) parse_egress(doc, *v, c.egress);
  if (auto v = top.get("ingress")) parse_ingress(doc, *v, c.ingress);
  if (auto v = top.get("logs")) {
    Map m(doc, *v, "logs", {"buffer_kib"});
    if (auto b = m.get("buffer_kib")) c.logs.buffer_kib = integer(doc, *b, m.path("buffer_kib"), 1, 1u << 20);
  }

  bool uses_kms = !c.artifacts.empty() || c.kms.api_port != 0;
  if (uses_kms && c.kms.region.empty())
    doc.fail("kms.region", top.get("kms") ? *top.get("kms") : root, "required when artifacts or kms.api_port are configured");

  // Each port once: TCP on the enclave's loopback (the app's listeners, our endpoints), and
  // vsock (the parent's services, the enclave's ingress listeners).
  Ports ports(doc);
  auto at = [&](const char* section) { return top.get(section) ? *top.get(section) : root; };
  ports.claim(true, c.host.port, "host.port", at("host"));
  if (uses_kms) ports.claim(true, c.kms.proxy_port, "kms.proxy_port", at("kms"));
  if (c.kms.api_port) ports.claim(false, c.kms.api_port, "kms.api_port", at("kms"));
  if (c.egress.proxy_port) ports.claim(false, c.egress.proxy_port, "egress.proxy_port", at("egress"));
  std::vector<YAML::Node> ingress_nodes = top.get("ingress") ? sequence(doc, *top.get("ingress"), "ingress") : std::vector<YAML::Node>{};
  // An app port is a destination, not a listener: several ingresses may lead to it (e.g. one
  // passthrough, one attested-tls), but never to one of our own listeners.
  std::set<uint16_t> app_ports;
  for (size_t i = 0; i < c.ingress.size(); ++i) {
    ports.claim(true, c.ingress[i].vsock_port, index("ingress", i) + ".vsock_port", ingress_nodes[i]);
    if (app_ports.insert(c.ingress[i].app_port).second)
      ports.claim(false, c.ingress[i].app_port, index("ingress", i) + ".app_port", ingress_nodes[i]);
  }
  return c;
}

RuntimeConfig load_runtime_config(const std::string& path) {
  return parse_runtime_config(detail::read_config_file(path), path);
}

}  // namespace shield_nitro::runtime
