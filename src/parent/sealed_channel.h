// The client side of an open attested session: seals requests, opens and decodes replies
// (docs/enclave-api.md, "Sealed requests"). Plaintext bodies are wiped once sealed or read.
#pragma once

#include <string_view>

#include "shield_nitro/cbor/value.h"
#include "shield_nitro/channel/session.h"
#include "shield_nitro/parent/enclave_client.h"

namespace shield_nitro::parent::detail {

class SealedChannel {
 public:
  SealedChannel(const channel::SessionKeys& keys, ChannelInfo info);

  // SealedBox(cbor({"op", "body"})); wipes the plaintext encoding and the body.
  Bytes seal_request(std::string_view op, cbor::Value& body);
  // The body of a sealed success, or Error(code, "<op>: <message>") for a sealed failure.
  // A forged, tampered or replayed reply throws (kAuth / kVerify) before anything is decoded.
  cbor::Value open_reply(std::string_view op, ByteView sealed);

  const ChannelInfo& info() const { return info_; }

 private:
  channel::SealedBox box_;
  ChannelInfo info_;
};

// Moves the byte-string field `name` of a result into SecureBytes and wipes the result.
SecureBytes take_secret(cbor::Value& result, std::string_view op, const char* name);

}  // namespace shield_nitro::parent::detail
