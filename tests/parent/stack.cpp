#include "stack.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/key_policy.h"
#include "shield_nitro/net/endpoint.h"
#include "support/kms_json.h"

namespace sn_test {

using namespace shield_nitro;
namespace fs = std::filesystem;

namespace {

int free_tcp_port() {
  net::UniqueFd fd = net::listen(net::Endpoint::tcp("127.0.0.1", 0));
  return static_cast<int>(net::bound_endpoint(fd.get(), net::Endpoint::tcp("127.0.0.1", 0)).port);
}

bool can_connect(const net::Endpoint& ep) {
  try {
    net::connect(ep, std::chrono::milliseconds(200));
    return true;
  } catch (const Error&) {
    return false;
  }
}

void run_ok(const std::vector<std::string>& argv, const std::string& dir) {
  RunResult r = run(argv, dir);
  if (r.status != 0) throw std::runtime_error(argv[1] + " " + argv[2] + " failed: " + r.err);
}

kms::KmsClient admin_client(const Stack& s) {
  auto admin = kms::credentials_from_file(s.credentials_file(), "admin");
  if (!admin) throw std::runtime_error("kms-local wrote no admin profile");
  kms::KmsClientOptions o;
  o.endpoint = s.kms_url() + "/";
  return kms::KmsClient(o, std::make_shared<kms::StaticCredentials>(std::move(*admin)));
}

}  // namespace

Stack::Stack() {
  char tmpl[] = "/tmp/snparent.XXXXXX";  // short: unix socket paths stay under 108 bytes
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  fs::create_directories(enclave_record_dir());
  fs::create_directories(kms_record_dir());
  pcr0_ = os_random().bytes(48);
  const std::string cli = SN_CLI;

  run_ok({cli, "nsm-sim", "init", dir_ + "/nsm", "--pcr", "0=" + hex_encode(pcr0_)}, dir_);
  nsm_ = std::make_unique<Process>(std::vector<std::string>{cli, "nsm-sim", "serve", dir_ + "/nsm"}, dir_ + "/nsm-sim.log");
  nsm_->wait_ready([&] { return fs::exists(dir_ + "/nsm/nsm.sock"); });

  int port = free_tcp_port();
  kms_url_ = "http://127.0.0.1:" + std::to_string(port);
  kms_ = std::make_unique<Process>(
      std::vector<std::string>{cli, "kms-local", "--listen", "127.0.0.1:" + std::to_string(port), "--state", dir_ + "/kms",
                               "--trust-root", root_pem_path(), "--account", kAccount},
      dir_ + "/kms-local.log");
  kms_->wait_ready([&] { return can_connect(net::Endpoint::tcp("127.0.0.1", static_cast<uint16_t>(port))); });

  proxy_ = std::make_unique<Process>(
      std::vector<std::string>{cli, "proxy", "--listen", "unix:" + dir_ + "/kms.sock", "--to", "127.0.0.1:" + std::to_string(port),
                               "--record", kms_record_dir()},
      dir_ + "/proxy.log");
  proxy_->wait_ready([&] { return fs::exists(dir_ + "/kms.sock"); });

  enclave_ = std::make_unique<Process>(
      std::vector<std::string>{SN_ENCLAVE, "serve", "--listen", "unix:" + dir_ + "/enc.sock", "--nsm", "sim:" + dir_ + "/nsm",
                               "--kms-endpoint", kms_url_, "--kms-via", "unix:" + dir_ + "/kms.sock", "--kms-region", "us-east-1"},
      dir_ + "/enclave.log");
  enclave_->wait_ready([&] { return can_connect(net::Endpoint::unix_path(dir_ + "/enc.sock")); });

  relay_ = std::make_unique<RecordingRelay>(dir_ + "/parent.sock", dir_ + "/enc.sock", enclave_record_dir());
}

Stack::~Stack() {
  relay_.reset();
  enclave_.reset();
  proxy_.reset();
  kms_.reset();
  nsm_.reset();
  if (!std::getenv("SN_KEEP_TEST_DIR")) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

attest::TrustAnchor Stack::root() const { return attest::TrustAnchor::from_pem(read_text_file(root_pem_path())); }

kms::Credentials Stack::enclave_credentials() const {
  auto c = kms::credentials_from_file(credentials_file(), "enclave");
  if (!c) throw std::runtime_error("kms-local wrote no enclave profile");
  return std::move(*c);
}

KmsKey Stack::make_key(const Bytes& policy_pcr0, const std::map<std::string, std::string>& context) {
  kms::KmsClient admin = admin_client(*this);
  KmsKey k;
  k.arn = kms_call(admin, "CreateKey", nlohmann::json::object())["KeyMetadata"]["Arn"];
  kms::DataKeyResult dk = admin.generate_data_key(k.arn, 32, context);
  k.data_key = std::move(dk.plaintext);
  k.blob = std::move(dk.ciphertext_blob);
  kms::KeyPolicyRequest req;
  req.pcrs[0] = policy_pcr0;
  req.role_arn = kEnclaveRole;
  req.admin_arn = kAdminRole;
  req.account = kAccount;
  kms_call(admin, "PutKeyPolicy", {{"KeyId", k.arn}, {"PolicyName", "default"}, {"Policy", kms::generate_key_policy(req)}});
  return k;
}

void Stack::stop_recording() {
  relay_->stop();
  proxy_->stop();
}

}  // namespace sn_test
