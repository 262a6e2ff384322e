#include "sealed_channel.h"

#include <openssl/crypto.h>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::parent::detail {

using cbor::Value;

namespace {

// A code name this build does not know is the peer's business: report it as "remote".
Errc code_from_wire(const Value* code) {
  if (!code || !code->is(cbor::Type::kText)) return Errc::kRemote;
  Errc c = errc_from_name(code->as_text());
  return c == Errc::kInternal && code->as_text() != "internal" ? Errc::kRemote : c;
}

cbor::SecretValue decode_reply(std::string_view op, const SecureBytes& payload) {
  try {
    return cbor::decode_secret(payload.view());
  } catch (const Error& e) {  // authenticated but malformed: a bug on the enclave side
    throw Error(Errc::kFormat, std::string(op) + ": sealed response is not CBOR (" + e.what() + ")");
  }
}

}  // namespace

SealedChannel::SealedChannel(const channel::SessionKeys& keys, ChannelInfo info)
    : box_(keys, channel::Role::kClient), info_(std::move(info)) {}

Bytes SealedChannel::seal_request(std::string_view op, const cbor::SecretValue& body, uint64_t& seq) {
  // {"op": op, "body": body}, written around the body rather than built as a Value (which
  // would hold a second, unwiped copy of it).
  Bytes inner;
  inner.reserve(1 + 3 + cbor::head_size(op.size()) + op.size() + 5 + cbor::encoded_size(*body));  // no reallocation
  cbor::Writer w(inner);
  w.begin_map(2);
  w.text("op");
  w.text(op);
  w.text("body");
  cbor::encode_append(*body, inner);
  Bytes sealed;
  try {
    sealed = box_.seal(inner, &seq);
  } catch (...) {
    OPENSSL_cleanse(inner.data(), inner.size());
    throw;
  }
  OPENSSL_cleanse(inner.data(), inner.size());
  return sealed;
}

cbor::SecretValue SealedChannel::open_reply(std::string_view op, ByteView sealed, uint64_t seq) {
  SecureBytes payload = box_.open_reply(sealed, seq);
  cbor::SecretValue msg = decode_reply(op, payload);
  const Value* ok = msg->find("ok");
  if (!msg->is(cbor::Type::kMap) || !ok || !ok->is(cbor::Type::kBool))
    throw Error(Errc::kFormat, std::string(op) + ": sealed response must be a map with a boolean 'ok'");
  if (ok->as_bool()) {
    const Value* body = msg->find("body");
    if (!body) return cbor::SecretValue(Value::map());
    if (!body->is(cbor::Type::kMap)) throw Error(Errc::kFormat, std::string(op) + ": sealed response body must be a map");
    return msg.take("body");
  }
  const Value* err = msg->find("error");
  if (!err || !err->is(cbor::Type::kMap)) throw Error(Errc::kFormat, std::string(op) + ": sealed error lacks its error map");
  const Value* message = err->find("message");
  std::string text = message && message->is(cbor::Type::kText) ? message->as_text() : "";
  throw Error(code_from_wire(err->find("code")), std::string(op) + ": " + text);
}

SecureBytes take_secret(const cbor::SecretValue& result, std::string_view op, const char* name) {
  const Value* field = result->find(name);
  if (!field || !field->is(cbor::Type::kBytes))
    throw Error(Errc::kFormat, std::string(op) + ": response lacks the byte string '" + name + "'");
  return SecureBytes(field->as_bytes());
}

}  // namespace shield_nitro::parent::detail
