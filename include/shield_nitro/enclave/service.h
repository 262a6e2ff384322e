// The enclave service: `shield-nitro-enclave serve` (docs/enclave-api.md).
//
// Holds everything secret of the product: data keys released by KMS, decrypted models and
// code, the channel's X25519 keys. None of it is ever returned: the operations hand out
// handles, ciphertext, attestation documents, and plaintext only inside the attested channel.
#pragma once

#include <memory>
#include <string>

#include "shield_nitro/enclave/key_releaser.h"
#include "shield_nitro/enclave/release_policy.h"
#include "shield_nitro/net/server.h"
#include "shield_nitro/nsm/client.h"

namespace shield_nitro::enclave {

struct ServiceOptions {
  net::Endpoint listen;
  net::ServerOptions server;
  ReleasePolicy policy;
  // Ask the parent for fresh credentials this long before they expire.
  int64_t credentials_refresh_margin_s = 300;
  // Threads decrypting an artifact of announced size while it arrives (0 = one per core).
  unsigned artifact_workers = 0;
};

// One service instance: owns the NSM client, the key releaser and every secret it is given.
// start()/stop() from one thread; handle() is thread-safe.
class EnclaveService {
 public:
  // Takes ownership; nothing listens until start().
  EnclaveService(std::unique_ptr<nsm::NsmClient> nsm, std::unique_ptr<KeyReleaser> releaser, ServiceOptions options);
  ~EnclaveService();
  EnclaveService(const EnclaveService&) = delete;
  EnclaveService& operator=(const EnclaveService&) = delete;

  // Listens and serves on background threads.
  void start();
  // Graceful: finishes in-flight requests, then wipes every key and artifact.
  void stop();
  const net::Endpoint& endpoint() const;

  // Answers one plain request exactly as the server's handler for `op` does, without a socket
  // (start() not needed): the response body, or Error with the code the peer would get (an
  // unknown op is kUnsupported). For tests and fuzz/enclave_ops.cpp; the server calls the same.
  cbor::Value handle(const std::string& op, const cbor::Value& body, net::RequestContext& context);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shield_nitro::enclave
