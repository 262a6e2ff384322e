// End to end with real processes: `shield-nitro kms-local` driven by the AWS CLI and by
// `shield-nitro kms`, a policy from `shield-nitro policy`, and kill -9 during CreateKey/Encrypt.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "support/kms_json.h"
#include "support/process.h"
#include "support/temp_dir.h"


using namespace shield_nitro;
using namespace shield_nitro::kms;
namespace fs = std::filesystem;

namespace {

int free_port() {
  static int next = 20000 + (::getpid() % 20000);
  return next++;
}

bool port_open(int port) {
  std::string cmd = "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) + " 2>/dev/null";
  return std::system(("bash -c '" + cmd + "'").c_str()) == 0;
}

// Waits until `port` accepts connections; false if the child ended first or 10 s passed.
bool wait_port(int port, sn_test::Process& child) {
  for (int i = 0; i < 200; ++i) {
    if (port_open(port)) return true;
    if (!child.running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return port_open(port);
}

struct Proc {
  int status;
  std::string out;
};

Proc run(const std::string& cmd) {
  Proc r{0, ""};
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class KmsLocalProcess : public ::testing::Test {
 protected:
  void TearDown() override { child_.reset(); }  // the server goes before its folder
  // Starts kms-local on a fresh port; another port when the chosen one turns out to be taken
  // (ports are picked, not bound, here: a concurrent test's client socket may hold one).
  void start(const std::vector<std::string>& extra = {}) {
    const std::string log = (dir_ / "kms-local.log").string();
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = free_port();
      std::vector<std::string> argv = {SN_CLI, "kms-local", "--listen", "127.0.0.1:" + std::to_string(port_), "--state",
                                       (dir_ / "state").string()};
      argv.insert(argv.end(), extra.begin(), extra.end());
      child_.reset();  // the previous attempt's server first
      child_ = std::make_unique<sn_test::Process>(argv, log);
      if (wait_port(port_, *child_)) return;
      if (read_text_file(log).find("in use") == std::string::npos) break;
    }
    FAIL() << "kms-local did not start on " << port_ << "; its log:\n" << read_text_file(log);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string aws(const std::string& profile, const std::string& args) {
    return "AWS_SHARED_CREDENTIALS_FILE=" + (dir_ / "state" / "credentials").string() +
           " AWS_EC2_METADATA_DISABLED=true AWS_PAGER= /usr/bin/aws --profile " + profile +
           " --region us-east-1 --endpoint-url " + url() + " --output json kms " + args + " 2>&1";
  }
  std::string cli(const std::string& args) {
    return "AWS_SHARED_CREDENTIALS_FILE=" + (dir_ / "state" / "credentials").string() + " AWS_EC2_METADATA_DISABLED=true " +
           std::string(SN_CLI) + " " + args + " 2>&1";
  }
  test_support::TempDir tmp_{"sn-kms-cli"};
  fs::path dir_ = tmp_.path();
  int port_ = 0;
  std::unique_ptr<sn_test::Process> child_;
};

}  // namespace

TEST_F(KmsLocalProcess, AwsCliCreateEncryptDecryptDataKeyPutPolicy) {
  if (!fs::exists("/usr/bin/aws")) GTEST_SKIP() << "/usr/bin/aws (Debian awscli) is not installed";
  start();
  Proc created = run(aws("admin", "create-key --description cli"));
  ASSERT_EQ(created.status, 0) << created.out;
  std::string key = nlohmann::json::parse(created.out)["KeyMetadata"]["KeyId"];
  write_file_atomic((dir_ / "plain").string(), as_bytes("from the aws cli"));
  Proc enc = run(aws("admin", "encrypt --key-id " + key + " --plaintext fileb://" + (dir_ / "plain").string() +
                                 " --encryption-context app=cli"));
  ASSERT_EQ(enc.status, 0) << enc.out;
  Bytes blob = base64_decode(nlohmann::json::parse(enc.out)["CiphertextBlob"].get<std::string>());
  write_file_atomic((dir_ / "blob").string(), blob);
  Proc dec = run(aws("admin", "decrypt --ciphertext-blob fileb://" + (dir_ / "blob").string() + " --encryption-context app=cli"));
  ASSERT_EQ(dec.status, 0) << dec.out;
  EXPECT_EQ(to_string(base64_decode(nlohmann::json::parse(dec.out)["Plaintext"].get<std::string>())), "from the aws cli");
  // shield-nitro kms decrypts what the AWS CLI encrypted, and the reverse.
  Proc ours = run(cli("kms decrypt --endpoint " + url() + " --profile admin --encryption-context app=cli " +
                     (dir_ / "blob").string() + " " + (dir_ / "out").string()));
  ASSERT_EQ(ours.status, 0) << ours.out;
  EXPECT_EQ(read_text_file((dir_ / "out").string()), "from the aws cli");
  Proc gdk = run(aws("admin", "generate-data-key --key-id " + key + " --key-spec AES_256"));
  ASSERT_EQ(gdk.status, 0) << gdk.out;
  EXPECT_EQ(base64_decode(nlohmann::json::parse(gdk.out)["Plaintext"].get<std::string>()).size(), 32u);

  Proc pol = run(cli("policy --pcr 0=" + std::string(96, 'a') + " --role-arn arn:aws:iam::111122223333:role/shield-enclave "
                    "--admin-arn arn:aws:iam::111122223333:role/shield-admin"));
  ASSERT_EQ(pol.status, 0) << pol.out;
  write_file_atomic((dir_ / "policy.json").string(), as_bytes(pol.out));
  Proc put = run(aws("admin", "put-key-policy --key-id " + key + " --policy-name default --policy file://" +
                                 (dir_ / "policy.json").string()));
  ASSERT_EQ(put.status, 0) << put.out;
  Proc denied = run(aws("enclave", "decrypt --ciphertext-blob fileb://" + (dir_ / "blob").string() + " --encryption-context app=cli"));
  EXPECT_NE(denied.status, 0);
  EXPECT_NE(denied.out.find("AccessDeniedException"), std::string::npos) << denied.out;
  Proc ours_denied = run(cli("kms decrypt --endpoint " + url() + " --profile enclave --encryption-context app=cli " +
                            (dir_ / "blob").string() + " " + (dir_ / "out2").string()));
  EXPECT_EQ(ours_denied.status, 1);
  EXPECT_NE(ours_denied.out.find("HTTP 400 AccessDeniedException"), std::string::npos) << ours_denied.out;
  EXPECT_FALSE(fs::exists(dir_ / "out2"));
}

TEST_F(KmsLocalProcess, CliRecipientThroughSimulatorAndPolicyRefusals) {
  nsm::BootPcrs boot;
  boot.values[0] = Bytes(48, 0x5c);
  auto sim = nsm::SimulatedNsm::create((dir_ / "nsm").string(), boot);
  auto server = sim->serve(nsm::simulator_socket_path((dir_ / "nsm").string()));
  start({"--trust-root", (dir_ / "nsm" / "root.pem").string()});
  std::string ep = " --endpoint " + url();
  ASSERT_EQ(run(cli("kms generate-random --bytes 8" + ep + " --profile admin " + (dir_ / "r").string())).status, 0);
  auto creds = credentials_from_file((dir_ / "state" / "credentials").string(), "admin");
  KmsClientOptions o;
  o.endpoint = url() + "/";
  KmsClient admin(o, std::make_shared<StaticCredentials>(std::move(*creds)));
  std::string key = kms_call(admin, "CreateKey", nlohmann::json::object())["KeyMetadata"]["Arn"];
  write_file_atomic((dir_ / "secret").string(), as_bytes("released in the enclave"));
  ASSERT_EQ(run(cli("kms encrypt --key-id " + key + ep + " --profile admin " + (dir_ / "secret").string() + " " +
                    (dir_ / "blob").string())).status, 0);
  Proc pol = run(cli("policy --pcr 0=" + hex_encode(Bytes(48, 0x5c)) +
                    " --role-arn arn:aws:iam::111122223333:role/shield-enclave --account 111122223333"));
  ASSERT_EQ(pol.status, 0) << pol.out;
  kms_call(admin, "PutKeyPolicy", {{"KeyId", key}, {"PolicyName", "default"}, {"Policy", pol.out}});
  std::string nsm_spec = " --recipient-nsm sim:" + (dir_ / "nsm").string();
  Proc ok = run(cli("kms decrypt --json" + ep + " --profile enclave" + nsm_spec + " " + (dir_ / "blob").string() + " " +
                   (dir_ / "plain").string()));
  ASSERT_EQ(ok.status, 0) << ok.out;
  EXPECT_EQ(read_text_file((dir_ / "plain").string()), "released in the enclave");
  EXPECT_TRUE(nlohmann::json::parse(ok.out)["Recipient"].get<bool>());
  Proc no_attest = run(cli("kms decrypt" + ep + " --profile enclave " + (dir_ / "blob").string() + " " + (dir_ / "x").string()));
  EXPECT_EQ(no_attest.status, 1);
  EXPECT_NE(no_attest.out.find("explicit deny"), std::string::npos) << no_attest.out;
  Proc zeros = run(cli("policy --pcr 0=" + std::string(96, '0') + " --role-arn arn:aws:iam::111122223333:role/r"));
  EXPECT_EQ(zeros.status, 1);
  EXPECT_NE(zeros.out.find("debug"), std::string::npos);
  EXPECT_EQ(run(cli("policy --pcr 0=abcd --role-arn arn:aws:iam::111122223333:role/r")).status, 2);
}

TEST_F(KmsLocalProcess, KillNineLosesNoAcknowledgedKey) {
  start();
  auto creds = credentials_from_file((dir_ / "state" / "credentials").string(), "admin");
  std::vector<std::pair<std::string, Bytes>> acknowledged;  // key arn, ciphertext under it
  for (int round = 0; round < 10; ++round) {
    KmsClientOptions o;
    o.endpoint = url() + "/";
    o.max_attempts = 1;
    o.transport.timeout_ms = 3000;
    KmsClient c(o, std::make_shared<StaticCredentials>(creds->clone()));
    std::atomic<bool> stop{false};
    std::thread load([&] {
      while (!stop) {
        try {
          std::string key = kms_call(c, "CreateKey", nlohmann::json::object())["KeyMetadata"]["Arn"];
          Bytes blob = c.encrypt(key, as_bytes("k" + std::to_string(round))).ciphertext_blob;
          acknowledged.emplace_back(key, blob);
        } catch (const Error&) {
          break;  // the server died mid-request: that one was never acknowledged
        }
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + 37 * round));
    child_->kill9();
    stop = true;
    load.join();
    start();
  }
  ASSERT_GT(acknowledged.size(), 10u);
  KmsClientOptions o;
  o.endpoint = url() + "/";
  KmsClient c(o, std::make_shared<StaticCredentials>(creds->clone()));
  for (const auto& [key, blob] : acknowledged) {
    EXPECT_EQ(c.decrypt(blob).key_id, key);
  }
  // ListKeys pages (at most 1000 keys each), as KMS does.
  size_t listed = 0;
  nlohmann::json page = kms_call(c, "ListKeys", {{"Limit", 1000}});
  for (listed = page["Keys"].size(); page["Truncated"] == true; listed += page["Keys"].size())
    page = kms_call(c, "ListKeys", {{"Limit", 1000}, {"Marker", page["NextMarker"]}});
  EXPECT_GE(listed, acknowledged.size());
  for (const auto& f : fs::directory_iterator(dir_ / "state" / "keys")) EXPECT_EQ(f.path().extension(), ".json");
}

TEST_F(KmsLocalProcess, ListenFailuresAndASharedStateFolderAreOneLineExitThree) {
  start();
  // `timeout`: a server that wrongly starts is stopped, and the test fails on its exit code.
  auto second = [&](const std::string& listen, const std::string& state) {
    return run("timeout 30 " + std::string(SN_CLI) + " kms-local --listen " + listen + " --state " + state + " 2>&1");
  };
  std::string taken = "127.0.0.1:" + std::to_string(port_);
  Proc busy = second(taken, (dir_ / "other").string());
  EXPECT_EQ(busy.status, 3) << busy.out;
  EXPECT_EQ(std::count(busy.out.begin(), busy.out.end(), '\n'), 1) << busy.out;
  EXPECT_NE(busy.out.find("cannot listen on " + taken + ": Address already in use"), std::string::npos) << busy.out;
  std::string missing = "unix:" + (dir_ / "missing" / "k.sock").string();
  Proc nofolder = second(missing, (dir_ / "other").string());
  EXPECT_EQ(nofolder.status, 3) << nofolder.out;
  EXPECT_NE(nofolder.out.find("cannot listen on " + missing + ": No such file or directory"), std::string::npos)
      << nofolder.out;
  Proc shared = second("127.0.0.1:0", (dir_ / "state").string());
  EXPECT_EQ(shared.status, 3) << shared.out;
  EXPECT_EQ(std::count(shared.out.begin(), shared.out.end(), '\n'), 1) << shared.out;
  EXPECT_NE(shared.out.find("state folder " + (dir_ / "state").string() + " is in use by another kms-local (pid"),
            std::string::npos) << shared.out;
}
