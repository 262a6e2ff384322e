// EnclaveClient's state, shared by the files of src/parent (one idea per file).
#pragma once

#include <memory>
#include <mutex>

#include "sealed_channel.h"
#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/parent/enclave_client.h"

namespace shield_nitro::parent {

struct EnclaveClient::Impl {
  ClientOptions options;
  std::unique_ptr<net::Client> conn;

  mutable std::mutex mu;  // guards provider and channel (the pointers, not the objects)
  std::shared_ptr<kms::CredentialsProvider> provider;
  std::shared_ptr<detail::SealedChannel> channel;
  std::mutex refreshing;  // one automatic push at a time is enough
  // The verifier of the last trust anchor used, with its chain cache (guarded by mu).
  std::shared_ptr<const attest::Verifier> verifier;

  // A verifier for anchor: the cached one when it has the same root.
  std::shared_ptr<const attest::Verifier> verifier_for(const attest::TrustAnchor& anchor);

  // One plain request; Error(code, "<op>: <message>") on failure. Watches for refresh hints.
  cbor::Value call_plain(std::string_view op, cbor::Value body);
  // One request inside `ch`; request and result are wiped when dropped.
  cbor::SecretValue call_sealed(detail::SealedChannel& ch, std::string_view op, cbor::SecretValue body);
  // The same without acting on a refresh hint in the answer.
  cbor::SecretValue exchange_sealed(detail::SealedChannel& ch, std::string_view op, const cbor::SecretValue& body);
  // Inside the channel when one is open, else plain.
  cbor::Value call_any(std::string_view op, cbor::Value body);

  std::shared_ptr<detail::SealedChannel> current_channel() const;
  // The open channel, or Error(kUsage) naming op: plaintext never travels unsealed.
  std::shared_ptr<detail::SealedChannel> require_channel(std::string_view op) const;
  std::shared_ptr<kms::CredentialsProvider> current_provider() const;

  // credentials_push.cpp
  void maybe_refresh(const cbor::Value& body);
  std::optional<int64_t> push(const kms::Credentials& c);
  std::optional<int64_t> push_fresh(kms::CredentialsProvider& p);
};

}  // namespace shield_nitro::parent
