// Key substitution (docs/threat-model.md): the parent hands the enclave a wrapped key of the same
// KMS key under another encryption context, one whose plaintext it knows. The real enclave
// service (KMS releaser, NSM simulator) against kms-local in process: KMS refuses it when the key
// policy pins the context, the enclave refuses it when its release policy does, and with neither
// the substitute loads (what the defences are for).
#include <gtest/gtest.h>

#include <memory>

#include "local_stack.h"
#include "shield_nitro/cbor/value.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/enclave/kms_releaser.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/shield/shield.h"
#include "support/expect_error.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
using cbor::entry;
using cbor::Value;
using test_support::message_of;

namespace {

Value context_value(const EncryptionContext& ctx) {
  cbor::MapEntries m;
  for (const auto& [k, v] : ctx) m.push_back(entry(k, Value::text(v)));
  return Value::map(std::move(m));
}

class KeySubstitution : public ::testing::Test {
 protected:
  void SetUp() override {
    key_arn_ = kms_call(*stack_.admin, "CreateKey", {{"Description", "models"}})["KeyMetadata"]["Arn"];
    // The producer's data key for production, and a key wrapped for staging whose plaintext
    // the parent learned (it is the parent's choice of what to load that matters).
    real_blob_ = stack_.admin->encrypt(key_arn_, real_key_.expose_secret(), kProd).ciphertext_blob;
    substitute_blob_ = stack_.admin->encrypt(key_arn_, known_key_.expose_secret(), kStaging).ciphertext_blob;
  }
  void TearDown() override {
    client_.reset();
    service_.reset();
  }

  // The enclave service as `shield-nitro-enclave serve` builds it, with the role's credentials pushed.
  void start_enclave(const std::string& release_policy_json) {
    auto nsm = std::make_unique<nsm::NsmClient>(std::make_unique<nsm::SimulatorTransport>(stack_.sim));
    enclave::KmsReleaserOptions ko;
    ko.endpoint = stack_.url();
    auto releaser = enclave::make_kms_releaser(ko, *nsm);
    enclave::ServiceOptions so;
    so.listen = net::Endpoint::unix_path(stack_.dir / "enclave.sock");
    if (!release_policy_json.empty()) so.policy = enclave::ReleasePolicy::parse(release_policy_json);
    service_ = std::make_unique<enclave::EnclaveService>(std::move(nsm), std::move(releaser), std::move(so));
    service_->start();
    client_ = std::make_unique<net::Client>(service_->endpoint());
    Credentials c = stack_.credentials("enclave");
    client_->call("set-credentials", Value::map({entry("access_key_id", Value::text(c.access_key_id)),
                                                 entry("secret_access_key", Value::text(to_string(c.secret_access_key.view())))}));
  }
  std::string load_key(const Bytes& blob, const EncryptionContext& ctx, const std::string& key_id = "") {
    return client_->call("load-key", Value::map({entry("ciphertext_blob", Value::bytes(blob)),
                                                 entry("key_id", Value::text(key_id.empty() ? key_arn_ : key_id)),
                                                 entry("encryption_context", context_value(ctx))}))
        .find("handle")
        ->as_text();
  }
  // True when what the enclave seals under handle opens with key: the parent knows the key.
  bool parent_knows(const std::string& handle, const shield::ShieldKey& key) {
    Value r = client_->call("encrypt", Value::map({entry("key", Value::text(handle)), entry("plaintext", Value::bytes(as_bytes("output")))}));
    try {
      return to_bytes(shield::Shield::with_key(key).decrypt(r.find("ciphertext")->as_bytes()).view()) == to_bytes(as_bytes("output"));
    } catch (const Error&) {
      return false;
    }
  }

  const EncryptionContext kProd{{"app", "inference"}};
  const EncryptionContext kStaging{{"app", "staging"}};
  sn_test::LocalStack stack_;
  std::string key_arn_;
  shield::ShieldKey real_key_ = shield::ShieldKey::generate();
  shield::ShieldKey known_key_ = shield::ShieldKey::generate();
  Bytes real_blob_, substitute_blob_;
  std::unique_ptr<enclave::EnclaveService> service_;
  std::unique_ptr<net::Client> client_;
};

}  // namespace

// Without either defence the substitute loads, and the parent can read what the enclave
// seals under it: the attack the two tests below refuse.
TEST_F(KeySubstitution, WithoutDefencesTheSubstituteLoads) {
  stack_.put_policy(key_arn_);
  start_enclave("");
  EXPECT_TRUE(parent_knows(load_key(substitute_blob_, kStaging), known_key_));
  EXPECT_FALSE(parent_knows(load_key(real_blob_, kProd), known_key_));
}

TEST_F(KeySubstitution, KmsRefusesAContextTheKeyPolicyDoesNotPin) {
  stack_.put_policy(key_arn_, kProd);
  start_enclave("");
  EXPECT_TRUE(parent_knows(load_key(real_blob_, kProd), real_key_));
  std::string why = message_of([&] { load_key(substitute_blob_, kStaging); });
  EXPECT_NE(why.find("AccessDenied"), std::string::npos) << why;
  // Relabelling the blob does not help: the context is authenticated with the ciphertext.
  why = message_of([&] { load_key(substitute_blob_, kProd); });
  EXPECT_NE(why.find("InvalidCiphertext"), std::string::npos) << why;
}

TEST_F(KeySubstitution, EnclaveReleasePolicyRefusesBeforeAskingKms) {
  stack_.put_policy(key_arn_);  // a key policy written without contexts: the enclave's own check still holds
  start_enclave(R"({"kms_key_ids": [")" + key_arn_ + R"("], "encryption_context": {"app": "inference"}})");
  EXPECT_TRUE(parent_knows(load_key(real_blob_, kProd), real_key_));
  int before = stack_.decrypts;
  std::string why = message_of([&] { load_key(substitute_blob_, kStaging); });
  EXPECT_NE(why.find("encryption context must contain app=inference"), std::string::npos) << why;
  EXPECT_EQ(stack_.decrypts, before) << "the refused request reached KMS";
}

// A blob of another KMS key (one the parent controls) is refused by the key list, whether the
// parent names that key or the allowed one.
TEST_F(KeySubstitution, EnclaveReleasePolicyRefusesAnotherKmsKey) {
  std::string other = kms_call(*stack_.admin, "CreateKey", {{"Description", "the parent's"}})["KeyMetadata"]["Arn"];
  Bytes other_blob = stack_.admin->encrypt(other, known_key_.expose_secret(), kProd).ciphertext_blob;
  stack_.put_policy(key_arn_, kProd);
  start_enclave(R"({"kms_key_ids": [")" + key_arn_ + R"("], "encryption_context": {"app": "inference"}})");
  std::string why = message_of([&] { load_key(other_blob, kProd, other); });
  EXPECT_NE(why.find("is not allowed"), std::string::npos) << why;
  why = message_of([&] { load_key(other_blob, kProd, key_arn_); });  // KMS: not the key named
  EXPECT_NE(why.find("IncorrectKey"), std::string::npos) << why;
  // The control: without the release policy the other key's blob loads.
  client_.reset();
  service_.reset();
  start_enclave("");
  EXPECT_TRUE(parent_knows(load_key(other_blob, kProd, other), known_key_));
}
