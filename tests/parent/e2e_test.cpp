// The product end to end with real processes (stack.h), driven by the C++ SDK through a
// recording relay: attest -> verify -> channel -> push credentials -> load-key (KMS releases the
// key only because the PCRs match) -> load a sealed model and plugin -> invoke. Then the
// refusals of a PCR policy that does not match, and the parent-blindness check: nothing that
// crossed the parent (enclave relay and KMS proxy recordings) holds the data key or plaintext.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "support/expect_error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/parent/enclave_client.h"
#include "shield_nitro/shield/stream.h"
#include "stack.h"
#include "window_search.h"
#include "workload.h"

using namespace shield_nitro;
using shield_nitro::test_support::code_of;
using sn_test::KmsKey;
using sn_test::Stack;
using sn_test::WindowIndex;

namespace {

const std::map<std::string, std::string> kContext{{"app", "e2e"}};

attest::Policy pcr0_policy(const Bytes& pcr0) {
  attest::Policy p;
  p.expect_pcr(0, pcr0);
  return p;
}

shield::Shield data_shield(const KmsKey& k) { return shield::Shield::with_key(shield::ShieldKey::from_bytes(k.data_key.view())); }

// Everything one run sent and got back, for the correctness and the blindness checks.
struct Workflow {
  sn_test::Artifacts art = sn_test::example_artifacts();
  KmsKey key;
  Bytes sealed_model, sealed_plugin;
  Bytes secret = os_random().bytes(64 * 1024);  // goes in and out only through the channel
  Bytes secret_ct;
  SecureBytes output, decrypted;
  std::string key_handle, model_handle, code_handle;
};

// The full parent workflow through the relay. EXPECTs record what went wrong.
void run_workload(Stack& s, Workflow& r) {
  r.key = s.make_key(s.pcr0(), kContext);
  shield::StreamEncryptOptions so;
  so.chunk_size = 4096;
  r.sealed_model = shield::encrypt_stream(data_shield(r.key), r.art.model, so);
  r.sealed_plugin = shield::encrypt_stream(data_shield(r.key), r.art.plugin, so);
  std::string model_path = s.dir() + "/model.snst";
  write_file_atomic(model_path, r.sealed_model);

  parent::ClientOptions o;
  o.chunk_size = 8192;  // several stream frames per artifact
  auto client = parent::EnclaveClient::connect(s.parent_endpoint(), o);
  cbor::Value d = client->describe();
  EXPECT_EQ(d.find("pcrs")->find_int(0)->as_bytes(), s.pcr0());
  EXPECT_FALSE(d.find("credentials")->find("present")->as_bool());

  attest::Claims verified = client->attest_and_verify(pcr0_policy(s.pcr0()), s.root());
  EXPECT_EQ(verified.pcrs.at(0), s.pcr0());
  const parent::ChannelInfo& ch = client->open_channel(pcr0_policy(s.pcr0()), s.root());
  EXPECT_EQ(ch.claims.pcrs.at(0), s.pcr0());

  client->set_credentials_provider(std::make_shared<kms::StaticCredentials>(s.enclave_credentials()));
  client->push_credentials();
  parent::KeyHandle k = client->load_key(r.key.blob, r.key.arn, kContext);
  EXPECT_EQ(k.key_id, r.key.arn);
  r.key_handle = k.handle;

  parent::ArtifactInfo model = client->load_artifact(k.handle, model_path, "model", "weights");
  EXPECT_EQ(model.size, r.art.model.size());
  std::istringstream plugin(to_string(r.sealed_plugin));
  parent::ArtifactInfo code = client->load_artifact(k.handle, plugin, "code", "plugin", {model.handle});
  EXPECT_EQ(code.size, r.art.plugin.size());
  r.model_handle = model.handle;
  r.code_handle = code.handle;

  r.output = client->invoke(code.handle, r.art.input);
  EXPECT_EQ(r.art.check(r.output.view()), "") << r.art.description;

  r.secret_ct = client->encrypt(k.handle, r.secret);  // sealed: the channel is open
  EXPECT_EQ(data_shield(r.key).decrypt(r.secret_ct).view().size(), r.secret.size());
  r.decrypted = client->decrypt(k.handle, r.secret_ct);
  EXPECT_TRUE(ct_equal(r.decrypted.view(), r.secret));
}

}  // namespace

class ParentE2E : public ::testing::Test {
 protected:
  void SetUp() override { stack = std::make_unique<Stack>(); }
  void TearDown() override { stack.reset(); }
  std::unique_ptr<Stack> stack;
};

TEST_F(ParentE2E, AttestChannelKeyArtifactsInvoke) {
  Workflow r;
  run_workload(*stack, r);
  auto client = parent::EnclaveClient::connect(stack->parent_endpoint());
  // Handles belong to the enclave, not to a connection.
  cbor::Value d = client->describe();
  EXPECT_EQ(d.find("keys")->as_array().size(), 1u);
  EXPECT_EQ(d.find("artifacts")->as_array().size(), 2u);
  EXPECT_TRUE(d.find("credentials")->find("present")->as_bool());
  // Plaintext results only through a channel: refused plain by the SDK and by the enclave.
  EXPECT_EQ(code_of([&] { client->invoke(r.code_handle, r.art.input); }), Errc::kUsage);
  net::Response plain = client->connection().request(
      "invoke", cbor::Value::map(cbor::MapEntries{cbor::entry("artifact", cbor::Value::text(r.code_handle)),
                                                  cbor::entry("input", cbor::Value::bytes(r.art.input))}));
  EXPECT_FALSE(plain.ok);
  EXPECT_EQ(plain.code, Errc::kPolicy);

  // Many invokes in flight on one connection.
  client->open_channel(pcr0_policy(stack->pcr0()), stack->root());
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i)
        if (!r.art.check(client->invoke(r.code_handle, r.art.input).view()).empty()) ++wrong;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  client->unload(r.code_handle);
  EXPECT_EQ(code_of([&] { client->invoke(r.code_handle, r.art.input); }), Errc::kNotFound);
  EXPECT_GE(client->stats().find("requests")->find("invoke")->as_uint(), 21u);
}

TEST_F(ParentE2E, MismatchedPcrPolicyRefusesTheKeyAndTheChannel) {
  Bytes other_pcr0 = os_random().bytes(48);
  KmsKey elsewhere = stack->make_key(other_pcr0, kContext);  // released only to another image
  auto client = parent::EnclaveClient::connect(stack->parent_endpoint());
  client->push_credentials(stack->enclave_credentials());
  try {
    client->load_key(elsewhere.blob, elsewhere.arn, kContext);
    FAIL() << "KMS released a key to an enclave its policy does not name";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kPolicy);
    EXPECT_EQ(exit_code(e.code()), 1);
    EXPECT_NE(std::string(e.what()).find("AccessDenied"), std::string::npos) << e.what();
  }
  // With no key there is nothing to open the artifact with.
  EXPECT_EQ(code_of([&] {
              std::istringstream in(to_string(shield::encrypt_stream(data_shield(elsewhere), Bytes(1000, 1))));
              client->load_artifact("key-1", in, "model", "weights");
            }),
            Errc::kNotFound);
  // The client refuses a channel to an enclave whose PCR0 is not the expected one...
  EXPECT_EQ(code_of([&] { client->open_channel(pcr0_policy(other_pcr0), stack->root()); }), Errc::kPolicy);
  // ...and to simulator documents when it trusts AWS's root.
  EXPECT_EQ(code_of([&] { client->open_channel(pcr0_policy(stack->pcr0()), attest::TrustAnchor::aws()); }), Errc::kVerify);
  EXPECT_FALSE(client->channel_open());

  // The credentials the parent pushes are useless to the parent itself: without an attestation
  // document KMS denies the role explicitly.
  kms::KmsClientOptions ko;
  ko.endpoint = stack->kms_url() + "/";
  kms::KmsClient as_parent(ko, std::make_shared<kms::StaticCredentials>(stack->enclave_credentials()));
  KmsKey mine = stack->make_key(stack->pcr0(), kContext);
  EXPECT_EQ(code_of([&] { as_parent.decrypt(mine.blob, kContext); }), Errc::kPolicy);
  // While the matching key is released to the enclave.
  EXPECT_EQ(client->load_key(mine.blob, mine.arn, kContext).key_id, mine.arn);
}

TEST_F(ParentE2E, ParentSeesNeitherTheDataKeyNorAnyPlaintext) {
  Workflow r;
  run_workload(*stack, r);
  // Positive control: a plain encrypt request carries its plaintext past the parent, and the
  // search must find it (so a leak of the artifacts or results would be found as well).
  Bytes control = os_random().bytes(4096);
  auto plain = parent::EnclaveClient::connect(stack->parent_endpoint());
  plain->encrypt(r.key_handle, control);
  plain.reset();
  stack->stop_recording();

  WindowIndex enclave_side(sn_test::read_recordings(stack->enclave_record_dir()));
  WindowIndex kms_side(sn_test::read_recordings(stack->kms_record_dir()));
  std::vector<Bytes> all = sn_test::read_recordings(stack->enclave_record_dir());
  for (auto& b : sn_test::read_recordings(stack->kms_record_dir())) all.push_back(std::move(b));
  WindowIndex everything(std::move(all));

  // The recordings did capture the run: the sealed artifacts went through the enclave relay,
  // the wrapped key and the KMS exchange through the KMS proxy.
  EXPECT_GT(enclave_side.recorded_bytes(), r.sealed_model.size() + r.sealed_plugin.size());
  EXPECT_TRUE(enclave_side.first_leak(r.sealed_model).has_value());
  EXPECT_TRUE(enclave_side.first_leak(r.sealed_plugin).has_value());
  EXPECT_TRUE(kms_side.first_leak(as_bytes(base64_encode(r.key.blob))).has_value());
  EXPECT_TRUE(enclave_side.first_leak(control).has_value()) << "the leak search would miss a plaintext";

  // The data key: raw, and as KMS's JSON (base64) or a hex dump would carry it.
  EXPECT_FALSE(everything.first_leak(r.key.data_key.view()).has_value());
  EXPECT_FALSE(everything.first_leak(as_bytes(base64_encode(r.key.data_key.view()))).has_value());
  EXPECT_FALSE(everything.first_leak(as_bytes(hex_encode(r.key.data_key.view()))).has_value());

  // No 32-byte window of any plaintext: artifacts, invoke input and output, decrypt's result.
  struct Secret {
    const char* what;
    ByteView bytes;
  } secrets[] = {{"model weights", r.art.model},   {"plugin .so", r.art.plugin},
                 {"invoke input", r.art.input},    {"invoke output", r.output.view()},
                 {"decrypt plaintext", r.decrypted.view()}};
  for (const auto& s : secrets) {
    // At least 90% of the windows are searched (the rest are near-constant runs).
    ASSERT_GE(s.bytes.size(), WindowIndex::kWindow) << s.what;
    EXPECT_GE(WindowIndex::informative_windows(s.bytes) * 10, (s.bytes.size() - WindowIndex::kWindow + 1) * 9) << s.what;
    auto leak = everything.first_leak(s.bytes);
    EXPECT_FALSE(leak.has_value()) << s.what << " leaked at offset " << *leak;
  }
  std::cout << "[ parent-blind ] " << r.art.description << ": searched " << everything.recorded_bytes()
            << " recorded bytes for " << r.art.model.size() + r.art.plugin.size() + r.art.input.size() + r.output.size() +
                                             r.decrypted.size()
            << " bytes of plaintext and the data key; control found" << std::endl;
}
