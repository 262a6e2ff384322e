// How kms-local checks a Recipient's attestation document, as KMS does: attest::Verifier over one or
// more trusted roots (PEM files, or "aws" for the pinned AWS Nitro root) at the current time.
#pragma once

#include <string>
#include <vector>

#include "shield_nitro/kms/recipient.h"

namespace shield_nitro::kms {

// A document verifies when it chains to any one of the roots. Throws Error(kUsage/kFormat)
// for an unreadable root.
RecipientVerifier make_recipient_verifier(const std::vector<std::string>& trust_roots);

}  // namespace shield_nitro::kms
