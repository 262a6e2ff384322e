// The supervisor's start sequence (start.h): every step logged, the first failure ends it
// before the app exists.
#include "shield_nitro/supervisor/start.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/recipient_key.h"
#include "shield_nitro/kms_endpoint/endpoint.h"
#include "shield_nitro/nsm/client.h"
#include "shield_nitro/nsm/transport.h"
#include "shield_nitro/relay/egress.h"
#include "shield_nitro/relay/attested_tls.h"
#include "shield_nitro/relay/ingress.h"
#include "shield_nitro/runtime/config.h"
#include "shield_nitro/supervisor/artifact.h"
#include "shield_nitro/supervisor/logs.h"
#include "shield_nitro/supervisor/process.h"
#include "shield_nitro/supervisor/system.h"

extern char** environ;

namespace shield_nitro::supervisor {
namespace {

// A stop signal arrived before the app started.
struct Stopped {
  int signal;
};

int64_t ms_since(int64_t start_ns) { return (monotonic_ns() - start_ns) / 1'000'000; }

// Asks the host agent for fresh role credentials before the current ones expire (the KMS
// endpoint signs the app's calls with them): checked now, then every check_every; a failure is
// logged and retried at the next check.
class CredentialRefresher {
 public:
  CredentialRefresher(host_link::HostLink link, std::shared_ptr<kms::PushedCredentials> creds, LogRouter& logs,
                      std::chrono::seconds check_every = std::chrono::seconds(30))
      : link_(std::move(link)), creds_(std::move(creds)), logs_(logs), every_(check_every), thread_([this] { run(); }) {}
  ~CredentialRefresher() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      if (creds_->needs_refresh()) {
        l.unlock();
        try {
          kms::Credentials c = link_.fetch_credentials();
          std::string what = c.describe();
          int64_t expires = c.expiration_s;
          creds_->update(std::move(c));
          logs_.event("credentials_refreshed", "credentials refreshed: " + what,
                      {{"expiration", host_link::format_log_time(expires * 1000)}});
        } catch (const Error& e) {
          logs_.event("credentials_refresh_failed", std::string("cannot refresh the credentials: ") + e.what());
        }
        l.lock();
      }
      cv_.wait_for(l, every_, [this] { return stop_; });
    }
  }

  host_link::HostLink link_;
  std::shared_ptr<kms::PushedCredentials> creds_;
  LogRouter& logs_;
  std::chrono::seconds every_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is set
};

// The supervisor's own stderr (where the libraries log: the egress proxy's refusals, KMS
// retries, ...) goes through a pipe into the log pipeline, so it reaches the host agent too; the
// console is a copy of the original stderr. Restored (and drained) when destroyed.
class StderrCapture {
 public:
  StderrCapture(int console_fd, LogRouter& logs) : console_fd_(console_fd), logs_(logs) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw Error(Errc::kEnvironment, std::string("pipe: ") + std::strerror(errno));
    read_.reset(p[0]);
    std::fflush(stderr);
    ::dup2(p[1], 2);
    ::close(p[1]);
    thread_ = std::thread([this] { run(); });
  }
  ~StderrCapture() {
    std::fflush(stderr);
    ::dup2(console_fd_, 2);  // the pipe's last writer goes: the reader sees its end
    thread_.join();
  }

 private:
  void run() {
    std::string partial;
    char buf[4096];
    for (ssize_t n; (n = ::read(read_.get(), buf, sizeof buf)) != 0;) {
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      partial.append(buf, static_cast<size_t>(n));
      for (size_t nl; (nl = partial.find('\n')) != std::string::npos; partial.erase(0, nl + 1))
        logs_.supervisor_line(std::string_view(partial).substr(0, nl));
      if (partial.size() > 3072) {
        logs_.supervisor_line(partial);
        partial.clear();
      }
    }
    if (!partial.empty()) logs_.supervisor_line(partial);
  }

  int console_fd_;
  LogRouter& logs_;
  UniqueFd read_;
  std::thread thread_;
};

class Sequence {
 public:
  Sequence(const RunOptions& o, runtime::RuntimeConfig cfg, LogRouter& logs)
      : o_(o), cfg_(std::move(cfg)), logs_(logs), link_(cfg_.host) {}

  int run() {
    const int64_t start_ns = o_.start_ns ? o_.start_ns : monotonic_ns();
    std::string step = "config";
    try {
      logs_.add_host([link = link_]() mutable { return link.open_logs(); });  // outlives this
      done(step, "runtime config " + o_.config_path + " (host agent at " + link_.describe() + ")");

      step = "user";
      user();
      step = "loopback";
      loopback_up();
      done(step, "loopback interface up");
      step = "nsm";
      nsm();
      const bool uses_kms = !cfg_.artifacts.empty() || cfg_.kms.api_port != 0;
      step = "recipient_key";
      if (uses_kms) {
        int64_t t0 = monotonic_ns();
        keys_ = std::make_unique<kms::RecipientKeyManager>();
        keys_->current();
        done(step, "RSA-2048 recipient key ready in " + std::to_string(ms_since(t0)) + " ms");
      } else {
        done(step, "not needed: no artifacts and no KMS endpoint", {{"skipped", int64_t{1}}});
      }
      step = "credentials";
      if (uses_kms)
        credentials();
      else
        done(step, "not needed: no artifacts and no KMS endpoint", {{"skipped", int64_t{1}}});
      if (!cfg_.artifacts.empty()) {
        step = "storage";
        const char* plain = std::getenv(kPlainStorageEnv);
        storage_ = std::make_unique<Storage>(cfg_.storage.path, cfg_.storage.size_mib, plain && std::string(plain) == "1");
        done(step, storage_->description(),
             {{"plain", int64_t{storage_->plain()}}, {"huge_pages", int64_t{storage_->huge_pages()}}});
        for (const auto& a : cfg_.artifacts) {
          step = "artifact " + a.name;
          artifact(a);
        }
      }
      if (cfg_.kms.api_port != 0) {
        step = "kms_endpoint";
        kms_endpoint();
      }
      for (const auto& in : cfg_.ingress) {
        step = "ingress " + std::to_string(in.vsock_port);
        const bool tls = in.mode == runtime::IngressMode::kAttestedTls;
        relay::AttestedTlsOptions tls_options;  // TLS ends here, its key bound into NSM documents
        tls_options.attest = [nsm = nsm_.get()](ByteView nonce, ByteView user_data) {
          nsm::AttestationRequest request;
          request.user_data = to_bytes(user_data);
          request.nonce = to_bytes(nonce);
          return nsm->attestation(request);
        };
        auto fwd = std::make_unique<relay::IngressForwarder>(
            tls ? relay::enclave_attested_tls_ingress(in, std::move(tls_options)) : relay::enclave_ingress(in));
        fwd->start();
        ingress_.push_back(std::move(fwd));
        done("ingress", "ingress vsock port " + std::to_string(in.vsock_port) + " -> 127.0.0.1:" + std::to_string(in.app_port) +
                            (tls ? " (attested-tls)" : ""),
             {{"vsock_port", int64_t{in.vsock_port}}, {"app_port", int64_t{in.app_port}}});
      }
      if (cfg_.egress.proxy_port != 0) {
        step = "egress";
        egress();
      }
    } catch (const Stopped& s) {
      logs_.event("start_failed", std::string("stopped by ") + strsignal(s.signal) + " before the app started",
                  {{"step", step}, {"signal", int64_t{s.signal}}});
      return 128 + s.signal;
    } catch (const Error& e) {
      logs_.event("start_failed", step + ": " + e.what() + "; the app is not started",
                  {{"step", step}, {"error", std::string(e.what())}, {"code", std::string(errc_name(e.code()))}});
      return exit_code(e.code());
    } catch (const std::exception& e) {
      logs_.event("start_failed", step + ": internal error: " + e.what() + "; the app is not started",
                  {{"step", step}, {"error", std::string(e.what())}, {"code", std::string("internal")}});
      return 3;
    }

    AppSpec spec;
    spec.argv = o_.command;
    spec.env = merge_environment(environ, app_environment());
    spec.workdir = cfg_.app.workdir;
    spec.set_user = ::geteuid() == 0;
    spec.uid = cfg_.app.uid;
    spec.gid = cfg_.app.gid;
    RestartOptions restart{cfg_.app.restart, cfg_.app.max_restarts, cfg_.app.restart_backoff_ms};
    try {
      AppProcess app(std::move(spec), restart, logs_, start_ns);
      return app.run();
    } catch (const Error& e) {
      return exit_code(e.code());  // exec_failed is logged
    }
  }

 private:
  // Logs a finished step; a stop signal that came during it (a KMS call, a download) ends the
  // start here rather than reaching the app the moment it starts.
  void done(const std::string& step, const std::string& text, EventFields fields = {}) {
    fields["step"] = step;
    logs_.event("step", text, fields);
    if (int sig = wait_for_stop_signal(0)) throw Stopped{sig};
  }

  void user() {
    resolve_app_user(cfg_.app);
    const std::string who = std::to_string(cfg_.app.uid) + ":" + std::to_string(cfg_.app.gid);
    if (::geteuid() != 0 && (cfg_.app.uid != ::getuid() || cfg_.app.gid != ::getgid()))
      throw Error(Errc::kEnvironment, "the app is to run as " + who + " but the supervisor is uid " + std::to_string(::getuid()) +
                                          " without root: it cannot change user");
    done("user", "the app runs as " + who + (cfg_.app.user.empty() ? " (app.user not set)" : " (" + cfg_.app.user + ")"));
  }

  void nsm() {
    std::string spec = o_.nsm.empty() ? nsm::kNsmDefault : o_.nsm;
    nsm_ = std::make_unique<nsm::NsmClient>(open_nsm_waiting(spec, o_.nsm_wait_s, [this](const std::string& why) {
      logs_.event("waiting", why, {{"step", std::string("nsm")}});
    }));
    auto d = nsm_->describe_nsm();
    done("nsm", "NSM " + nsm_->transport().describe() + " (module " + d.module_id + ")");
  }

  void credentials() {
    const int64_t t0 = monotonic_ns();
    const int64_t deadline = t0 + int64_t{o_.credentials_wait_s} * 1'000'000'000;
    int delay_ms = 100;
    for (int attempt = 1;; ++attempt) {
      try {
        kms::Credentials c = link_.fetch_credentials();
        std::string what = c.describe();
        int64_t expires = c.expiration_s;
        credentials_ = std::make_shared<kms::PushedCredentials>();
        credentials_->update(std::move(c));
        done("credentials", "credentials " + what + " after " + std::to_string(attempt) + " attempt(s)",
             {{"attempts", int64_t{attempt}}, {"expiration", host_link::format_log_time(expires * 1000)}});
        return;
      } catch (const Error& e) {
        if (monotonic_ns() >= deadline)
          throw Error(e.code() == Errc::kIo ? Errc::kTimeout : e.code(),
                      "no credentials from the host agent at " + link_.describe() + " within " +
                          std::to_string(o_.credentials_wait_s) + " s (" + std::to_string(attempt) + " attempts): " + e.what());
        if (attempt == 1 || attempt % 10 == 0)
          logs_.event("waiting", std::string("waiting for credentials from the host agent: ") + e.what(),
                      {{"step", std::string("credentials")}, {"attempts", int64_t{attempt}}});
      }
      if (int sig = wait_for_stop_signal(delay_ms)) throw Stopped{sig};
      delay_ms = std::min(delay_ms * 2, 2000);
    }
  }

  // KMS through the parent's proxy (vsock://<host.cid>:<kms.proxy_port>), TLS ending here.
  kms::KmsClientOptions kms_options() const {
    kms::KmsClientOptions ko;
    ko.region = cfg_.kms.region;
    ko.endpoint = cfg_.kms.endpoint;
    ko.transport.via = "vsock://" + std::to_string(cfg_.host.cid) + ":" + std::to_string(cfg_.kms.proxy_port);
    ko.transport.ca_file = cfg_.kms.ca_file;
    return ko;
  }

  kms::AttestationSource& documents() {
    if (!documents_) documents_ = std::make_unique<kms::NsmAttestationSource>(*nsm_);
    return *documents_;
  }

  kms::KmsClient& kms_client() {
    if (!kms_) {
      kms_ = std::make_unique<kms::KmsClient>(kms_options(), credentials_);
      recipient_ = {&documents(), keys_.get()};
    }
    return *kms_;
  }

  void kms_endpoint() {
    kms_endpoint::EndpointOptions eo;
    eo.port = cfg_.kms.api_port;
    eo.region = cfg_.kms.region;
    eo.kms = kms_options();
    eo.role_credentials = credentials_;
    eo.attestation = &documents();
    eo.recipient_keys = keys_.get();
    endpoint_ = std::make_unique<kms_endpoint::KmsEndpoint>(eo);
    for (auto& kv : endpoint_->start()) runtime_env_.push_back(std::move(kv));
    refresher_ = std::make_unique<CredentialRefresher>(link_, credentials_, logs_);
    done("kms_endpoint", "attested KMS endpoint and container credentials for the app at " + endpoint_->url(),
         {{"port", int64_t{endpoint_->port()}}});
  }

  void egress() {
    host_link::HostLink link = link_;
    auto options = relay::enclave_egress(cfg_.egress, [link](const std::string& host, uint16_t port) mutable {
      return link.connect(host, port);
    });
    egress_ = std::make_unique<relay::EgressProxy>(std::move(options));
    egress_->start();
    const std::string url = "http://127.0.0.1:" + std::to_string(cfg_.egress.proxy_port);
    // Upper and lower case: curl reads only http_proxy in lower case, others either.
    for (const char* name : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}) runtime_env_.emplace_back(name, url);
    for (const char* name : {"NO_PROXY", "no_proxy"}) runtime_env_.emplace_back(name, "localhost,127.0.0.1,::1");
    done("egress", "egress proxy for the app at " + url + " (" + std::to_string(cfg_.egress.allow.size()) + " allowed destinations)",
         {{"port", int64_t{cfg_.egress.proxy_port}}});
  }

  void artifact(const runtime::ArtifactConfig& a) {
    const int64_t t0 = monotonic_ns();
    make_parent_dirs(cfg_.storage.path, a.path);
    kms::KmsClient& kms = kms_client();
    int64_t release_ms = 0;
    auto release = [&](const sealed::Header& h) {
      int64_t r0 = monotonic_ns();
      SecureBytes key = kms.decrypt(h.ciphertext_blob, a.encryption_context, a.key_id, &recipient_).plaintext;
      release_ms = ms_since(r0);
      return key;
    };
    InstallOptions io;
    io.set_owner = ::geteuid() == 0;
    io.uid = cfg_.app.uid;
    io.gid = cfg_.app.gid;
    io.max_plaintext = cfg_.storage.size_mib << 20;
    InstallResult r;
    std::string from;
    if (a.from_host()) {
      auto stream = link_.open_artifact(a.name);
      // A refusal before any byte is read (install_artifact checks the bytes themselves).
      const bool header_pin = !a.header_sha256.empty();
      const std::string& offered = header_pin ? stream.header_sha256 : stream.sha256;
      const std::string& pinned = header_pin ? a.header_sha256 : a.sha256;
      const std::string kind = header_pin ? "header_sha256" : "sha256";
      if (offered != pinned)
        throw Error(Errc::kVerify, "the host agent offers a sealed file with " +
                                       (offered.empty() ? "no " + kind : kind + " " + offered) +
                                       "; the runtime config pins " + kind + " " + pinned);
      FdSource src(stream.fd.get(), "artifact " + a.name + " from the host agent", 60'000);
      r = install_artifact(a, src, stream.size, release, io);
      from = "the host agent";
    } else {
      std::error_code ec;
      uint64_t size = std::filesystem::file_size(a.source, ec);
      if (ec) throw Error(Errc::kEnvironment, "cannot read " + a.source + " in the image: " + ec.message());
      FileReader in(a.source);
      r = install_artifact(a, in, size, release, io);
      from = a.source;
    }
    storage_->placed(a.path);
    logs_.event("artifact_ready",
                "artifact " + a.name + " from " + from + " at " + a.path + " (" + std::to_string(r.plaintext_bytes) + " bytes)",
                {{"name", a.name}, {"path", a.path}, {"sealed_bytes", static_cast<int64_t>(r.sealed_bytes)},
                 {"bytes", static_cast<int64_t>(r.plaintext_bytes)}, {"kms_ms", release_ms}, {"ms", ms_since(t0)}});
    if (int sig = wait_for_stop_signal(0)) throw Stopped{sig};
  }

  // What the runtime adds to the app's environment (after app.env, so it wins).
  std::vector<std::pair<std::string, std::string>> app_environment() const {
    std::vector<std::pair<std::string, std::string>> env(cfg_.app.env.begin(), cfg_.app.env.end());
    env.insert(env.end(), runtime_env_.begin(), runtime_env_.end());
    return env;
  }

  const RunOptions& o_;
  runtime::RuntimeConfig cfg_;
  LogRouter& logs_;
  host_link::HostLink link_;
  std::unique_ptr<nsm::NsmClient> nsm_;
  std::unique_ptr<kms::RecipientKeyManager> keys_;
  std::shared_ptr<kms::PushedCredentials> credentials_;
  std::unique_ptr<kms::KmsClient> kms_;
  std::unique_ptr<kms::NsmAttestationSource> documents_;
  kms::Recipient recipient_;
  std::unique_ptr<Storage> storage_;  // unmounted (plaintext gone) when the supervisor ends
  std::unique_ptr<kms_endpoint::KmsEndpoint> endpoint_;
  std::unique_ptr<CredentialRefresher> refresher_;
  std::vector<std::unique_ptr<relay::IngressForwarder>> ingress_;
  std::unique_ptr<relay::EgressProxy> egress_;
  std::vector<std::pair<std::string, std::string>> runtime_env_;  // what the endpoints add for the app
};

}  // namespace

std::unique_ptr<nsm::NsmTransport> open_nsm_waiting(const std::string& spec, unsigned wait_s,
                                                    const std::function<void(const std::string&)>& on_wait) {
  const char* env = std::getenv(nsm::kNsmEnvVar);
  std::string chosen = spec == nsm::kNsmDefault && env && *env ? env : spec;
  if (chosen.rfind("sim:", 0) != 0 || wait_s == 0) return nsm::open_nsm(spec);
  int64_t start = monotonic_ns(), deadline = start + int64_t{wait_s} * 1'000'000'000;
  for (bool waited = false;; waited = true) {
    try {
      auto t = nsm::open_nsm(spec);
      if (waited) on_wait("the simulated NSM answered after " + std::to_string(ms_since(start)) + " ms");
      return t;
    } catch (const Error& e) {
      if (e.code() != Errc::kEnvironment || monotonic_ns() >= deadline) throw;
      if (!waited) on_wait("waiting up to " + std::to_string(wait_s) + " s for the simulated NSM (" + e.what() + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int run_supervisor(const RunOptions& o) {
  const int64_t start_ns = o.start_ns ? o.start_ns : monotonic_ns();
  runtime::RuntimeConfig cfg;
  try {
    if (o.command.empty()) throw Error(Errc::kUsage, "no command: give the app after --");
    cfg = runtime::load_runtime_config(o.config_path);
  } catch (const Error& e) {
    LogRouter logs({.console_fd = o.console_fd});
    logs.event("start_failed", std::string("config: ") + e.what() + "; the app is not started",
               {{"step", std::string("config")}, {"error", std::string(e.what())}, {"code", std::string(errc_name(e.code()))}});
    logs.close(std::chrono::seconds(1));
    return exit_code(e.code());
  }
  // The console: a copy of stderr, when stderr itself is captured below.
  UniqueFd console(o.console_fd == 2 ? ::fcntl(2, F_DUPFD_CLOEXEC, 3) : -1);
  LogOptions lo;
  lo.buffer_bytes = size_t{cfg.logs.buffer_kib} << 10;
  lo.console_fd = console ? console.get() : o.console_fd;
  LogRouter logs(lo);
  RunOptions with_start = o;
  with_start.start_ns = start_ns;
  int status;
  {
    std::optional<StderrCapture> capture;
    if (console) capture.emplace(console.get(), logs);
    Sequence seq(with_start, std::move(cfg), logs);
    status = seq.run();
  }
  logs.close(lo.flush_timeout);
  return status;
}

}  // namespace shield_nitro::supervisor
