#include "shield_nitro/runtime/host_config.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/net/endpoint.h"
#include "yaml_check.h"

namespace shield_nitro::runtime {
namespace {

using detail::Doc;
using detail::Map;
using detail::index;
using detail::nonempty;

constexpr uint64_t kMaxVsock = 0xFFFFFFFEu;

std::string resolve(const std::string& base_dir, const std::string& p) {
  std::filesystem::path path(p);
  if (path.is_relative()) path = std::filesystem::path(base_dir) / path;
  return path.lexically_normal().string();
}

// A "tcp://HOST:PORT" endpoint with a real port, in canonical form.
std::string tcp_endpoint(const Doc& doc, const YAML::Node& node, const std::string& path) {
  std::string s = nonempty(doc, node, path);
  net::Endpoint ep;
  try {
    ep = net::Endpoint::parse(s);
  } catch (const Error& e) {
    doc.fail(path, node, e.what());
  }
  if (ep.kind != net::Endpoint::Kind::kTcp || ep.port == 0)
    doc.fail(path, node, "expected tcp://HOST:PORT with a port 1-65535, got '" + s + "'");
  return ep.to_string();
}

// "file:PATH" → the resolved path; anything else → nullopt.
std::optional<std::string> file_value(const std::string& base_dir, const Doc& doc, const YAML::Node& node,
                                      const std::string& path, const std::string& value) {
  if (!value.starts_with("file:")) return std::nullopt;
  if (value.size() == 5) doc.fail(path, node, "file: needs a path");
  return "file:" + resolve(base_dir, value.substr(5));
}

bool uses_kms(const RuntimeConfig& rc) { return !rc.artifacts.empty() || rc.kms.api_port != 0; }

HostEnclave parse_enclave(const Doc& doc, const YAML::Node& node, const std::string& path, const std::string& base_dir) {
  Map m(doc, node, path, {"name", "cid", "runtime", "artifacts", "ingress", "logs"});
  HostEnclave e;
  YAML::Node n = m.need("name");
  e.name = nonempty(doc, n, m.path("name"));
  if (!detail::is_simple_name(e.name))
    doc.fail(m.path("name"), n, "expected letters, digits, '.', '_', '-' (at most 64, starting alphanumeric)");
  // CIDs 0-3 are the hypervisor, loopback, host and parent; enclaves get 4 and above.
  if (auto v = m.get("cid")) e.cid = detail::integer(doc, *v, m.path("cid"), 4, kMaxVsock);

  YAML::Node r = m.need("runtime");
  e.runtime_path = resolve(base_dir, nonempty(doc, r, m.path("runtime")));
  try {
    e.runtime = load_runtime_config(e.runtime_path);
  } catch (const Error& err) {
    if (err.code() == Errc::kFormat) throw;  // already names the runtime file and key
    throw Error(err.code(), detail::join(path, "runtime") + ": " + err.what());
  }

  if (auto v = m.get("artifacts")) {
    for (const auto& entry : detail::string_map(doc, *v, m.path("artifacts"))) {
      const std::string& name = entry.first;  // not a structured binding: clang 14 cannot capture those
      const std::string& file = entry.second;
      auto it = std::find_if(e.runtime.artifacts.begin(), e.runtime.artifacts.end(),
                             [&](const ArtifactConfig& a) { return a.name == name; });
      std::string key = detail::join(m.path("artifacts"), name);
      if (it == e.runtime.artifacts.end())
        doc.fail(key, *v, "the runtime config " + e.runtime_path + " has no artifact '" + name + "'");
      if (!it->from_host())
        doc.fail(key, *v, "artifact '" + name + "' comes from " + it->source + " in the image, not from the host");
      if (file.empty()) doc.fail(key, *v, "must not be empty");
      e.artifacts[name] = resolve(base_dir, file);
    }
  }
  for (const auto& a : e.runtime.artifacts)
    if (a.from_host() && !e.artifacts.count(a.name))
      doc.fail(m.path("artifacts"), node,
               "no file for artifact '" + a.name + "' (source: host in " + e.runtime_path + ")");

  if (auto v = m.get("ingress")) {
    std::vector<YAML::Node> items = detail::sequence(doc, *v, m.path("ingress"));
    for (size_t i = 0; i < items.size(); ++i) {
      std::string ip = index(m.path("ingress"), i);
      Map im(doc, items[i], ip, {"listen", "vsock_port"});
      HostIngress in;
      in.listen = tcp_endpoint(doc, im.need("listen"), im.path("listen"));
      YAML::Node vp = im.need("vsock_port");
      in.vsock_port = detail::integer(doc, vp, im.path("vsock_port"), 1, kMaxVsock);
      bool known = std::any_of(e.runtime.ingress.begin(), e.runtime.ingress.end(),
                               [&](const IngressConfig& c) { return c.vsock_port == in.vsock_port; });
      if (!known)
        doc.fail(im.path("vsock_port"), vp,
                 std::to_string(in.vsock_port) + " is not an ingress vsock_port of " + e.runtime_path);
      e.ingress.push_back(in);
    }
  }

  if (auto v = m.get("logs")) {
    std::string logs = nonempty(doc, *v, m.path("logs"));
    if (auto f = file_value(base_dir, doc, *v, m.path("logs"), logs)) e.logs = *f;
    else if (logs == "stdout") e.logs = logs;
    else doc.fail(m.path("logs"), *v, "expected stdout or file:PATH, got '" + logs + "'");
  }
  return e;
}

}  // namespace

HostConfig parse_host_config(std::string_view yaml, const std::string& base_dir_in, std::string_view source) {
  Doc doc(source);
  YAML::Node root = doc.load(yaml);
  Map top(doc, root, "", {"enclaves", "kms", "credentials", "metrics"});
  std::string base_dir = std::filesystem::absolute(base_dir_in.empty() ? "." : base_dir_in).lexically_normal().string();
  HostConfig c;

  YAML::Node list = top.need("enclaves");
  std::vector<YAML::Node> items = detail::sequence(doc, list, "enclaves");
  if (items.empty()) doc.fail("enclaves", list, "at least one enclave is needed");
  std::map<std::string, std::string> listeners;  // canonical endpoint → key path of its first use
  for (size_t i = 0; i < items.size(); ++i) {
    std::string path = index("enclaves", i);
    HostEnclave e = parse_enclave(doc, items[i], path, base_dir);
    for (size_t j = 0; j < c.enclaves.size(); ++j) {
      if (c.enclaves[j].name == e.name)
        doc.fail(path + ".name", items[i], "'" + e.name + "' is already the name of " + index("enclaves", j));
      if (c.enclaves[j].cid == e.cid)
        doc.fail(path + ".cid", items[i], std::to_string(e.cid) + " is already the cid of " + index("enclaves", j));
    }
    for (size_t k = 0; k < e.ingress.size(); ++k) {
      std::string key = index(path + ".ingress", k) + ".listen";
      auto [it, fresh] = listeners.emplace(e.ingress[k].listen, key);
      if (!fresh) doc.fail(key, items[i], e.ingress[k].listen + " is already used by " + it->second);
    }
    c.enclaves.push_back(std::move(e));
  }

  if (auto v = top.get("kms")) {
    Map m(doc, *v, "kms", {"target"});
    YAML::Node t = m.need("target");
    std::string target = nonempty(doc, t, "kms.target");
    try {
      net::Endpoint ep = net::Endpoint::parse("tcp://" + target);
      if (ep.port == 0) throw Error(Errc::kUsage, "port 0");
    } catch (const Error&) {
      doc.fail("kms.target", t, "expected HOST:PORT, got '" + target + "'");
    }
    c.kms_target = target;
  }
  for (size_t i = 0; i < c.enclaves.size(); ++i)
    if (uses_kms(c.enclaves[i].runtime) && c.kms_target.empty())
      doc.fail("kms.target", root, "required: " + index("enclaves", i) + " uses KMS (artifacts or kms.api_port)");

  if (auto v = top.get("credentials")) {
    std::string cred = nonempty(doc, *v, "credentials");
    if (auto f = file_value(base_dir, doc, *v, "credentials", cred)) c.credentials = *f;
    else if (cred == "environment" || cred == "imds") c.credentials = cred;
    else doc.fail("credentials", *v, "expected environment, imds or file:PATH, got '" + cred + "'");
  }
  if (auto v = top.get("metrics")) {
    c.metrics = tcp_endpoint(doc, *v, "metrics");
    if (listeners.count(c.metrics)) doc.fail("metrics", *v, c.metrics + " is already used by " + listeners[c.metrics]);
  }
  return c;
}

HostConfig load_host_config(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  return parse_host_config(detail::read_config_file(path), dir.empty() ? "." : dir.string(), path);
}

}  // namespace shield_nitro::runtime
