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

Value decode_reply(std::string_view op, const SecureBytes& payload) {
  try {
    return cbor::decode(payload.view());
  } catch (const Error& e) {  // authenticated but malformed: a bug on the enclave side
    throw Error(Errc::kFormat, std::string(op) + ": sealed response is not CBOR (" + e.what() + ")");
  }
}

}  // namespace

SealedChannel::SealedChannel(const channel::SessionKeys& keys, ChannelInfo info)
    : box_(keys, channel::Role::kClient), info_(std::move(info)) {}

Bytes SealedChannel::seal_request(std::string_view op, cbor::Value& body) {
  Bytes inner = cbor::encode(Value::map({cbor::entry("op", Value::text(op)), cbor::entry("body", body)}));
  Bytes sealed = box_.seal(inner);
  OPENSSL_cleanse(inner.data(), inner.size());
  body.wipe_strings();
  return sealed;
}

Value SealedChannel::open_reply(std::string_view op, ByteView sealed) {
  SecureBytes payload = box_.open(sealed);
  Value msg = decode_reply(op, payload);
  const Value* ok = msg.find("ok");
  if (!msg.is(cbor::Type::kMap) || !ok || !ok->is(cbor::Type::kBool)) {
    msg.wipe_strings();
    throw Error(Errc::kFormat, std::string(op) + ": sealed response must be a map with a boolean 'ok'");
  }
  if (ok->as_bool()) {
    for (auto& [k, v] : msg.as_map())
      if (k.is(cbor::Type::kText) && k.as_text() == "body") {
        if (!v.is(cbor::Type::kMap)) break;
        return std::move(v);
      }
    const Value* body = msg.find("body");
    if (!body) return Value::map();
    msg.wipe_strings();
    throw Error(Errc::kFormat, std::string(op) + ": sealed response body must be a map");
  }
  const Value* err = msg.find("error");
  if (!err || !err->is(cbor::Type::kMap)) throw Error(Errc::kFormat, std::string(op) + ": sealed error lacks its error map");
  const Value* message = err->find("message");
  std::string text = message && message->is(cbor::Type::kText) ? message->as_text() : "";
  throw Error(code_from_wire(err->find("code")), std::string(op) + ": " + text);
}

SecureBytes take_secret(Value& result, std::string_view op, const char* name) {
  const Value* field = result.find(name);
  if (!field || !field->is(cbor::Type::kBytes)) {
    result.wipe_strings();
    throw Error(Errc::kFormat, std::string(op) + ": response lacks the byte string '" + name + "'");
  }
  SecureBytes out(field->as_bytes());
  result.wipe_strings();
  return out;
}

}  // namespace shield_nitro::parent::detail
