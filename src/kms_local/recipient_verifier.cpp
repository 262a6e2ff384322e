#include "shield_nitro/kms_local/recipient_verifier.h"

#include <memory>

#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

namespace shield_nitro::kms {

RecipientVerifier make_recipient_verifier(const std::vector<std::string>& trust_roots) {
  if (trust_roots.empty()) throw Error(Errc::kUsage, "no trust roots given");
  auto verifiers = std::make_shared<std::vector<std::unique_ptr<attest::Verifier>>>();
  for (const auto& root : trust_roots) {
    attest::TrustAnchor anchor =
        root == "aws" ? attest::TrustAnchor::aws() : attest::TrustAnchor::from_pem(read_text_file(root));
    verifiers->push_back(std::make_unique<attest::Verifier>(std::move(anchor)));
  }
  // As AWS KMS does, accept a debug-mode document (it is validly signed) and let the key
  // policy decide: its zero PCRs match no production pin, so the answer is AccessDenied.
  attest::Policy policy;
  policy.allow_debug = true;
  return [verifiers, policy](ByteView doc) {
    std::string reasons;
    for (const auto& v : *verifiers) {
      attest::VerifyResult r = v->check(doc, policy, std::nullopt);
      if (r.ok()) {
        VerifiedRecipient out;
        for (const auto& [i, value] : r.claims->pcrs) out.pcrs[static_cast<int>(i)] = value;
        if (r.claims->public_key.has_value()) out.public_key = r.claims->public_key.value;
        out.module_id = r.claims->module_id;
        return out;
      }
      if (!reasons.empty()) reasons += "; ";
      reasons += r.error->what();
    }
    throw Error(Errc::kVerify, "attestation document does not verify against any trusted root: " + reasons);
  };
}

}  // namespace shield_nitro::kms
