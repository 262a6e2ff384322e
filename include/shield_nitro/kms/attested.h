// The enclave side of the attestation seam in recipient.h: NsmAttestationSource gives documents
// from an NSM (/dev/nsm or the simulator, "sim:DIR"), a fresh one per request with the enclave
// key pair's SPKI as public_key. (The verifying side, for kms-local, is kms_local/recipient_verifier.h.)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/kms/recipient.h"
#include "shield_nitro/nsm/client.h"

namespace shield_nitro::kms {

class NsmAttestationSource final : public AttestationSource {
 public:
  explicit NsmAttestationSource(std::unique_ptr<nsm::NsmTransport> transport);
  // Borrows a client that outlives this source (the enclave service shares its one NSM).
  explicit NsmAttestationSource(nsm::NsmClient& shared);
  // spec as nsm::open_nsm: "/dev/nsm" or "sim:DIR".
  static std::unique_ptr<NsmAttestationSource> open(const std::string& spec);
  Bytes attestation_document(ByteView public_key_der) override;

 private:
  std::unique_ptr<nsm::NsmClient> owned_;
  nsm::NsmClient& client_;
};

}  // namespace shield_nitro::kms
