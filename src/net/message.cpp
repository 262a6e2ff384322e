#include "shield_nitro/net/message.h"

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/net/frame.h"

namespace shield_nitro::net {
namespace {

using cbor::Type;
using cbor::Value;

// Messages nest little; bodies may hold large byte strings (artifact chunks).
cbor::Limits message_limits(size_t max_string) {
  cbor::Limits l;
  l.max_depth = 16;
  l.max_string = max_string;
  return l;
}

Value decode_top(ByteView payload, size_t max_string, bool borrow = false, std::shared_ptr<const void> owner = nullptr) {
  Value msg;
  try {
    msg = borrow ? cbor::decode_borrowed(payload, std::move(owner), message_limits(max_string))
                 : cbor::decode(payload, message_limits(max_string));
  } catch (const Error& e) {
    throw ProtocolError(0, Errc::kFormat, std::string("message is not valid CBOR: ") + e.what());
  }
  if (!msg.is(Type::kMap)) throw ProtocolError(0, Errc::kFormat, std::string("message must be a CBOR map, got ") + cbor::type_name(msg.type()));
  return msg;
}

// The id first, so that later errors can name it.
uint64_t read_header(const Value& msg) {
  const Value* id = msg.find("id");
  if (!id || !id->is(Type::kUnsigned)) throw ProtocolError(0, Errc::kFormat, "message needs \"id\": an unsigned integer");
  const Value* v = msg.find("v");
  if (!v || !v->is(Type::kUnsigned)) throw ProtocolError(id->as_uint(), Errc::kFormat, "message needs \"v\": an unsigned integer");
  if (v->as_uint() != kProtocolVersion)
    throw ProtocolError(id->as_uint(), Errc::kUnsupported,
                        "protocol version " + std::to_string(v->as_uint()) + " is not supported (this side speaks 1)");
  return id->as_uint();
}

const Value* field(const Value& msg, const char* key, Type type, uint64_t id, bool required) {
  const Value* f = msg.find(key);
  if (!f) {
    if (required) throw ProtocolError(id, Errc::kFormat, std::string("message needs \"") + key + "\"");
    return nullptr;
  }
  if (!f->is(type))
    throw ProtocolError(id, Errc::kFormat, std::string("\"") + key + "\" must be " + cbor::type_name(type) +
                                               ", got " + cbor::type_name(f->type()));
  return f;
}

Value take_body(Value& msg, uint64_t id) {
  const Value* b = field(msg, "body", Type::kMap, id, false);
  if (!b) return Value::map();
  for (auto& [k, v] : msg.as_map())
    if (k.is(Type::kText) && k.as_text() == "body") return std::move(v);
  return Value::map();
}

// Header keys in a fixed order so frames are byte-for-byte reproducible (docs/protocol.md).
void write_header(cbor::Writer& w, size_t entries, uint64_t id) {
  w.begin_map(entries);
  w.text("v");
  w.uint(kProtocolVersion);
  w.text("id");
  w.uint(id);
}

Errc errc_from_wire(const std::string& name) {
  Errc c = errc_from_name(name);
  return name == errc_name(c) ? c : Errc::kRemote;
}

void encode_request_into(Bytes& out, const Request& r) {
  if (!r.body.is(Type::kMap)) throw Error(Errc::kUsage, "request body must be a CBOR map");
  cbor::Writer w(out);
  bool more_key = r.more || r.continuation();
  write_header(w, 3 + (r.continuation() ? 0 : 1) + (more_key ? 1 : 0), r.id);
  if (!r.continuation()) {
    w.text("op");
    w.text(r.op);
  }
  if (more_key) {
    w.text("more");
    w.boolean(r.more);
  }
  w.text("body");
  cbor::encode_append(r.body, out);
}

void encode_response_into(Bytes& out, const Response& r) {
  cbor::Writer w(out);
  write_header(w, 4, r.id);
  w.text("ok");
  w.boolean(r.ok);
  if (r.ok) {
    w.text("body");
    cbor::encode_append(r.body, out);
    return;
  }
  w.text("error");
  w.begin_map(2);
  w.text("code");
  w.text(errc_name(r.code));
  w.text("message");
  w.text(r.message);
}

// Writes the message after a placeholder header, then patches the length in.
template <typename Encode>
void append_framed(Bytes& out, Encode encode) {
  size_t start = out.size();
  out.resize(start + kFrameHeaderSize);
  encode(out);
  size_t len = out.size() - start - kFrameHeaderSize;
  if (len > 0xFFFFFFFFu) throw Error(Errc::kUsage, "frame: message over 4 GiB cannot be framed");
  uint8_t* p = out.data() + start;
  p[0] = static_cast<uint8_t>(len >> 24);
  p[1] = static_cast<uint8_t>(len >> 16);
  p[2] = static_cast<uint8_t>(len >> 8);
  p[3] = static_cast<uint8_t>(len);
}

}  // namespace

Response Response::success(cbor::Value body) {
  Response r;
  r.body = std::move(body);
  return r;
}

Response Response::failure(Errc code, std::string message) {
  Response r;
  r.ok = false;
  r.code = code;
  r.message = std::move(message);
  return r;
}

const cbor::Value& Response::value_or_throw() const {
  if (!ok) throw Error(code, message);
  return body;
}

Bytes encode_request(const Request& r) {
  Bytes out;
  encode_request_into(out, r);
  return out;
}

Bytes encode_response(const Response& r) {
  Bytes out;
  encode_response_into(out, r);
  return out;
}

void append_request_frame(Bytes& out, const Request& r) {
  append_framed(out, [&](Bytes& o) { encode_request_into(o, r); });
}

void append_response_frame(Bytes& out, const Response& r) {
  append_framed(out, [&](Bytes& o) { encode_response_into(o, r); });
}

namespace {
Request request_from(Value msg) {
  Request r;
  r.id = read_header(msg);
  if (const Value* op = field(msg, "op", Type::kText, r.id, false)) {
    r.op = op->as_text();
    if (r.op.empty()) throw ProtocolError(r.id, Errc::kFormat, "\"op\" must not be empty");
  }
  if (msg.find("ok")) throw ProtocolError(r.id, Errc::kFormat, "a request must not carry \"ok\" (is this a response?)");
  const Value* more = field(msg, "more", Type::kBool, r.id, r.op.empty());
  r.more = more && more->as_bool();
  r.body = take_body(msg, r.id);
  return r;
}
}  // namespace

Request decode_request(ByteView payload, size_t max_string) { return request_from(decode_top(payload, max_string)); }

Request decode_request_borrowed(ByteView payload, std::shared_ptr<const void> owner, size_t max_string) {
  return request_from(decode_top(payload, max_string, true, std::move(owner)));
}

Response decode_response(ByteView payload, size_t max_string) {
  Value msg = decode_top(payload, max_string);
  Response r;
  r.id = read_header(msg);
  r.ok = field(msg, "ok", Type::kBool, r.id, true)->as_bool();
  if (r.ok) {
    r.body = take_body(msg, r.id);
    return r;
  }
  const Value* err = field(msg, "error", Type::kMap, r.id, true);
  r.code = errc_from_wire(field(*err, "code", Type::kText, r.id, true)->as_text());
  r.message = field(*err, "message", Type::kText, r.id, true)->as_text();
  return r;
}

}  // namespace shield_nitro::net
