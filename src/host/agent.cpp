#include "shield_nitro/host/agent.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/net/acceptor.h"
#include "shield_nitro/net/allowlist.h"
#include "shield_nitro/net/http_server.h"
#include "shield_nitro/net/proxy.h"
#include "shield_nitro/relay/egress.h"
#include "shield_nitro/relay/ingress.h"
#include "shield_nitro/relay/proxy_request.h"
#include "digest.h"

namespace shield_nitro::host {

using host_link::Op;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kAnswerTimeout{std::chrono::seconds(10)};
constexpr int64_t kAnnouncedLifetimeS = 3600;  // for credentials that do not expire

bool uses_kms(const runtime::RuntimeConfig& rc) { return !rc.artifacts.empty() || rc.kms.api_port != 0; }

std::string quote(const std::string& s) { return "'" + s + "'"; }

// Prometheus label value escaping (names are simple, but the rule is cheap).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

// Credentials fetched from the provider and kept until they come within `margin` of expiring (set
// above the enclave's own margin, so its "ask again" finds new ones), then fetched afresh past the
// source's own cache. A brief outage of the source is bridged while the cached ones are valid, and
// the source is asked at most once a minute while it fails or keeps giving short-lived ones.
class CredentialsCache {
 public:
  CredentialsCache(std::shared_ptr<kms::CredentialsProvider> provider, const Clock& clock, int64_t margin_s)
      : provider_(std::move(provider)), clock_(clock), margin_s_(margin_s) {}

  kms::Credentials get() {
    std::lock_guard lock(mu_);
    int64_t now = clock_.now_s();
    bool valid = cached_ && cached_->expiration_s > now;
    if (valid && (cached_->expiration_s - now > margin_s_ || now - last_attempt_s_ < kRetryS)) return cached_->clone();
    last_attempt_s_ = now;
    if (cached_) provider_->invalidate();  // e.g. ImdsCredentials would answer from its own cache
    try {
      kms::Credentials c = provider_->get();
      if (c.expiration_s == 0) c.expiration_s = now + kAnnouncedLifetimeS;
      if (c.expiration_s <= now) throw Error(Errc::kExpired, "the credentials from " + c.source + " have expired");
      cached_ = c.clone();
      log_info("credentials: " + c.describe() + ", valid until " + format_utc(c.expiration_s, "%Y-%m-%dT%H:%M:%SZ"));
      return c;
    } catch (const Error& e) {
      if (valid) {
        log_warn(std::string("credentials: refreshing failed (") + e.what() + "); serving the current ones until they expire");
        return cached_->clone();
      }
      throw;
    }
  }

 private:
  static constexpr int64_t kRetryS = 60;
  std::shared_ptr<kms::CredentialsProvider> provider_;
  const Clock& clock_;
  int64_t margin_s_;
  std::mutex mu_;
  std::optional<kms::Credentials> cached_;
  int64_t last_attempt_s_ = 0;
};

class EnvironmentCredentials final : public kms::CredentialsProvider {
 public:
  kms::Credentials get() override {
    auto c = kms::credentials_from_environment();
    if (!c) throw Error(Errc::kEnvironment, "no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the host agent's environment");
    return std::move(*c);
  }
};

class FileCredentials final : public kms::CredentialsProvider {
 public:
  explicit FileCredentials(std::string path) : path_(std::move(path)) {}
  kms::Credentials get() override {
    const char* p = std::getenv("AWS_PROFILE");
    std::string profile = p && *p ? p : "default";
    auto c = kms::credentials_from_file(path_, profile);
    if (!c) throw Error(Errc::kEnvironment, "no profile [" + profile + "] with keys in " + path_);
    return std::move(*c);
  }

 private:
  std::string path_;
};

// Where one enclave's log records go: stdout (shared, one write per record) or its own file.
class LogSink {
 public:
  LogSink(const std::string& spec, int stdout_fd) {
    if (spec == "stdout") {
      fd_ = stdout_fd;
      return;
    }
    if (!spec.starts_with("file:")) throw Error(Errc::kUsage, "logs: expected stdout or file:PATH, got '" + spec + "'");
    std::string path = spec.substr(5);
    owned_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!owned_) throw Error(Errc::kIo, "cannot open the log file " + path + ": " + std::strerror(errno));
    fd_ = owned_.get();
  }
  // One write(2) per record: records of several enclaves never interleave mid-line.
  void write(const std::string& line) {
    std::lock_guard lock(mu());
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Error(Errc::kIo, std::string("writing a log record failed: ") + std::strerror(errno));
      off += static_cast<size_t>(n);
    }
  }

 private:
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  UniqueFd owned_;
  int fd_ = -1;
};

}  // namespace

std::shared_ptr<kms::CredentialsProvider> credentials_provider(const std::string& spec) {
  if (spec == "environment") return std::make_shared<EnvironmentCredentials>();
  if (spec == "imds") return std::make_shared<kms::ImdsCredentials>();
  if (spec.starts_with("file:") && spec.size() > 5) return std::make_shared<FileCredentials>(spec.substr(5));
  throw Error(Errc::kUsage, "credentials: expected environment, imds or file:PATH, got '" + spec + "'");
}

// ---- one enclave ----

struct EnclaveState {
  const runtime::HostEnclave& cfg;
  net::Endpoint link_endpoint;
  LogSink sink;
  std::unique_ptr<net::Acceptor> link;
  std::vector<std::unique_ptr<relay::IngressForwarder>> ingress;
  relay::HostEgress egress;
  std::map<std::string, std::unique_ptr<DigestCache>> digests;  // by sealed file path

  std::array<std::atomic<uint64_t>, 4> requests{};  // by Op
  std::atomic<uint64_t> bad_requests{0}, refused{0}, credentials_served{0}, artifacts_served{0}, artifact_bytes{0};
  std::atomic<uint64_t> log_lines{0}, dropped_host{0}, dropped_enclave{0}, app_starts{0}, app_restarts{0}, start_failures{0};
  std::atomic<int64_t> log_streams{0}, app_running{-1}, last_exit_status{-1};

  EnclaveState(const runtime::HostEnclave& c, int stdout_fd)
      : cfg(c),
        link_endpoint(net::Endpoint::vsock(c.runtime.host.cid, c.runtime.host.port)),
        sink(c.logs, stdout_fd),
        egress(relay::HostEgressOptions{.egress = c.runtime.egress, .name = "egress " + c.name}) {
    // Only a whole-file pin needs the file hashed (once per version); a header pin reads the header.
    for (const auto& a : c.runtime.artifacts) {
      auto it = c.artifacts.find(a.name);
      if (!a.sha256.empty() && it != c.artifacts.end() && !digests.count(it->second))
        digests[it->second] = std::make_unique<DigestCache>(it->second);
    }
  }
};

struct Agent::Impl {
  AgentOptions opt;
  const Clock& clock;
  CredentialsCache credentials;
  std::vector<std::unique_ptr<EnclaveState>> enclaves;
  std::vector<std::unique_ptr<net::Proxy>> kms_proxies;
  std::unique_ptr<net::HttpServer> http;
  std::optional<net::Endpoint> metrics_ep;
  std::atomic<bool> running{false};
  std::mutex start_mu;

  explicit Impl(AgentOptions o)
      : opt(std::move(o)),
        clock(opt.clock ? *opt.clock : system_clock()),
        credentials(opt.credentials ? opt.credentials : credentials_provider(opt.config.credentials), clock,
                    opt.refresh_margin.count()) {}

  void serve_link(EnclaveState& e, UniqueFd conn, int stop_fd);
  void serve_credentials(EnclaveState& e, int fd);
  void serve_artifact(EnclaveState& e, int fd, const std::string& name, int stop_fd);
  void serve_logs(EnclaveState& e, int fd, int stop_fd);
  void handle_record(EnclaveState& e, std::string_view line);
  void refuse(EnclaveState& e, int fd, const std::string& why, bool warn = true) {
    e.refused++;
    if (warn) log_warn("enclave " + e.cfg.name + ": refused: " + why);
    host_link::write_line(fd, host_link::answer_error(why), kAnswerTimeout);
  }
  net::HttpServerResponse http_answer(const net::HttpServerRequest& req) const;
  std::string metrics() const;
  std::string health() const;
};

// On a Nitro parent the peer's CID says which enclave dialled; a connection from another CID
// gets nothing (under the simulator, unix sockets carry no CID and each enclave has its own path).
static std::optional<uint32_t> peer_cid(int fd) {
  sockaddr_vm addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || addr.svm_family != AF_VSOCK) return std::nullopt;
  return addr.svm_cid;
}

void Agent::Impl::serve_link(EnclaveState& e, UniqueFd conn, int stop_fd) {
  int fd = conn.get();
  if (auto cid = peer_cid(fd); cid && *cid != e.cfg.cid) {
    refuse(e, fd, "this host link serves enclave '" + e.cfg.name + "' (CID " + std::to_string(e.cfg.cid) +
                      "), not CID " + std::to_string(*cid));
    return;
  }
  host_link::Request r;
  try {
    std::string line = host_link::read_line(fd, opt.request_timeout, "enclave '" + e.cfg.name + "'");
    r = host_link::parse_request(line);
  } catch (const Error& err) {
    e.bad_requests++;
    if (err.code() == Errc::kFormat) {
      refuse(e, fd, err.what());
    } else {
      log_warn("enclave " + e.cfg.name + ": " + err.what());
    }
    return;
  }
  e.requests[static_cast<size_t>(r.op)]++;
  switch (r.op) {
    case Op::kCredentials:
      serve_credentials(e, fd);
      return;
    case Op::kArtifact:
      serve_artifact(e, fd, r.name, stop_fd);
      return;
    case Op::kLogs:
      serve_logs(e, fd, stop_fd);
      return;
    case Op::kConnect:
      // The relay answers (ok or refused), logs and counts, then relays until both sides close.
      e.egress.serve(std::move(conn), relay::format_authority(r.host, r.port), {}, stop_fd);
      return;
  }
}

void Agent::Impl::serve_credentials(EnclaveState& e, int fd) {
  kms::Credentials c;
  try {
    c = credentials.get();
  } catch (const Error& err) {
    log_error("enclave " + e.cfg.name + ": no credentials to serve: " + err.what());
    refuse(e, fd, std::string("the host agent has no credentials: ") + err.what(), false);
    return;
  }
  host_link::write_credentials_answer(fd, c, kAnswerTimeout);
  e.credentials_served++;
  log_info("enclave " + e.cfg.name + ": credentials served (" + c.access_key_id + ")");
}

void Agent::Impl::serve_artifact(EnclaveState& e, int fd, const std::string& name, int stop_fd) {
  const runtime::ArtifactConfig* art = nullptr;
  for (const auto& a : e.cfg.runtime.artifacts)
    if (a.name == name) art = &a;
  if (!art) return refuse(e, fd, "artifact " + quote(name) + " is not in enclave " + quote(e.cfg.name) + "'s runtime config");
  if (!art->from_host())
    return refuse(e, fd, "artifact " + quote(name) + " comes from " + art->source + " inside the image, not from the host");
  auto it = e.cfg.artifacts.find(name);
  if (it == e.cfg.artifacts.end())
    return refuse(e, fd, "artifact " + quote(name) + " has no file in the host config (enclaves[" + e.cfg.name + "].artifacts)");
  const std::string& path = it->second;
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    log_error("enclave " + e.cfg.name + ": artifact " + quote(name) + ": cannot open " + path + ": " + std::strerror(errno));
    return refuse(e, fd, "artifact " + quote(name) + ": the host cannot read its file", false);
  }
  // The digest of the kind the runtime config pins; streaming a file that differs would only
  // make the enclave refuse it (after reading every byte, for a whole-file pin).
  const bool header_pin = !art->header_sha256.empty();
  const char* kind = header_pin ? "header_sha256 " : "sha256 ";
  const std::string& pinned = header_pin ? art->header_sha256 : art->sha256;
  host_link::ArtifactAnswer answer;
  std::string& digest = header_pin ? answer.header_sha256 : answer.sha256;
  try {
    if (header_pin) {
      answer.size = file_size(file.get(), path);
      digest = header_sha256(file.get(), answer.size, path);
    } else {
      FileDigest d = e.digests.at(path)->digest(file.get());
      answer.size = d.size;
      digest = d.sha256;
    }
  } catch (const Error& err) {
    return refuse(e, fd, "artifact " + quote(name) + ": " + err.what());
  }
  if (digest != pinned)
    return refuse(e, fd, "artifact " + quote(name) + ": " + path + " has " + kind + digest + ", the runtime config pins " +
                             pinned + "; not served");
  const uint64_t size = answer.size;
  host_link::write_line(fd, host_link::answer_artifact(answer), kAnswerTimeout);
  uint64_t sent = send_file(fd, file.get(), size, stop_fd);
  e.artifact_bytes += sent;
  if (sent == size) {
    e.artifacts_served++;
    log_info("enclave " + e.cfg.name + ": artifact " + quote(name) + " served (" + std::to_string(sent) + " bytes)");
  } else {
    log_warn("enclave " + e.cfg.name + ": artifact " + quote(name) + " stopped after " + std::to_string(sent) + " of " +
             std::to_string(size) + " bytes");
  }
}

void Agent::Impl::handle_record(EnclaveState& e, std::string_view line) {
  host_link::LogRecord r;
  try {
    r = host_link::parse_log_record(line);
  } catch (const Error& err) {
    e.dropped_host++;
    log_warn("enclave " + e.cfg.name + ": log line dropped: " + err.what());
    return;
  }
  if (r.stream == "event") {
    auto number = [&](const char* key) -> std::optional<int64_t> {
      auto it = r.fields.find(key);
      if (it == r.fields.end() || !std::holds_alternative<int64_t>(it->second)) return std::nullopt;
      return std::get<int64_t>(it->second);
    };
    if (r.event == "app_started") {
      uint64_t starts = ++e.app_starts;
      e.app_running = 1;
      auto restarts = number("restarts");
      e.app_restarts = restarts && *restarts >= 0 ? static_cast<uint64_t>(*restarts) : starts - 1;
    } else if (r.event == "app_exited") {
      e.app_running = 0;
      if (auto st = number("status")) e.last_exit_status = *st;
    } else if (r.event == "start_failed") {
      e.app_running = 0;  // the supervisor refused to start the app (artifact, KMS, config): it logged why
      e.start_failures++;
    } else if (r.event == "logs_dropped") {
      if (auto n = number("count"); n && *n > 0) e.dropped_enclave += static_cast<uint64_t>(*n);
    }
  }
  // Re-formatted (never the enclave's bytes as they came), with the enclave's name first.
  std::string out = host_link::format_log_record(r);
  out = "{\"enclave\":" + nlohmann::json(e.cfg.name).dump() + "," + out.substr(1) + "\n";
  e.sink.write(out);
  e.log_lines++;
}

void Agent::Impl::serve_logs(EnclaveState& e, int fd, int stop_fd) {
  host_link::write_line(fd, host_link::answer_ok(), kAnswerTimeout);
  e.log_streams++;
  log_info("enclave " + e.cfg.name + ": log stream open");
  std::string buf;
  bool skipping = false;  // inside an oversize line: dropped up to its '\n'
  char chunk[16384];
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents) break;
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    for (;;) {
      size_t nl = buf.find('\n', start);
      if (nl == std::string::npos) break;
      if (!skipping) handle_record(e, std::string_view(buf).substr(start, nl - start));
      skipping = false;
      start = nl + 1;
    }
    buf.erase(0, start);
    if (buf.size() >= host_link::kMaxLineBytes) {
      if (!skipping) {
        e.dropped_host++;
        log_warn("enclave " + e.cfg.name + ": log line dropped: longer than " + std::to_string(host_link::kMaxLineBytes) + " bytes");
      }
      skipping = true;
      buf.clear();
    }
  }
  if (!buf.empty() && !skipping) {
    e.dropped_host++;  // a last line without its '\n'
    log_warn("enclave " + e.cfg.name + ": log line dropped: the stream ended mid-line");
  }
  e.log_streams--;
  log_info("enclave " + e.cfg.name + ": log stream closed");
}

// ---- metrics and health ----

std::string Agent::Impl::metrics() const {
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto sample = [&](const std::string& name, const std::string& labels, auto value) {
    out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(value) + "\n";
  };
  auto per = [&](const char* name, const char* type, const char* help, auto fn) {
    family(name, type, help);
    for (const auto& e : enclaves) fn(*e, "enclave=\"" + label(e->cfg.name) + "\"");
  };
  // A series with one value per enclave.
  auto one = [&](const char* name, const char* type, const char* help, int64_t (*value)(const EnclaveState&)) {
    per(name, type, help, [&](const EnclaveState& e, const std::string& l) { sample(name, l, value(e)); });
  };
  family("shield_nitro_host_up", "gauge", "1 while the host agent serves.");
  sample("shield_nitro_host_up", "", running.load() ? 1 : 0);
  one("shield_nitro_enclave_connected", "gauge", "1 while the enclave's log stream is open.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.log_streams > 0 ? 1 : 0); });
  one("shield_nitro_app_running", "gauge", "1 running, 0 exited, -1 not reported yet (supervisor events).",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.app_running.load()); });
  one("shield_nitro_app_restarts_total", "counter", "App restarts reported by the supervisor.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.app_restarts.load()); });
  one("shield_nitro_app_start_failures_total", "counter", "start_failed events: the supervisor did not start the app.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.start_failures.load()); });
  one("shield_nitro_app_last_exit_status", "gauge", "The app's last exit status (-1: none yet).",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.last_exit_status.load()); });
  per("shield_nitro_host_link_requests_total", "counter", "Host-link requests by op.",
      [&](const EnclaveState& e, const std::string& l) {
        for (Op op : {Op::kCredentials, Op::kArtifact, Op::kLogs, Op::kConnect})
          sample("shield_nitro_host_link_requests_total", l + ",op=\"" + host_link::op_name(op) + "\"",
                 e.requests[static_cast<size_t>(op)].load());
      });
  one("shield_nitro_host_link_bad_requests_total", "counter", "Request lines that were malformed, oversize or late.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.bad_requests.load()); });
  one("shield_nitro_host_link_refused_total", "counter", "Requests answered ok:false by the host agent itself.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.refused.load()); });
  one("shield_nitro_credentials_served_total", "counter", "Credentials answers sent.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.credentials_served.load()); });
  one("shield_nitro_artifacts_served_total", "counter", "Sealed artifacts streamed in full.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.artifacts_served.load()); });
  per("shield_nitro_bytes_relayed_total", "counter", "Bytes moved for the enclave, by path and direction (finished connections).",
      [&](const EnclaveState& e, const std::string& l) {
        uint64_t in_up = 0, in_down = 0;
        for (const auto& f : e.ingress) {
          auto s = f->stats();
          in_up += s.bytes_up;
          in_down += s.bytes_down;
        }
        auto eg = e.egress.stats();
        sample("shield_nitro_bytes_relayed_total", l + ",path=\"artifact\",direction=\"down\"", e.artifact_bytes.load());
        sample("shield_nitro_bytes_relayed_total", l + ",path=\"ingress\",direction=\"up\"", in_up);
        sample("shield_nitro_bytes_relayed_total", l + ",path=\"ingress\",direction=\"down\"", in_down);
        sample("shield_nitro_bytes_relayed_total", l + ",path=\"egress\",direction=\"up\"", eg.bytes_up);
        sample("shield_nitro_bytes_relayed_total", l + ",path=\"egress\",direction=\"down\"", eg.bytes_down);
      });
  per("shield_nitro_ingress_connections_total", "counter", "Ingress connections accepted.",
      [&](const EnclaveState& e, const std::string& l) {
        uint64_t n = 0;
        for (const auto& f : e.ingress) n += f->stats().connections;
        sample("shield_nitro_ingress_connections_total", l, n);
      });
  one("shield_nitro_egress_connections_total", "counter", "Egress connect requests.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.egress.stats().connections); });
  one("shield_nitro_egress_refused_total", "counter", "Egress refused by the host's copy of the allowlist.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.egress.stats().refused); });
  one("shield_nitro_log_lines_total", "counter", "Log records written out.",
      [](const EnclaveState& e) { return static_cast<int64_t>(e.log_lines.load()); });
  per("shield_nitro_log_lines_dropped_total", "counter", "Log lines dropped: by the enclave (reported) or by the host (malformed).",
      [&](const EnclaveState& e, const std::string& l) {
        sample("shield_nitro_log_lines_dropped_total", l + ",where=\"enclave\"", e.dropped_enclave.load());
        sample("shield_nitro_log_lines_dropped_total", l + ",where=\"host\"", e.dropped_host.load());
      });
  net::ProxyStats kms{};
  for (const auto& p : kms_proxies) {
    auto s = p->stats();
    kms.connections += s.connections;
    kms.failed_connects += s.failed_connects;
    kms.bytes_up += s.bytes_up;
    kms.bytes_down += s.bytes_down;
  }
  family("shield_nitro_kms_proxy_connections_total", "counter", "Connections through the KMS proxy.");
  sample("shield_nitro_kms_proxy_connections_total", "", kms.connections);
  family("shield_nitro_kms_proxy_failed_connects_total", "counter", "KMS proxy connections whose target was unreachable.");
  sample("shield_nitro_kms_proxy_failed_connects_total", "", kms.failed_connects);
  family("shield_nitro_kms_proxy_bytes_total", "counter", "Bytes through the KMS proxy (finished connections).");
  sample("shield_nitro_kms_proxy_bytes_total", "direction=\"up\"", kms.bytes_up);
  sample("shield_nitro_kms_proxy_bytes_total", "direction=\"down\"", kms.bytes_down);
  return out;
}

std::string Agent::Impl::health() const {
  nlohmann::ordered_json j;
  j["status"] = running.load() ? "ok" : "stopped";
  j["enclaves"] = nlohmann::ordered_json::object();
  for (const auto& e : enclaves) {
    int64_t app = e->app_running.load();
    j["enclaves"][e->cfg.name] = {{"connected", e->log_streams > 0},
                                  {"app", app < 0 ? "unknown" : app ? "running" : "exited"},
                                  {"restarts", e->app_restarts.load()}};
  }
  return j.dump();
}

net::HttpServerResponse Agent::Impl::http_answer(const net::HttpServerRequest& req) const {
  if (req.method != "GET" && req.method != "HEAD")
    return {405, {{"Allow", "GET, HEAD"}, {"Content-Type", "text/plain"}}, "only GET\n"};
  if (req.path == "/metrics") return {200, {{"Content-Type", "text/plain; version=0.0.4"}}, metrics()};
  if (req.path == "/healthz") return {running.load() ? 200 : 503, {{"Content-Type", "application/json"}}, health() + "\n"};
  return {404, {{"Content-Type", "text/plain"}}, "not found: /healthz and /metrics are served\n"};
}

// ---- the agent ----

Agent::Agent(AgentOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  const runtime::HostConfig& cfg = impl_->opt.config;
  if (cfg.enclaves.empty()) throw Error(Errc::kUsage, "host config: enclaves: at least one enclave is required");
  std::map<std::string, std::string> listens;  // endpoint → what uses it
  auto claim = [&](const net::Endpoint& ep, const std::string& what) {
    auto [it, fresh] = listens.emplace(ep.to_string(), what);
    if (!fresh) throw Error(Errc::kUsage, "host config: " + what + " and " + it->second + " both listen on " + ep.to_string());
  };
  std::set<uint32_t> kms_ports;
  for (const auto& e : cfg.enclaves) {
    claim(net::Endpoint::vsock(e.runtime.host.cid, e.runtime.host.port),
          "the host link of enclave '" + e.name + "' (its runtime config's host.port)");
    for (size_t i = 0; i < e.ingress.size(); ++i) {
      const auto& in = e.ingress[i];
      bool forwarded = false;
      for (const auto& r : e.runtime.ingress) forwarded |= r.vsock_port == in.vsock_port;
      std::string key = "enclaves[" + e.name + "].ingress[" + std::to_string(i) + "]";
      if (!forwarded)
        throw Error(Errc::kUsage, "host config: " + key + ".vsock_port: " + std::to_string(in.vsock_port) +
                                      " is not an ingress port of the enclave's runtime config");
      claim(net::Endpoint::parse(in.listen), key + ".listen");
    }
    if (uses_kms(e.runtime)) {
      if (cfg.kms_target.empty())
        throw Error(Errc::kUsage, "host config: kms.target: required, enclave '" + e.name + "' uses KMS");
      kms_ports.insert(e.runtime.kms.proxy_port);
    }
    impl_->enclaves.push_back(std::make_unique<EnclaveState>(e, impl_->opt.stdout_fd));
  }
  if (!cfg.metrics.empty()) claim(net::Endpoint::parse(cfg.metrics), "metrics");
  if (!kms_ports.empty()) {
    std::pair<std::string, uint16_t> target;
    try {
      target = host_link::parse_target(cfg.kms_target);
    } catch (const Error& e) {
      throw Error(Errc::kUsage, std::string("host config: kms.target: ") + e.what());
    }
    for (uint32_t port : kms_ports) {
      net::ProxyOptions o;
      o.listen = net::Endpoint::vsock(net::kVsockCidParent, port);
      claim(o.listen, "the KMS proxy");
      o.target_host = target.first;
      o.target_port = target.second;
      o.allowlist = net::Allowlist::parse("allowlist:\n- {address: \"" + target.first + "\", port: " +
                                          std::to_string(target.second) + "}\n");
      impl_->kms_proxies.push_back(std::make_unique<net::Proxy>(std::move(o)));
    }
  }
}

Agent::~Agent() { stop(); }

void Agent::start() {
  std::lock_guard lock(impl_->start_mu);
  Impl& m = *impl_;
  if (m.running) return;
  auto listening = [&](const std::string& ep, const std::string& what, const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      throw Error(Errc::kIo, "cannot listen on " + ep + " (" + what + "): " + e.what());
    }
  };
  try {
    for (auto& p : m.kms_proxies) listening(p->endpoint().to_string(), "KMS proxy", [&] { p->start(); });
    for (auto& ep : m.enclaves) {
      EnclaveState* e = ep.get();
      for (size_t i = 0; i < e->cfg.ingress.size(); ++i) {
        const auto& in = e->cfg.ingress[i];
        auto f = std::make_unique<relay::IngressForwarder>(relay::host_ingress(in, e->cfg));
        listening(in.listen, "ingress of enclave '" + e->cfg.name + "'", [&] { f->start(); });
        e->ingress.push_back(std::move(f));
      }
      net::AcceptorOptions ao;
      ao.listen = e->link_endpoint;
      ao.max_connections = 256;
      ao.name = "host link " + e->cfg.name;
      e->link = std::make_unique<net::Acceptor>(
          std::move(ao),
          [this, e](uint64_t, UniqueFd conn, int stop_fd) { impl_->serve_link(*e, std::move(conn), stop_fd); });
      listening(e->link_endpoint.to_string(), "host link of enclave '" + e->cfg.name + "'", [&] { e->link->start(); });
    }
    if (!m.opt.config.metrics.empty()) {
      net::Endpoint ep = net::Endpoint::parse(m.opt.config.metrics);
      net::HttpServerOptions o;
      o.listen = (ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host) + ":" + std::to_string(ep.port);
      o.workers = 2;
      o.name = "metrics";
      m.http = std::make_unique<net::HttpServer>(o, [&m](const net::HttpServerRequest& r) { return m.http_answer(r); });
      listening(m.opt.config.metrics, "metrics", [&] { m.http->start(); });
      ep.port = static_cast<uint32_t>(m.http->port());
      m.metrics_ep = ep;
    }
  } catch (...) {
    m.running = true;  // so stop() tears down what did start
    stop();
    throw;
  }
  m.running = true;
  // Hash the sealed files now, so the enclave's first request does not wait for it.
  for (auto& e : m.enclaves)
    for (auto& [path, cache] : e->digests) cache->warm();
  log_info("host agent: serving " + std::to_string(m.enclaves.size()) + " enclave(s)");
}

void Agent::stop() {
  Impl& m = *impl_;
  if (!m.running.exchange(false)) return;
  if (m.http) m.http->stop();
  for (auto& e : m.enclaves) {
    if (e->link) e->link->stop();
    for (auto& f : e->ingress) f->stop();
    for (auto& [path, cache] : e->digests) cache->join();
  }
  for (auto& p : m.kms_proxies) p->stop();
}

std::optional<net::Endpoint> Agent::metrics_endpoint() const { return impl_->metrics_ep; }
std::string Agent::metrics_text() const { return impl_->metrics(); }
std::string Agent::health_json() const { return impl_->health(); }

}  // namespace shield_nitro::host
