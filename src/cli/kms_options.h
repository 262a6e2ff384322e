// KMS connection options shared by `kms <op>` and `seal` / `unseal`: one vocabulary
// (--endpoint, --region, --kms-via, --kms-ca, --profile), one client factory, one
// --encryption-context parser, and the NSM-backed Recipient of --recipient-nsm.
//
//   KmsConnection c;
//   add_kms_connection_options(sub, c);
//   kms::KmsClient kms = make_kms_client(c);
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms/client.h"

namespace shield_nitro::cli {

struct KmsConnection {
  std::string endpoint, region, via, ca, profile;
};

// Adds --endpoint, --region, --kms-via, --kms-ca and --profile.
void add_kms_connection_options(CLI::App* sub, KmsConnection& c);
// A client for c: the region from --region, $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1;
// credentials from the environment, the shared file (--profile) or IMDSv2.
kms::KmsClient make_kms_client(const KmsConnection& c);

// K=V pairs of --encryption-context; kUsage naming the bad one.
kms::EncryptionContext parse_encryption_context(const std::vector<std::string>& pairs);

// An NSM-backed Recipient: the enclave key pair (generated off the request path) plus a
// fresh attestation document per call.
struct NsmRecipient {
  std::unique_ptr<kms::NsmAttestationSource> source;
  kms::RecipientKeyManager keys{std::chrono::hours(1)};
  kms::Recipient recipient;
};
// spec: "/dev/nsm" or "sim:DIR".
std::unique_ptr<NsmRecipient> make_nsm_recipient(const std::string& spec);

}  // namespace shield_nitro::cli
