// The client side of an open attested session: seals requests, opens and decodes replies
// (docs/enclave-api.md, "Sealed requests"). Plaintext bodies travel as cbor::SecretValue, so
// they are wiped when dropped, on every path (cbor/secret.h).
#pragma once

#include <mutex>
#include <string_view>

#include "shield_nitro/cbor/secret.h"
#include "shield_nitro/channel/session.h"
#include "shield_nitro/parent/enclave_client.h"

namespace shield_nitro::parent::detail {

class SealedChannel {
 public:
  SealedChannel(const channel::SessionKeys& keys, ChannelInfo info);

  // SealedBox(cbor({"op", "body"})); the plaintext encoding is wiped once sealed. seq gets
  // the record's sequence number. Hold send_mutex() from here until the frame is written:
  // the enclave accepts requests only in seq order.
  Bytes seal_request(std::string_view op, const cbor::SecretValue& body, uint64_t& seq);
  std::mutex& send_mutex() { return send_mu_; }
  // The body of a sealed success, or Error(code, "<op>: <message>") for a sealed failure.
  // A forged, tampered or replayed reply, or one answering another request than seq, throws
  // (kAuth / kVerify) before anything is decoded.
  cbor::SecretValue open_reply(std::string_view op, ByteView sealed, uint64_t seq);

  const ChannelInfo& info() const { return info_; }

 private:
  channel::SealedBox box_;
  ChannelInfo info_;
  std::mutex send_mu_;
};

// The byte-string field `name` of a result, as SecureBytes (the result wipes itself).
SecureBytes take_secret(const cbor::SecretValue& result, std::string_view op, const char* name);

}  // namespace shield_nitro::parent::detail
