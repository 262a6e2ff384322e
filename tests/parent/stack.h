// The product on one machine, as real processes (like python/tests/test_e2e.py), with the
// parent's view recorded:
//
//   nsm-sim serve DIR/nsm            the enclave's NSM (PCR0 random per stack)
//   kms-local 127.0.0.1:P            KMS; trusts the simulator's root for Recipient documents
//   proxy unix:DIR/kms.sock -> P     the parent's KMS relay, --record DIR/rec-kms
//   shield-nitro-enclave serve unix:DIR/enc.sock  --kms-via unix:DIR/kms.sock
//   RecordingRelay DIR/parent.sock -> DIR/enc.sock, recording into DIR/rec-enclave
//
// The SDK and CLI connect to parent_endpoint(), so every byte between them and the enclave,
// and between the enclave and KMS, crosses a recorder (what a parent instance could see).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/process.h"
#include "recording_relay.h"
#include "shield_nitro/attest/trust_anchor.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/kms/credentials.h"

namespace sn_test {

inline constexpr char kAccount[] = "111122223333";
inline constexpr char kEnclaveRole[] = "arn:aws:iam::111122223333:role/shield-enclave";
inline constexpr char kAdminRole[] = "arn:aws:iam::111122223333:role/shield-admin";

struct KmsKey {
  std::string arn;
  shield_nitro::SecureBytes data_key;  // what only the enclave may ever hold
  shield_nitro::Bytes blob;            // its CiphertextBlob (public)
};

class Stack {
 public:
  Stack();   // starts everything (throws with the failing component named)
  ~Stack();  // stops everything, removes the folder

  const std::string& dir() const { return dir_; }
  const shield_nitro::Bytes& pcr0() const { return pcr0_; }
  shield_nitro::attest::TrustAnchor root() const;
  std::string root_pem_path() const { return dir_ + "/nsm/root.pem"; }
  std::string parent_endpoint() const { return relay_->endpoint(); }
  std::string credentials_file() const { return dir_ + "/kms/credentials"; }
  shield_nitro::kms::Credentials enclave_credentials() const;
  std::string enclave_record_dir() const { return dir_ + "/rec-enclave"; }
  std::string kms_record_dir() const { return dir_ + "/rec-kms"; }
  std::string kms_url() const { return kms_url_; }

  // CreateKey, GenerateDataKey (32 bytes, context), then a key policy from
  // kms::generate_key_policy releasing it to the enclave role only with PCR0 == policy_pcr0.
  KmsKey make_key(const shield_nitro::Bytes& policy_pcr0, const std::map<std::string, std::string>& context);

  // Stops the relay and the KMS proxy, so both recordings are complete.
  void stop_recording();

 private:
  std::string dir_;
  shield_nitro::Bytes pcr0_;
  std::string kms_url_;
  std::unique_ptr<Process> nsm_, kms_, proxy_, enclave_;
  std::unique_ptr<RecordingRelay> relay_;
};

}  // namespace sn_test
