#include "shield_nitro/enclave/kms_releaser.h"

#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/recipient_key.h"

namespace shield_nitro::enclave {
namespace {

// KMS Decrypt with Recipient: documents from the enclave's own NSM carry the RSA recipient key.
class KmsReleaser final : public KeyReleaser {
 public:
  KmsReleaser(const KmsReleaserOptions& o, nsm::NsmClient& nsm) : documents_(nsm) {
    options_.region = o.region;
    options_.endpoint = o.endpoint;
    options_.transport.via = o.via;  // vsock resolves through the process's vsock network (sim or real)
    options_.transport.ca_file = o.ca_file;
  }

  ReleasedKey release(const ReleaseRequest& r, const PushedCredentials& pushed) override {
    kms::Credentials c;
    c.access_key_id = pushed.access_key_id;
    c.secret_access_key = pushed.secret_access_key.clone();
    c.session_token = pushed.session_token.clone();
    c.expiration_s = pushed.expiration.value_or(0);
    c.source = "pushed";
    kms::KmsClient client(options_, std::make_shared<kms::StaticCredentials>(std::move(c)));
    kms::Recipient recipient{&documents_, &keys_};
    kms::DecryptResult d = client.decrypt(r.ciphertext_blob, r.encryption_context, r.key_id, &recipient);
    return {std::move(d.plaintext), d.key_id};
  }

 private:
  kms::KmsClientOptions options_;
  kms::NsmAttestationSource documents_;
  kms::RecipientKeyManager keys_;  // RSA-2048 made off the request path, rotated hourly
};

}  // namespace

std::unique_ptr<KeyReleaser> make_kms_releaser(const KmsReleaserOptions& options, nsm::NsmClient& nsm) {
  return std::make_unique<KmsReleaser>(options, nsm);
}

}  // namespace shield_nitro::enclave
