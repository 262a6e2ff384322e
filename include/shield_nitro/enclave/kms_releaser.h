// The production KeyReleaser: KMS Decrypt with a Recipient attestation document.
//
// For each load-key the enclave asks its NSM for a document whose public_key is the current
// RSA-2048 recipient key (generated off the request path, rotated hourly), sends Decrypt with
// Recipient {AttestationDocument, RSAES_OAEP_SHA_256} through the parent's proxy, and opens
// CiphertextForRecipient in-process. KMS never returns the plaintext key on this path, and
// TLS runs end to end from inside the enclave, so the proxy relays only ciphertext.
#pragma once

#include <memory>
#include <string>

#include "shield_nitro/enclave/key_releaser.h"
#include "shield_nitro/nsm/client.h"

namespace shield_nitro::enclave {

struct KmsReleaserOptions {
  std::string region = "us-east-1";
  std::string endpoint;  // empty: https://kms.<region>.amazonaws.com
  std::string via;       // "vsock://3:8000" | "unix:PATH" | "" (direct)
  std::string ca_file;   // a private CA for a local KMS; empty: the system store
};

// The NSM must outlive the releaser.
std::unique_ptr<KeyReleaser> make_kms_releaser(const KmsReleaserOptions& options, nsm::NsmClient& nsm);

}  // namespace shield_nitro::enclave
