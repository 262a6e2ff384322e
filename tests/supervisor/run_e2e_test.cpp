// `shield-nitro-enclave run` end to end: the built trusted program against a fake host agent
// (this test, on the simulated vsock's unix socket for vsock://3:7000), the NSM simulator
// (sim:DIR) and kms-local over TLS on the simulated vsock://3:8000 (what the KMS proxy would
// relay to). The sealed artifact is made with kms-local's GenerateDataKey under an attested key
// policy pinning the simulated enclave's PCRs. Checks the order of the logged steps, that the app
// sees the plaintext (0400, its own user), and that each failing step means the app never runs.
// As root the program runs in its own mount namespace (unshare) and mounts a real tmpfs.
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "kms/local_stack.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/kms_local/http_server.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/sealed/sealed.h"
#include "support/kms_json.h"
#include "support/process.h"
#include "support/tls_cert.h"

namespace {

using namespace shield_nitro;
using Json = nlohmann::json;

std::string sha256_hex(ByteView b) {
  uint8_t md[SHA256_DIGEST_LENGTH];
  SHA256(b.data(), b.size(), md);
  return hex_encode(ByteView(md, sizeof md));
}

// The host agent's side of the host link, as the contract says, with switches for the refusals.
class FakeHost {
 public:
  struct Served {
    Bytes bytes;
    std::string announced_sha256;  // empty: the real digest
    bool header_pin = false;       // announce the header's digest (a header_sha256 pin)
  };

  explicit FakeHost(const std::string& socket_path) : listener_(net::listen(net::Endpoint::unix_path(socket_path))) {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error("pipe");
    stop_r_.reset(p[0]);
    stop_w_.reset(p[1]);
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~FakeHost() {
    (void)!::write(stop_w_.get(), "x", 1);
    thread_.join();
    for (auto& t : conns_) t.join();
  }

  kms::Credentials credentials;
  bool refuse_credentials = false;
  std::string marks_dir;  // set: each credentials request leaves MARKS/credentials-N (the app can wait for it)
  std::map<std::string, Served> artifacts;

  std::vector<std::string> ops() {
    std::lock_guard<std::mutex> l(mu_);
    return ops_;
  }
  std::vector<std::string> log_lines() {
    std::lock_guard<std::mutex> l(mu_);
    return logs_;
  }

 private:
  void accept_loop() {
    for (;;) {
      pollfd p[2] = {{listener_.get(), POLLIN, 0}, {stop_r_.get(), POLLIN, 0}};
      ::poll(p, 2, -1);
      if (p[1].revents) return;
      int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) conns_.emplace_back([this, fd] { serve(UniqueFd(fd)); });
    }
  }

  void serve(UniqueFd fd) {
    using namespace host_link;
    const auto t = std::chrono::seconds(10);
    try {
      Request r = parse_request(read_line(fd.get(), t, "enclave"));
      {
        std::lock_guard<std::mutex> l(mu_);
        ops_.push_back(std::string(op_name(r.op)) + (r.name.empty() ? "" : " " + r.name) +
                       (r.op == Op::kConnect ? " " + r.host + ":" + std::to_string(r.port) : ""));
      }
      switch (r.op) {
        case Op::kCredentials:
          if (!marks_dir.empty()) std::ofstream(marks_dir + "/credentials-" + std::to_string(++credentials_served_));
          if (refuse_credentials)
            write_line(fd.get(), answer_error("no role credentials on this instance"), t);
          else
            write_credentials_answer(fd.get(), credentials, t);
          return;
        case Op::kArtifact: {
          auto it = artifacts.find(r.name);
          if (it == artifacts.end()) {
            write_line(fd.get(), answer_error("no artifact " + r.name), t);
            return;
          }
          const Served& a = it->second;
          std::string digest = !a.announced_sha256.empty() ? a.announced_sha256
                               : a.header_pin             ? sealed::parse_prefix(a.bytes).prefix_digest_hex()
                                                          : sha256_hex(a.bytes);
          write_line(fd.get(), answer_artifact({a.bytes.size(), a.header_pin ? "" : digest, a.header_pin ? digest : ""}), t);
          write_all(fd.get(), a.bytes.data(), a.bytes.size());
          return;
        }
        case Op::kLogs:
          write_line(fd.get(), answer_ok(), t);
          for (;;) {
            std::string line = read_line(fd.get(), std::chrono::seconds(60), "enclave logs");
            std::lock_guard<std::mutex> l(mu_);
            logs_.push_back(line);
          }
        case Op::kConnect:
          write_line(fd.get(), answer_error("egress to " + r.host + " is not allowed"), t);
          return;
      }
    } catch (const Error&) {
      // The enclave closed (the end of the log stream) or sent garbage: this connection ends.
    }
  }

  UniqueFd listener_, stop_r_, stop_w_;
  std::thread thread_;
  std::vector<std::thread> conns_;  // only the accept thread adds, only the destructor joins
  std::mutex mu_;
  std::vector<std::string> ops_, logs_;
  std::atomic<int> credentials_served_{0};
};

std::vector<Json> json_lines(const std::string& text) {
  std::vector<Json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{') out.push_back(Json::parse(line));
  return out;
}

// The sequence of steps and events as logged: "step:config", ..., "artifact_ready", "app_started".
std::vector<std::string> sequence(const std::vector<Json>& lines) {
  std::vector<std::string> out;
  for (const auto& j : lines) {
    if (j.value("source", "") != "supervisor") continue;
    std::string ev = j.value("event", "");
    if (ev == "step") out.push_back("step:" + j.value("step", ""));
    else if (ev == "artifact_ready" || ev == "app_started" || ev == "app_exited" || ev == "start_failed") out.push_back(ev);
  }
  return out;
}

std::optional<Json> first_event(const std::vector<Json>& lines, const std::string& name) {
  for (const auto& j : lines)
    if (j.value("event", "") == name) return j;
  return std::nullopt;
}

std::vector<std::string> app_stdout(const std::vector<Json>& lines) {
  std::vector<std::string> out;
  for (const auto& j : lines)
    if (j.value("source", "") == "app" && j.value("stream", "") == "stdout") out.push_back(j["line"]);
  return out;
}

using sn_test::free_port;
using sn_test::read_text;

class SupervisorRun : public ::testing::Test {
 protected:
  void SetUp() override {
    vsock_dir_ = stack_.dir / "vs";
    std::filesystem::create_directories(vsock_dir_);
    // The app runs as nobody (as root here): it must reach the storage folder and leave its marker.
    namespace fs = std::filesystem;
    fs::permissions(stack_.dir.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    fs::create_directories(stack_.dir / "marks");
    fs::permissions(stack_.dir / "marks", fs::perms::all);
    nsm_server_ = stack_.sim->serve(stack_.dir / "nsm/nsm.sock");
    make_tls();
    // kms-local over TLS: where the KMS proxy (vsock://3:8000) leads, or (with the real host
    // agent) what its proxy relays to.
    kms::HttpServerOptions so;
    so.listen = fake_host() ? "unix:" + vsock_dir_ + "/3_8000.sock" : "127.0.0.1:0";
    so.tls_cert = stack_.dir / "srv.pem";
    so.tls_key = stack_.dir / "srv.key";
    kms_tls_ = std::make_unique<kms::HttpServer>(so, [this](const kms::HttpServerRequest& r) { return stack_.kms->handle(r); });
    kms_tls_->start();
    if (!fake_host()) return;
    host_ = std::make_unique<FakeHost>(vsock_dir_ + "/3_7000.sock");
    host_->credentials = stack_.credentials("enclave");
    host_->credentials.expiration_s = system_clock().now_s() + 3600;
  }

  // A TLS certificate for kms.us-east-1.amazonaws.com under a throwaway CA (TLS ends inside
  // the enclave, so the runtime config accepts only https endpoints).
  void make_tls() { ASSERT_TRUE(sn_test::make_test_tls(stack_.dir.path(), "kms.us-east-1.amazonaws.com")); }

  // A new key (the admin may still use it until pin() puts the attested policy on it).
  std::string make_key() {
    return kms_call(*stack_.admin, "CreateKey", {{"Description", "supervisor e2e"}})["KeyMetadata"]["Arn"];
  }
  // plaintext sealed under a fresh data key of key (the producer's side: GenerateDataKey).
  Bytes seal_under(const std::string& key, const std::string& plaintext, const kms::EncryptionContext& context) {
    auto dk = stack_.admin->generate_data_key(key, 32, context);
    return sealed::seal(as_bytes(plaintext), {dk.key_id, dk.ciphertext_blob, std::move(dk.plaintext)}, context);
  }
  // The attested key policy for the simulated enclave, its role's calls pinned to `context`.
  void pin(const std::string& key, const kms::EncryptionContext& context) { stack_.put_policy(key, context); }

  virtual bool fake_host() const { return true; }
  std::string storage() const { return stack_.dir / "storage"; }
  bool root() const { return ::geteuid() == 0; }

  // The runtime config: one artifact "model" from the host unless sha256 is empty (the digest
  // pinned under pin_key_).
  std::string config(const std::string& key, const std::string& sha256, const std::string& extra_app = "",
                     const std::string& kms_extra = "", const std::string& extra_top = "", const std::string& source = "host") {
    std::string user = root() ? "65534:65534" : std::to_string(::getuid()) + ":" + std::to_string(::getgid());
    std::string y = "version: 1\napp:\n  user: \"" + user + "\"\n  env: {MODEL: " + storage() + "/model.bin}\n" + extra_app +
                    "host: {cid: 3, port: 7000}\n"
                    "kms: {region: us-east-1, proxy_port: 8000, ca_file: " + stack_.dir / "ca.pem" + kms_extra + "}\n" + extra_top +
                    "storage: {path: " + storage() + ", size_mib: " + std::to_string(storage_mib_) + "}\n"
                    "logs: {buffer_kib: 256}\n";
    if (!sha256.empty())
      y += "artifacts:\n  - name: model\n    source: " + source + "\n    path: " + storage() + "/model.bin\n    key_id: " + key +
           "\n    encryption_context: {purpose: model}\n    " + pin_key_ + ": " + sha256 + "\n";
    std::string path = stack_.dir / "runtime.yaml";
    std::ofstream(path) << y;
    return path;
  }

  // The command line: the program (in its own mount namespace as root), the app after "--".
  // The app leaves a marker so a test can tell it never ran.
  std::vector<std::string> argv_for(const std::string& config_path, const std::string& script,
                                    const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv;
    if (root()) argv = {"/usr/bin/unshare", "--mount", "--propagation", "private"};
    argv.insert(argv.end(), {"/usr/bin/env", "SHIELD_NITRO_VSOCK_DIR=" + vsock_dir_});
    if (!root()) argv.push_back("SHIELD_NITRO_TEST_PLAIN_STORAGE=1");
    argv.insert(argv.end(), {SN_ENCLAVE, "run", "--config", config_path, "--nsm", "sim:" + stack_.dir / "nsm"});
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), {"--", "/bin/sh", "-c", "touch " + marker() + "; " + script});
    return argv;
  }
  // Runs the program to its end.
  sn_test::RunResult run(const std::string& config_path, const std::string& script, const std::vector<std::string>& flags = {}) {
    return sn_test::run(argv_for(config_path, script, flags), stack_.dir.path());
  }
  std::string marker() const { return stack_.dir / "marks/app-ran"; }
  bool app_ran() const { return std::filesystem::exists(marker()); }

  const kms::EncryptionContext ctx_{{"purpose", "model"}};
  int storage_mib_ = 8;
  std::string pin_key_ = "sha256";  // the artifact's pin in config(): sha256 or header_sha256
  sn_test::LocalStack stack_;
  std::string vsock_dir_;
  std::unique_ptr<nsm::SimulatorServer> nsm_server_;
  std::unique_ptr<kms::HttpServer> kms_tls_;
  std::unique_ptr<FakeHost> host_;
};

TEST_F(SupervisorRun, StepsInOrderThenTheAppWithItsPlaintext) {
  const std::string weights = "proprietary weights " + std::string(100000, 'w');
  std::string key = make_key();
  Bytes sealed_file = seal_under(key, weights, ctx_);
  pin(key, ctx_);
  host_->artifacts["model"] = {sealed_file, ""};
  auto r = run(config(key, sha256_hex(sealed_file), "  workdir: /tmp\n"),
               "sha256sum \"$MODEL\" | cut -d' ' -f1; stat -c '%a %u' \"$MODEL\"; id -u; pwd");
  auto lines = json_lines(r.err);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(sequence(lines),
            (std::vector<std::string>{"step:config", "step:user", "step:loopback", "step:nsm", "step:recipient_key",
                                      "step:credentials", "step:storage", "artifact_ready", "app_started", "app_exited"}));
  std::string uid = root() ? "65534" : std::to_string(::getuid());
  EXPECT_EQ(app_stdout(lines), (std::vector<std::string>{sha256_hex(as_bytes(weights)), "400 " + uid, uid, "/tmp"})) << r.err;
  EXPECT_TRUE(app_ran());
  EXPECT_EQ(first_event(lines, "artifact_ready")->value("bytes", 0), static_cast<int64_t>(weights.size()));
  for (const auto& j : lines)
    if (j.value("step", "") == "storage") {
      EXPECT_EQ(j.value("plain", -1), root() ? 0 : 1) << j.dump();
      // As root, a kernel with huge pages for tmpfs gets them (docs/performance.md "Runtime").
      const bool thp = std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
      EXPECT_EQ(j.value("huge_pages", -1), root() && thp ? 1 : 0) << j.dump();
    }
  // The host agent was asked in the contract's terms and got the same records on its log stream.
  auto ops = host_->ops();
  EXPECT_NE(std::find(ops.begin(), ops.end(), "logs"), ops.end());
  EXPECT_NE(std::find(ops.begin(), ops.end(), "credentials"), ops.end());
  EXPECT_NE(std::find(ops.begin(), ops.end(), "artifact model"), ops.end());
  std::vector<Json> host_lines;
  for (const auto& l : host_->log_lines()) host_lines.push_back(Json::parse(l));
  EXPECT_EQ(sequence(host_lines), sequence(lines));
  EXPECT_EQ(app_stdout(host_lines), app_stdout(lines));
  // Nothing the app could see holds the data key or the credentials' secret.
  EXPECT_EQ(r.err.find(to_string(host_->credentials.secret_access_key.view())), std::string::npos);
}

// An artifact in the image (source: a path) is placed the same way; one whose bytes were altered
// fails to authenticate even when the config pins the altered file's digest: no app.
TEST_F(SupervisorRun, AnArtifactFromTheImageAndOneThatFailsToAuthenticate) {
  std::string key = make_key();
  Bytes sealed_file = seal_under(key, "weights in the image", ctx_);
  pin(key, ctx_);
  std::string in_image = stack_.dir / "model.sealed";
  std::ofstream(in_image, std::ios::binary).write(reinterpret_cast<const char*>(sealed_file.data()), sealed_file.size());
  auto r = run(config(key, sha256_hex(sealed_file), "", "", "", in_image), "cat \"$MODEL\"; echo");
  ASSERT_EQ(r.status, 0) << r.err;
  auto lines = json_lines(r.err);
  EXPECT_EQ(app_stdout(lines), (std::vector<std::string>{"weights in the image"}));
  auto ready = first_event(lines, "artifact_ready");
  ASSERT_TRUE(ready) << r.err;
  EXPECT_NE(ready->value("line", "").find("from " + in_image), std::string::npos);
  auto ops = host_->ops();
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "artifact model"), 0);
  std::filesystem::remove(marker());

  sealed_file.back() ^= 1;  // in the stream (its last tag), past the header KMS checks
  std::ofstream(in_image, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(sealed_file.data()), sealed_file.size());
  r = run(config(key, sha256_hex(sealed_file), "", "", "", in_image), "true");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_FALSE(app_ran());
  auto failed = first_event(json_lines(r.err), "start_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_EQ((*failed)["step"], "artifact model");
  EXPECT_EQ((*failed)["code"], "auth") << failed->dump();
}

// SIGTERM while the start waits (here for credentials): it stops at once, the app never runs.
TEST_F(SupervisorRun, SigtermDuringTheStartStopsIt) {
  std::string key = make_key();
  Bytes sealed_file = seal_under(key, "weights", ctx_);
  host_->artifacts["model"] = {sealed_file, ""};
  host_->refuse_credentials = true;
  std::string log = stack_.dir / "run.log";
  {
    sn_test::Process p(argv_for(config(key, sha256_hex(sealed_file)), "true", {"--credentials-wait", "600"}), log);
    p.wait_ready([&] { return read_text(log).find("\"waiting\"") != std::string::npos; });
  }  // SIGTERM (and a wait for the exit)
  auto failed = first_event(json_lines(read_text(log)), "start_failed");
  ASSERT_TRUE(failed) << read_text(log);
  EXPECT_EQ((*failed)["step"], "credentials");
  EXPECT_EQ((*failed)["signal"], SIGTERM);
  EXPECT_FALSE(app_ran());
}

TEST_F(SupervisorRun, TheAppsExitStatusIsTheSupervisors) {
  auto r = run(config("", ""), "exit 42");
  EXPECT_EQ(r.status, 42) << r.err;
  auto exited = first_event(json_lines(r.err), "app_exited");
  ASSERT_TRUE(exited);
  EXPECT_EQ((*exited)["status"], 42);
}

// A host that serves another file (sealed under the same key, so KMS would release it) is
// refused on the pinned digest: announced honestly, or lied about and caught at the end.
TEST_F(SupervisorRun, ASubstitutedArtifactIsRefusedAndTheAppNeverRuns) {
  std::string key = make_key();
  Bytes pinned = seal_under(key, "the vendor's model", ctx_);
  Bytes other = seal_under(key, "a substitute", ctx_);
  pin(key, ctx_);
  std::string cfg = config(key, sha256_hex(pinned));

  host_->artifacts["model"] = {other, ""};
  auto r = run(cfg, "true");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_FALSE(app_ran());
  auto failed = first_event(json_lines(r.err), "start_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_EQ((*failed)["step"], "artifact model");
  EXPECT_NE((*failed)["line"].get<std::string>().find("pins sha256 " + sha256_hex(pinned)), std::string::npos) << failed->dump();
  EXPECT_FALSE(first_event(json_lines(r.err), "app_started"));

  host_->artifacts["model"] = {other, sha256_hex(pinned)};  // the host lies about the digest
  r = run(cfg, "true");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_FALSE(app_ran());
  failed = first_event(json_lines(r.err), "start_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_NE((*failed)["line"].get<std::string>().find("sealed file's sha256 is " + sha256_hex(other)), std::string::npos)
      << failed->dump();
  EXPECT_FALSE(first_event(json_lines(r.err), "artifact_ready"));
}

// The recommended header pin: the file loads without a whole-file digest; another file sealed
// under the same KMS key (KMS would release its key) is refused on its header, whether the host
// announces its real header digest or lies.
TEST_F(SupervisorRun, AHeaderPinnedArtifactLoadsAndASubstituteIsRefused) {
  std::string key = make_key();
  Bytes pinned = seal_under(key, "the vendor's model", ctx_);
  Bytes other = seal_under(key, "a substitute", ctx_);
  pin(key, ctx_);
  pin_key_ = "header_sha256";
  const std::string header = sealed::parse_prefix(pinned).prefix_digest_hex();
  std::string cfg = config(key, header);

  host_->artifacts["model"] = {pinned, "", true};
  auto r = run(cfg, "cat \"$MODEL\"; echo");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(app_stdout(json_lines(r.err)), (std::vector<std::string>{"the vendor's model"})) << r.err;

  host_->artifacts["model"] = {other, "", true};
  r = run(cfg, "true");
  EXPECT_EQ(r.status, 1) << r.err;
  auto failed = first_event(json_lines(r.err), "start_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_NE((*failed)["line"].get<std::string>().find("runtime config pins header_sha256 " + header), std::string::npos)
      << failed->dump();

  host_->artifacts["model"] = {other, "", false};  // announces a whole-file digest instead
  r = run(cfg, "true");
  EXPECT_EQ(r.status, 1) << r.err;
  failed = first_event(json_lines(r.err), "start_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_NE((*failed)["line"].get<std::string>().find("offers a sealed file with no header_sha256"), std::string::npos)
      << failed->dump();

  host_->artifacts["model"] = {other, header, true};  // lies: the enclave reads the header itself
  r = run(cfg, "true");
  EXPECT_EQ(r.status, 1) << r.err;
  failed = first_event(json_lines(r.err), "start_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_NE((*failed)["line"].get<std::string>().find("header_sha256 is " + sealed::parse_prefix(other).prefix_digest_hex()),
            std::string::npos)
      << failed->dump();
  EXPECT_FALSE(first_event(json_lines(r.err), "artifact_ready"));
}

// KMS refuses the key (the policy pins another encryption context): no key, no app.
TEST_F(SupervisorRun, AKmsRefusalMeansTheAppNeverRuns) {
  std::string key = make_key();
  Bytes sealed_file = seal_under(key, "weights", ctx_);
  pin(key, {{"purpose", "something-else"}});
  host_->artifacts["model"] = {sealed_file, ""};
  auto r = run(config(key, sha256_hex(sealed_file)), "true");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_FALSE(app_ran());
  auto failed = first_event(json_lines(r.err), "start_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_EQ((*failed)["step"], "artifact model");
  EXPECT_NE((*failed)["line"].get<std::string>().find("AccessDenied"), std::string::npos) << failed->dump();
}

// No credentials from the host: retried, logged, bounded; then the app never runs.
TEST_F(SupervisorRun, NoCredentialsMeansTheAppNeverRuns) {
  std::string key = make_key();
  Bytes sealed_file = seal_under(key, "weights", ctx_);
  pin(key, ctx_);
  host_->artifacts["model"] = {sealed_file, ""};
  host_->refuse_credentials = true;
  auto r = run(config(key, sha256_hex(sealed_file)), "true", {"--credentials-wait", "1"});
  EXPECT_NE(r.status, 0) << r.err;
  EXPECT_FALSE(app_ran());
  auto lines = json_lines(r.err);
  auto failed = first_event(lines, "start_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_EQ((*failed)["step"], "credentials");
  EXPECT_NE((*failed)["line"].get<std::string>().find("no role credentials on this instance"), std::string::npos);
  auto waiting = first_event(lines, "waiting");
  ASSERT_TRUE(waiting) << r.err;
  auto ops = host_->ops();
  EXPECT_GT(std::count(ops.begin(), ops.end(), "credentials"), 1) << "retried";
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "artifact model"), 0);
}

// A command that cannot be executed is one exec_failed, exit 3 (no restart loop).
TEST_F(SupervisorRun, ACommandThatCannotRunIsExitThree) {
  auto argv = argv_for(config("", "", "  restart: on-failure\n"), "true");
  argv.erase(std::find(argv.begin(), argv.end(), "--") + 1, argv.end());
  argv.push_back(stack_.dir / "no-such-app");
  auto r = sn_test::run(argv, stack_.dir.path());
  EXPECT_EQ(r.status, 3) << r.err;
  auto lines = json_lines(r.err);
  auto failed = first_event(lines, "exec_failed");
  ASSERT_TRUE(failed) << r.err;
  EXPECT_NE((*failed)["line"].get<std::string>().find("no-such-app: No such file or directory"), std::string::npos);
  EXPECT_FALSE(first_event(lines, "app_started"));
}

TEST(RunCli, UsageErrorsAreExitTwo) {
  shield_nitro::test_support::TempDir d;
  auto r = sn_test::run({SN_ENCLAVE, "run", "--", "/bin/true"}, d.path());
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--config"), std::string::npos) << r.err;
  r = sn_test::run({SN_ENCLAVE, "run", "--config", d / "runtime.yaml"}, d.path());
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("command"), std::string::npos) << r.err;
}

TEST_F(SupervisorRun, AMalformedConfigIsOneStartFailure) {
  std::string path = stack_.dir / "bad.yaml";
  std::ofstream(path) << "version: 1\napp: {restart: sometimes}\n";
  auto r = run(path, "true");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_FALSE(app_ran());
  auto lines = json_lines(r.err);
  ASSERT_EQ(sequence(lines), (std::vector<std::string>{"start_failed"})) << r.err;
  EXPECT_NE(lines[0]["line"].get<std::string>().find("app.restart"), std::string::npos) << lines[0].dump();
}

// The endpoints the runtime adds, as an unmodified app sees them: Debian's botocore gets its
// credentials from the container-credentials endpoint and calls KMS GenerateRandom through the
// attested endpoint; urllib goes through the egress proxy (an allowlisted destination is asked of
// the host, which refuses here; another is refused inside); the app's server is reached through
// the ingress forwarder's vsock port; the role credentials are refreshed before they expire.
TEST_F(SupervisorRun, TheAppGetsAttestedKmsEgressAndIngress) {
  const uint16_t api = free_port(), proxy = free_port(), app_port = free_port();
  std::string script = stack_.dir / "app.py";
  std::ofstream(script) << R"PY(
import http.server, json, os, sys, time, urllib.error, urllib.request
import botocore.session
marks = sys.argv[1]
req = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                             headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
print("local credentials", "AccessKeyId" in json.load(urllib.request.urlopen(req, timeout=10)))
kms = botocore.session.get_session().create_client("kms", region_name=os.environ["AWS_REGION"],
                                                   endpoint_url=os.environ["AWS_ENDPOINT_URL_KMS"])
print("random", len(kms.generate_random(NumberOfBytes=16)["Plaintext"]))
def fetch(url):
    try:
        return str(urllib.request.urlopen(url, timeout=10).status)
    except urllib.error.HTTPError as e:
        return str(e.code)
print("egress allowed", fetch("http://allowed.example/"))
print("egress other", fetch("http://other.example/"))
for _ in range(2000):
    if os.path.exists(marks + "/credentials-2"):
        print("credentials refreshed")
        break
    time.sleep(0.01)
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the app"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), Hello)
print("serving", flush=True)
server.handle_request()
)PY";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all | std::filesystem::perms::others_read);
  host_->marks_dir = stack_.dir / "marks";
  host_->credentials.expiration_s = system_clock().now_s() + 600;  // inside the 15-minute refresh margin
  std::string cfg = config("", "", "", ", api_port: " + std::to_string(api),
                           "egress: {proxy_port: " + std::to_string(proxy) + ", allow: [\"allowed.example:80\"]}\n"
                           "ingress:\n  - {vsock_port: 5005, app_port: " + std::to_string(app_port) + "}\n");
  std::string log = stack_.dir / "run.log";
  sn_test::Process p(argv_for(cfg, "exec /usr/bin/python3 " + script + " " + stack_.dir / "marks " + std::to_string(app_port)), log);
  p.wait_ready([&] { return read_text(log).find("\"serving\"") != std::string::npos; });

  // A client of the ingress port (the enclave's vsock port 5005, CID 16 under the simulator).
  UniqueFd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::string path = vsock_dir_ + "/16_5005.sock";
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << path;
  std::string get = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(::write(c.get(), get.data(), get.size()), static_cast<ssize_t>(get.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::read(c.get(), buf, sizeof buf)) > 0;) answer.append(buf, static_cast<size_t>(n));
  EXPECT_NE(answer.find("hello from the app"), std::string::npos) << answer;

  for (int i = 0; i < 2000 && p.running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(p.running()) << read_text(log);
  auto lines = json_lines(read_text(log));
  EXPECT_EQ(sequence(lines), (std::vector<std::string>{"step:config", "step:user", "step:loopback", "step:nsm",
                                                       "step:recipient_key", "step:credentials", "step:kms_endpoint",
                                                       "step:ingress", "step:egress", "app_started", "app_exited"}));
  EXPECT_EQ(app_stdout(lines), (std::vector<std::string>{"local credentials True", "random 16", "egress allowed 403",
                                                         "egress other 403", "credentials refreshed", "serving"}))
      << read_text(log);
  EXPECT_TRUE(first_event(lines, "credentials_refreshed"));
  EXPECT_EQ(first_event(lines, "app_exited")->value("status", -1), 0);
  auto ops = host_->ops();
  EXPECT_NE(std::find(ops.begin(), ops.end(), "connect allowed.example:80"), ops.end());
  for (const auto& op : ops) EXPECT_EQ(op.find("other.example"), std::string::npos) << "refused inside: never asked of the host";
  // The proxy's own log line about the refusal is a record too (the supervisor's stderr).
  bool refusal_logged = false;
  for (const auto& j : lines)
    refusal_logged = refusal_logged || (j.value("source", "") == "supervisor" && j.value("stream", "") == "stderr" &&
                                        j.value("line", "").find("other.example") != std::string::npos);
  EXPECT_TRUE(refusal_logged) << read_text(log);
}

// The same against the real host agent (`shield-nitro host run`): credentials from its
// credentials file, the sealed file it serves, KMS through its proxy, and the supervisor's
// records in its log file under the enclave's name.
class SupervisorWithHostAgent : public SupervisorRun {
 protected:
  bool fake_host() const override { return false; }
};

TEST_F(SupervisorWithHostAgent, RunsTheAppWithItsArtifact) {
  std::string key = make_key();
  Bytes sealed_file = seal_under(key, "weights served by the host agent", ctx_);
  pin(key, ctx_);
  std::string served = stack_.dir / "model.sealed";
  std::ofstream(served, std::ios::binary).write(reinterpret_cast<const char*>(sealed_file.data()), sealed_file.size());
  std::string runtime = config(key, sha256_hex(sealed_file));
  std::string host_logs = stack_.dir / "host-logs.jsonl";
  std::string host_yaml = stack_.dir / "host.yaml";
  std::string kms_target = "127.0.0.1:" + std::to_string(kms_tls_->port());
  std::ofstream(host_yaml) << "enclaves:\n  - name: app\n    cid: 16\n    runtime: " << runtime
                           << "\n    artifacts: {model: " << served << "}\n    logs: \"file:" << host_logs << "\"\n"
                           << "kms: {target: \"" << kms_target << "\"}\n"
                           << "credentials: \"file:" << stack_.kms->credentials_path() << "\"\n";
  sn_test::Process host({"/usr/bin/env", "SHIELD_NITRO_VSOCK_DIR=" + vsock_dir_, "SHIELD_NITRO_VSOCK_CID=3", "AWS_PROFILE=enclave",
                         SN_CLI, "host", "run", "--config", host_yaml},
                        stack_.dir / "host.log");
  host.wait_ready([&] {
    return std::filesystem::exists(vsock_dir_ + "/3_7000.sock") && std::filesystem::exists(vsock_dir_ + "/3_8000.sock");
  });
  auto r = run(runtime, "cat \"$MODEL\"; echo");
  ASSERT_EQ(r.status, 0) << r.err << read_text(stack_.dir / "host.log");
  auto lines = json_lines(r.err);
  EXPECT_EQ(app_stdout(lines), (std::vector<std::string>{"weights served by the host agent"}));
  host.stop();
  std::vector<Json> at_host = json_lines(read_text(host_logs));
  ASSERT_FALSE(at_host.empty()) << read_text(stack_.dir / "host.log");
  for (const auto& j : at_host) EXPECT_EQ(j.value("enclave", ""), "app") << j.dump();
  EXPECT_EQ(sequence(at_host), sequence(lines));
  EXPECT_EQ(app_stdout(at_host), app_stdout(lines));
}

// A 64 MiB artifact streamed from the host agent into the tmpfs; its artifact_ready event reports
// the time taken and the part KMS took (bench_runtime measures the throughput).
TEST_F(SupervisorRun, ALargeArtifactFromTheHostReportsItsTimings) {
  storage_mib_ = 80;
  std::string weights(64 << 20, '\0');
  for (size_t i = 0; i < weights.size(); i += 4096) weights[i] = static_cast<char>(i >> 12);
  std::string key = make_key();
  Bytes sealed_file = seal_under(key, weights, ctx_);
  pin(key, ctx_);
  host_->artifacts["model"] = {sealed_file, ""};
  auto r = run(config(key, sha256_hex(sealed_file)), "true");
  ASSERT_EQ(r.status, 0) << r.err;
  auto ready = first_event(json_lines(r.err), "artifact_ready");
  ASSERT_TRUE(ready);
  int64_t ms = (*ready)["ms"].get<int64_t>(), kms_ms = (*ready)["kms_ms"].get<int64_t>();
  EXPECT_GE(kms_ms, 0);
  EXPECT_GE(ms, kms_ms);
}

// app_started says how long the supervisor took from its main to the app's start (bench_runtime's
// BM_StartToApp measures it against the issue's < 50 ms).
TEST_F(SupervisorRun, AppStartedReportsTheTimeSinceTheSupervisorStarted) {
  auto r = run(config("", ""), "true");
  ASSERT_EQ(r.status, 0) << r.err;
  auto started = first_event(json_lines(r.err), "app_started");
  ASSERT_TRUE(started);
  EXPECT_GT((*started)["since_start_us"].get<int64_t>(), 0);
}

}  // namespace
