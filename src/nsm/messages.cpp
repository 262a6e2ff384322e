#include "shield_nitro/nsm/messages.h"

#include "shield_nitro/cbor/codec.h"

namespace shield_nitro::nsm {

namespace {

using cbor::Value;
using cbor::Writer;

// ---- requests -------------------------------------------------------------------------

void write_optional_bytes(Writer& w, const std::optional<Bytes>& b) {
  if (b) w.bytes(*b);
  else w.null();
}

// Writes the head of a struct variant: {"<variant>": {<fields entries follow>}}.
struct VariantWriter {
  Writer& w;
  void begin(const char* variant, uint64_t fields) {
    w.begin_map(1);
    w.text(variant);
    w.begin_map(fields);
  }
};

struct RequestEncoder : VariantWriter {
  void operator()(const DescribeNsmRequest&) { w.text("DescribeNSM"); }
  void operator()(const GetRandomRequest&) { w.text("GetRandom"); }
  void operator()(const DescribePcrRequest& r) { one_field("DescribePCR", "index", r.index); }
  void operator()(const LockPcrRequest& r) { one_field("LockPCR", "index", r.index); }
  void operator()(const LockPcrsRequest& r) { one_field("LockPCRs", "range", r.range); }
  void operator()(const ExtendPcrRequest& r) {
    begin("ExtendPCR", 2);
    w.text("index");
    w.uint(r.index);
    w.text("data");
    w.bytes(r.data);
  }
  void operator()(const AttestationRequest& r) {
    begin("Attestation", 3);
    w.text("user_data");
    write_optional_bytes(w, r.user_data);
    w.text("nonce");
    write_optional_bytes(w, r.nonce);
    w.text("public_key");
    write_optional_bytes(w, r.public_key);
  }

  void one_field(const char* variant, const char* field, uint16_t v) {
    begin(variant, 1);
    w.text(field);
    w.uint(v);
  }
};

[[noreturn]] void bad_request(const std::string& why) {
  throw NsmError(ErrorCode::kInvalidArgument, "nsm: malformed request: " + why);
}

cbor::Limits message_limits(size_t max_string) {
  cbor::Limits l;
  l.max_depth = 3;
  l.max_items = 64;
  l.max_string = max_string;
  l.allow_indefinite_containers = false;  // real envelopes are definite (nsm.md §3.2)
  l.allow_indefinite_strings = false;
  l.allow_tags = false;
  l.allow_undefined = false;
  l.allow_floats = false;
  return l;
}


uint16_t request_u16(const Value& v, const char* field) {
  if (!v.is(cbor::Type::kUnsigned) || v.as_uint() > 0xffff) bad_request(std::string(field) + " is not a u16");
  return static_cast<uint16_t>(v.as_uint());
}

Bytes request_bytes(const Value& v, const char* field) {
  if (!v.is(cbor::Type::kBytes)) bad_request(std::string(field) + " is not a byte string");
  return v.as_bytes();
}

std::optional<Bytes> request_optional_bytes(const Value* v, const char* field) {
  if (!v || v->is_null()) return std::nullopt;
  return request_bytes(*v, field);
}

void require_only_keys(const Value& body, std::initializer_list<const char*> keys) {
  if (!body.is(cbor::Type::kMap)) bad_request("variant body is not a map");
  for (const auto& [k, v] : body.as_map()) {
    bool known = false;
    if (k.is(cbor::Type::kText))
      for (const char* key : keys) known = known || k.as_text() == key;
    if (!known) bad_request("unexpected field in request");
  }
}

const Value& required(const Value& body, const char* field) {
  const Value* v = body.find(field);
  if (!v) bad_request(std::string("missing field ") + field);
  return *v;
}

Request decode_struct_request(const std::string& variant, const Value& body) {
  if (variant == "DescribePCR" || variant == "LockPCR") {
    require_only_keys(body, {"index"});
    uint16_t index = request_u16(required(body, "index"), "index");
    if (variant == "LockPCR") return LockPcrRequest{index};
    return DescribePcrRequest{index};
  }
  if (variant == "LockPCRs") {
    require_only_keys(body, {"range"});
    return LockPcrsRequest{request_u16(required(body, "range"), "range")};
  }
  if (variant == "ExtendPCR") {
    require_only_keys(body, {"index", "data"});
    return ExtendPcrRequest{request_u16(required(body, "index"), "index"),
                            request_bytes(required(body, "data"), "data")};
  }
  if (variant == "Attestation") {
    require_only_keys(body, {"user_data", "nonce", "public_key"});
    // serde treats an absent Option field as None; so do we.
    return AttestationRequest{request_optional_bytes(body.find("user_data"), "user_data"),
                              request_optional_bytes(body.find("nonce"), "nonce"),
                              request_optional_bytes(body.find("public_key"), "public_key")};
  }
  bad_request("unknown request '" + variant + "'");
}

// ---- responses ------------------------------------------------------------------------

struct ResponseEncoder : VariantWriter {
  void operator()(const LockPcrResponse&) { w.text("LockPCR"); }
  void operator()(const LockPcrsResponse&) { w.text("LockPCRs"); }
  void operator()(const ErrorResponse& r) {
    w.begin_map(1);
    w.text("Error");
    w.text(error_code_name(r.code));
  }
  void operator()(const DescribePcrResponse& r) {
    begin("DescribePCR", 2);
    w.text("lock");
    w.boolean(r.lock);
    w.text("data");
    w.bytes(r.data);
  }
  void operator()(const ExtendPcrResponse& r) { one_bytes("ExtendPCR", "data", r.data); }
  void operator()(const AttestationResponse& r) { one_bytes("Attestation", "document", r.document); }
  void operator()(const GetRandomResponse& r) { one_bytes("GetRandom", "random", r.random); }
  void operator()(const DescribeNsmResponse& r) {
    begin("DescribeNSM", 7);
    w.text("version_major");
    w.uint(r.version_major);
    w.text("version_minor");
    w.uint(r.version_minor);
    w.text("version_patch");
    w.uint(r.version_patch);
    w.text("module_id");
    w.text(r.module_id);
    w.text("max_pcrs");
    w.uint(r.max_pcrs);
    w.text("locked_pcrs");
    w.begin_array(r.locked_pcrs.size());
    for (uint16_t i : r.locked_pcrs) w.uint(i);
    w.text("digest");
    w.text(r.digest);
  }

  void one_bytes(const char* variant, const char* field, const Bytes& b) {
    begin(variant, 1);
    w.text(field);
    w.bytes(b);
  }
};

[[noreturn]] void invalid(const std::string& what, const std::string& why) {
  throw NsmError(ErrorCode::kInvalidResponse, "nsm: invalid " + what + " reply: " + why);
}

// Decodes a whole reply and returns the body of `variant` (null for a unit variant).
// An {"Error": code} reply becomes NsmError(code).
Value expect_variant(ByteView reply, const std::string& variant, bool unit) {
  if (reply.empty()) invalid(variant, "empty");
  if (reply.size() > kMaxResponseSize) invalid(variant, std::to_string(reply.size()) + " bytes exceed the 0x3000 limit");
  Value root;
  try {
    root = cbor::decode(reply, message_limits(kMaxResponseSize));
  } catch (const Error& e) {
    invalid(variant, e.what());
  }
  if (root.is(cbor::Type::kText)) {
    if (!unit || root.as_text() != variant) invalid(variant, "got unit variant '" + root.as_text() + "'");
    return Value::null();
  }
  if (!root.is(cbor::Type::kMap) || root.as_map().size() != 1 || !root.as_map()[0].first.is(cbor::Type::kText))
    invalid(variant, "not a text or one-entry map envelope");
  const auto& [key, body] = root.as_map()[0];
  if (key.as_text() == "Error") {
    if (!body.is(cbor::Type::kText)) invalid(variant, "Error code is not text");
    auto code = error_code_from_name(body.as_text());
    if (!code) invalid(variant, "unknown NSM error code '" + body.as_text() + "'");
    throw NsmError(*code, "nsm: " + variant + " refused by the NSM: " + body.as_text());
  }
  if (unit || key.as_text() != variant) invalid(variant, "got variant '" + key.as_text() + "'");
  if (!body.is(cbor::Type::kMap)) invalid(variant, "body is not a map");
  return body;
}

const Value& field(const Value& body, const char* name, cbor::Type type, const char* variant) {
  const Value* v = body.find(name);
  if (!v) invalid(variant, std::string("missing field ") + name);
  if (!v->is(type)) invalid(variant, std::string("field ") + name + " is a " + cbor::type_name(v->type()));
  return *v;
}

uint16_t field_u16(const Value& body, const char* name, const char* variant) {
  uint64_t v = field(body, name, cbor::Type::kUnsigned, variant).as_uint();
  if (v > 0xffff) invalid(variant, std::string("field ") + name + " overflows u16");
  return static_cast<uint16_t>(v);
}

const Bytes& field_bytes(const Value& body, const char* name, const char* variant) {
  return field(body, name, cbor::Type::kBytes, variant).as_bytes();
}

}  // namespace

const char* request_name(const Request& request) {
  static constexpr const char* kNames[] = {"DescribeNSM", "DescribePCR", "ExtendPCR", "LockPCR",
                                           "LockPCRs",    "Attestation", "GetRandom"};
  return kNames[request.index()];
}

Bytes encode_request(const Request& request) {
  Bytes out;
  Writer w(out);
  std::visit(RequestEncoder{{w}}, request);
  return out;
}

Request decode_request(ByteView bytes) {
  if (bytes.size() > kMaxRequestSize)
    throw NsmError(ErrorCode::kInputTooLarge, "nsm: request of " + std::to_string(bytes.size()) + " bytes exceeds 4096");
  Value root;
  try {
    root = cbor::decode(bytes, message_limits(kMaxRequestSize));
  } catch (const Error& e) {
    bad_request(e.what());
  }
  if (root.is(cbor::Type::kText)) {
    if (root.as_text() == "DescribeNSM") return DescribeNsmRequest{};
    if (root.as_text() == "GetRandom") return GetRandomRequest{};
    bad_request("unknown unit request '" + root.as_text() + "'");
  }
  if (!root.is(cbor::Type::kMap) || root.as_map().size() != 1 || !root.as_map()[0].first.is(cbor::Type::kText))
    bad_request("not a text or one-entry map");
  return decode_struct_request(root.as_map()[0].first.as_text(), root.as_map()[0].second);
}

Bytes encode_response(const Response& response) {
  Bytes out;
  Writer w(out);
  std::visit(ResponseEncoder{{w}}, response);
  return out;
}

DescribeNsmResponse parse_describe_nsm(ByteView reply) {
  const char* v = "DescribeNSM";
  Value body = expect_variant(reply, v, false);
  DescribeNsmResponse r;
  r.version_major = field_u16(body, "version_major", v);
  r.version_minor = field_u16(body, "version_minor", v);
  r.version_patch = field_u16(body, "version_patch", v);
  r.module_id = field(body, "module_id", cbor::Type::kText, v).as_text();
  r.max_pcrs = field_u16(body, "max_pcrs", v);
  for (const Value& i : field(body, "locked_pcrs", cbor::Type::kArray, v).as_array()) {
    if (!i.is(cbor::Type::kUnsigned) || i.as_uint() > 0xffff) invalid(v, "locked_pcrs entry is not a u16");
    r.locked_pcrs.push_back(static_cast<uint16_t>(i.as_uint()));
  }
  r.digest = field(body, "digest", cbor::Type::kText, v).as_text();
  if (r.digest != "SHA256" && r.digest != "SHA384" && r.digest != "SHA512") invalid(v, "unknown digest '" + r.digest + "'");
  return r;
}

DescribePcrResponse parse_describe_pcr(ByteView reply) {
  const char* v = "DescribePCR";
  Value body = expect_variant(reply, v, false);
  return {field(body, "lock", cbor::Type::kBool, v).as_bool(), field_bytes(body, "data", v)};
}

ExtendPcrResponse parse_extend_pcr(ByteView reply) {
  Value body = expect_variant(reply, "ExtendPCR", false);
  return {field_bytes(body, "data", "ExtendPCR")};
}

void parse_lock_pcr(ByteView reply) { expect_variant(reply, "LockPCR", true); }
void parse_lock_pcrs(ByteView reply) { expect_variant(reply, "LockPCRs", true); }

AttestationResponse parse_attestation(ByteView reply) {
  Value body = expect_variant(reply, "Attestation", false);
  const Bytes& doc = field_bytes(body, "document", "Attestation");
  if (doc.empty()) invalid("Attestation", "empty document");
  return {doc};
}

GetRandomResponse parse_get_random(ByteView reply) {
  Value body = expect_variant(reply, "GetRandom", false);
  return {field_bytes(body, "random", "GetRandom")};
}

}  // namespace shield_nitro::nsm
