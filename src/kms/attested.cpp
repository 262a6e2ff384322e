#include "shield_nitro/kms/attested.h"

#include "shield_nitro/core/error.h"

namespace shield_nitro::kms {

NsmAttestationSource::NsmAttestationSource(std::unique_ptr<nsm::NsmTransport> transport)
    : owned_(std::make_unique<nsm::NsmClient>(std::move(transport))), client_(*owned_) {}

NsmAttestationSource::NsmAttestationSource(nsm::NsmClient& shared) : client_(shared) {}

std::unique_ptr<NsmAttestationSource> NsmAttestationSource::open(const std::string& spec) {
  return std::make_unique<NsmAttestationSource>(nsm::open_nsm(spec));
}

Bytes NsmAttestationSource::attestation_document(ByteView public_key_der) {
  nsm::AttestationRequest req;
  req.public_key = to_bytes(public_key_der);
  return client_.attestation(req);
}

}  // namespace shield_nitro::kms
