#include "kms_options.h"

#include <cstdlib>

#include "shield_nitro/core/error.h"

namespace shield_nitro::cli {

void add_kms_connection_options(CLI::App* sub, KmsConnection& c) {
  sub->add_option("--endpoint", c.endpoint, "KMS endpoint URL (default https://kms.REGION.amazonaws.com/)");
  sub->add_option("--region", c.region, "AWS region (default $AWS_REGION, else us-east-1)");
  sub->add_option("--kms-via", c.via, "Tunnel: vsock://CID:PORT (enclave -> parent proxy, e.g. vsock://3:8000) or unix:PATH; TLS stays end to end");
  sub->add_option("--kms-ca", c.ca, "PEM CA bundle to trust instead of the system store (e.g. kms-local's)");
  sub->add_option("--profile", c.profile, "Profile of the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials)");
}

namespace {

std::string region_of(const KmsConnection& c) {
  if (!c.region.empty()) return c.region;
  for (const char* var : {"AWS_REGION", "AWS_DEFAULT_REGION"})
    if (const char* v = std::getenv(var); v && *v) return v;
  return "us-east-1";
}

}  // namespace

kms::KmsClient make_kms_client(const KmsConnection& c) {
  kms::KmsClientOptions o;
  o.region = region_of(c);
  o.endpoint = c.endpoint;
  o.transport.via = c.via;
  o.transport.ca_file = c.ca;
  return kms::KmsClient(o, std::make_shared<kms::DefaultCredentialsChain>(c.profile));
}

kms::EncryptionContext parse_encryption_context(const std::vector<std::string>& pairs) {
  kms::EncryptionContext ctx;
  for (const auto& p : pairs) {
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(Errc::kUsage, "--encryption-context expects K=V, got '" + p + "'");
    ctx[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return ctx;
}

std::unique_ptr<NsmRecipient> make_nsm_recipient(const std::string& spec) {
  auto r = std::make_unique<NsmRecipient>();
  r->source = kms::NsmAttestationSource::open(spec);
  r->recipient = kms::Recipient{r->source.get(), &r->keys};
  return r;
}

}  // namespace shield_nitro::cli
