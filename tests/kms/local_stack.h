// Test helper: kms-local in process (HTTP on 127.0.0.1) trusting a simulated NSM booted with
// PCR0 = ab…ab and PCR8 = 08…08, an admin client, and the attested key policy
// `shield-nitro policy` writes for that enclave.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/kms/key_policy.h"
#include "shield_nitro/kms_local/http_server.h"
#include "shield_nitro/kms_local/local_kms.h"
#include "shield_nitro/kms_local/recipient_verifier.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "support/kms_json.h"
#include "support/temp_dir.h"

namespace sn_test {

using namespace shield_nitro;
using namespace shield_nitro::kms;

inline const std::string kEnclaveRole = "arn:aws:iam::111122223333:role/shield-enclave";
inline const std::string kAdminRole = "arn:aws:iam::111122223333:role/shield-admin";

// A client of kms-local at endpoint, signing as `profile` of its credentials file, no retries.
inline KmsClient local_kms_client(const LocalKms& kms, const std::string& endpoint, const std::string& profile) {
  KmsClientOptions o;
  o.endpoint = endpoint;
  o.max_attempts = 1;
  return KmsClient(o, std::make_shared<StaticCredentials>(std::move(*credentials_from_file(kms.credentials_path(), profile))));
}

struct LocalStack {
  test_support::TempDir dir{"sn-kms-stack"};
  std::shared_ptr<nsm::SimulatedNsm> sim;
  std::unique_ptr<LocalKms> kms;
  std::unique_ptr<HttpServer> server;
  std::atomic<int> decrypts{0};  // Decrypt requests that reached kms-local
  std::unique_ptr<KmsClient> admin;
  mutable std::mutex seen_mu;
  std::string seen_body;  // the body of the last request kms-local got

  LocalStack() {
    nsm::BootPcrs boot;
    boot.values[0] = Bytes(48, 0xab);
    boot.values[8] = Bytes(48, 0x08);
    sim = nsm::SimulatedNsm::create(dir / "nsm", boot);
    LocalKmsOptions o;
    o.state_dir = dir / "kms";
    o.verifier = make_recipient_verifier({dir / "nsm/root.pem"});
    kms = std::make_unique<LocalKms>(o);
    HttpServerOptions so;
    so.listen = "127.0.0.1:0";
    server = std::make_unique<HttpServer>(so, [this](const HttpServerRequest& r) {
      if (find_header(r.headers, "X-Amz-Target").value_or("") == "TrentService.Decrypt") ++decrypts;
      {
        std::lock_guard lock(seen_mu);
        seen_body = r.body;
      }
      return kms->handle(r);
    });
    server->start();
    admin = client("admin");
  }
  ~LocalStack() { server.reset(); }

  std::string url() const { return server->url() + "/"; }
  std::string last_body() const {
    std::lock_guard lock(seen_mu);
    return seen_body;
  }
  Credentials credentials(const std::string& profile) const {
    return std::move(*credentials_from_file(kms->credentials_path(), profile));
  }
  std::unique_ptr<KmsClient> client(const std::string& profile) const {
    return std::make_unique<KmsClient>(local_kms_client(*kms, url(), profile));
  }
  // The attested policy for the simulated enclave's role, the admin also producer.
  void put_policy(const std::string& key, const EncryptionContext& pinned = {}) {
    KeyPolicyRequest r;
    r.pcrs = {{0, Bytes(48, 0xab)}, {8, Bytes(48, 0x08)}};
    r.role_arn = kEnclaveRole;
    r.admin_arn = kAdminRole;
    r.producer_arn = kAdminRole;
    r.encryption_context = pinned;
    kms_call(*admin, "PutKeyPolicy", {{"KeyId", key}, {"PolicyName", "default"}, {"Policy", generate_key_policy(r)}});
  }
};

// A Recipient whose documents come from the stack's simulated NSM.
struct SimRecipient {
  explicit SimRecipient(const LocalStack& s) : source(std::make_unique<nsm::SimulatorTransport>(s.sim)) {}
  NsmAttestationSource source;
  RecipientKeyManager keys{std::chrono::seconds(0)};
  Recipient recipient{&source, &keys};
};

}  // namespace sn_test
