// NsmClient: typed calls to a Nitro Secure Module.
//
//   nsm::NsmClient nsm(nsm::open_nsm("/dev/nsm"));          // or "sim:DIR"
//   nsm.extend_pcr(16, as_bytes("config v3"));
//   nsm.lock_pcr(16);                                         // bind it before attesting
//   Bytes doc = nsm.attestation({.nonce = challenge});        // exact COSE_Sign1 bytes
//
// Every call is one request/reply on the transport; replies are checked to answer that
// request (nsm.md §3.2). Refusals throw NsmError with the NSM's code. Calls are thread-safe
// when the transport is (all of ours are). ExtendPCR is never retried: it is not idempotent.
#pragma once

#include <memory>
#include <optional>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/nsm/messages.h"
#include "shield_nitro/nsm/transport.h"

namespace shield_nitro::nsm {

class NsmClient {
 public:
  // Owns transport.
  explicit NsmClient(std::unique_ptr<NsmTransport> transport);

  // The module's description; the PCR at index (value and lock state).
  DescribeNsmResponse describe_nsm();
  DescribePcrResponse describe_pcr(uint16_t index);
  // Returns the new value SHA384(old || data).
  Bytes extend_pcr(uint16_t index, ByteView data);
  void lock_pcr(uint16_t index);
  // Locks PCRs [0, range).
  void lock_pcrs(uint16_t range);
  // The attestation document (COSE_Sign1), byte for byte as the NSM produced it.
  Bytes attestation(const AttestationRequest& request);
  // One GetRandom call: up to 256 bytes, as many as the NSM returned.
  Bytes get_random();
  // Exactly n bytes, looping over GetRandom calls.
  Bytes get_random(size_t n);

  // The transport this client owns (for describe() in messages).
  NsmTransport& transport() { return *transport_; }

 private:
  Bytes call(const Request& request);
  std::unique_ptr<NsmTransport> transport_;
};

}  // namespace shield_nitro::nsm
