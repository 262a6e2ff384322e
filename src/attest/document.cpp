#include "shield_nitro/attest/document.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::attest {
namespace {

// Below 10^12 ms (2001-09-09) a timestamp is almost certainly in seconds: real NSM documents
// carry milliseconds, synthetic ones (blocky's self-signed) sometimes seconds.
constexpr uint64_t kMinPlausibleTimestampMs = 1000000000000ull;
constexpr uint64_t kMaxTimestampMs = 253402300799999ull;  // 9999-12-31T23:59:59.999Z

[[noreturn]] void bad(const std::string& why) { throw Error(Errc::kFormat, "attestation document: " + why); }

const cbor::Value& required(const cbor::Value& map, const char* key) {
  const cbor::Value* v = map.find(key);
  if (!v) bad(std::string("missing '") + key + "'");
  return *v;
}

const Bytes& bstr(const cbor::Value& v, const std::string& what, size_t min, size_t max) {
  if (!v.is(cbor::Type::kBytes)) bad(what + " is a " + cbor::type_name(v.type()) + ", not a byte string");
  const Bytes& b = v.as_bytes();
  if (b.size() < min || b.size() > max)
    bad(what + " is " + std::to_string(b.size()) + " bytes, allowed " + std::to_string(min) + ".." + std::to_string(max));
  return b;
}

const std::string& tstr(const cbor::Value& v, const std::string& what) {
  if (!v.is(cbor::Type::kText)) bad(what + " is a " + cbor::type_name(v.type()) + ", not a text string");
  return v.as_text();
}

OptionalBytes optional_field(const cbor::Value& map, const char* key) {
  OptionalBytes out;
  const cbor::Value* v = map.find(key);
  if (!v) return out;
  if (v->is_null()) {
    out.presence = Presence::kNull;
    return out;
  }
  out.presence = Presence::kBytes;
  out.value = bstr(*v, key, 0, kMaxOptionalFieldSize);
  return out;
}

uint64_t timestamp(const cbor::Value& v) {
  if (!v.is(cbor::Type::kUnsigned)) bad("timestamp is not an unsigned integer");
  uint64_t ms = v.as_uint();
  if (ms == 0) bad("timestamp is zero");
  if (ms < kMinPlausibleTimestampMs) bad("timestamp " + std::to_string(ms) + " looks like seconds, not milliseconds");
  if (ms > kMaxTimestampMs) bad("timestamp " + std::to_string(ms) + " is beyond year 9999");
  return ms;
}

std::map<uint32_t, Bytes> pcrs(const cbor::Value& v) {
  if (!v.is(cbor::Type::kMap)) bad("pcrs is not a map");
  const auto& entries = v.as_map();
  if (entries.empty() || entries.size() > kPcrCount)
    bad("pcrs has " + std::to_string(entries.size()) + " entries, allowed 1..32");
  std::map<uint32_t, Bytes> out;
  for (const auto& [k, val] : entries) {
    if (!k.is(cbor::Type::kUnsigned) || k.as_uint() >= kPcrCount) bad("pcrs key is not an index 0..31");
    uint32_t index = static_cast<uint32_t>(k.as_uint());
    out[index] = bstr(val, "PCR" + std::to_string(index), kPcrSize, kPcrSize);
  }
  return out;
}

std::vector<Bytes> cabundle(const cbor::Value& v) {
  if (!v.is(cbor::Type::kArray)) bad("cabundle is not an array");
  const auto& items = v.as_array();
  if (items.empty()) bad("cabundle is empty");
  std::vector<Bytes> out;
  for (size_t i = 0; i < items.size(); ++i)
    out.push_back(bstr(items[i], "cabundle[" + std::to_string(i) + "]", 1, kMaxCertificateSize));
  return out;
}

void check_keys_are_text(const cbor::Value& map) {
  for (const auto& [k, v] : map.as_map())
    if (!k.is(cbor::Type::kText)) bad("payload map has a non-text key");
}

cbor::Value decode_payload(const Bytes& payload) {
  if (payload.empty() || payload.size() > kMaxPayloadSize)
    bad("payload is " + std::to_string(payload.size()) + " bytes, allowed 1..16384");
  cbor::Limits lim = cbor::Limits::strict();
  lim.allow_tags = false;
  try {
    return cbor::decode(payload, lim);
  } catch (const Error& e) {
    bad(std::string("payload: ") + e.what());
  }
}

// A COSE_Sign1 begins with its array of four (84, or 9f when indefinite), optionally after tag 18.
bool looks_like_cose_sign1(ByteView b) {
  if (!b.empty() && b[0] == 0xd2) b = b.subspan(1);
  return !b.empty() && (b[0] == 0x84 || b[0] == 0x9f);
}

// What an input that is not a document looks like, so the user sees which file they passed.
std::string describe_input(ByteView b) {
  size_t i = 0;
  while (i < b.size() && std::isspace(b[i])) ++i;
  ByteView rest = b.subspan(i);
  if (rest.empty()) return b.empty() ? "empty" : "only whitespace";
  std::string_view text(reinterpret_cast<const char*>(rest.data()), rest.size());
  if (text.starts_with("-----BEGIN ")) {
    size_t end = text.find("-----", 11);
    size_t label = end == std::string_view::npos ? 0 : std::min<size_t>(end - 11, 40);
    return "looks like PEM text (" + std::string(text.substr(11, label)) + ")";
  }
  if (text[0] == '{' || text[0] == '[') return "looks like JSON";
  size_t head = std::min<size_t>(rest.size(), 64);
  bool printable = std::all_of(rest.begin(), rest.begin() + static_cast<long>(head),
                               [](uint8_t c) { return c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c < 0x7f); });
  if (printable) {
    std::string start(text.substr(0, std::min<size_t>(text.find_first_of("\r\n"), 24)));
    return "looks like text starting '" + start + "'";
  }
  return "binary, first bytes " + hex_encode(b.first(std::min<size_t>(b.size(), 4)));
}

}  // namespace

const char* presence_name(Presence p) {
  switch (p) {
    case Presence::kAbsent: return "absent";
    case Presence::kNull: return "null";
    case Presence::kBytes: return "bytes";
  }
  return "absent";
}

Document decode_document(ByteView doc) {
  if (doc.empty()) bad("empty input");
  if (doc.size() > kMaxDocumentSize)
    bad(std::to_string(doc.size()) + " bytes exceeds the limit of " + std::to_string(kMaxDocumentSize));
  Document d;
  try {
    d.envelope = cose::decode_sign1(doc);
  } catch (const Error& e) {
    bad(e.what());
  }
  cbor::Value p = decode_payload(d.envelope.payload);
  if (!p.is(cbor::Type::kMap)) bad("payload is not a map");
  check_keys_are_text(p);
  d.indefinite_payload_map = p.indefinite();
  d.module_id = tstr(required(p, "module_id"), "module_id");
  if (d.module_id.empty()) bad("module_id is empty");
  d.digest = tstr(required(p, "digest"), "digest");
  if (d.digest != "SHA384") bad("digest '" + d.digest + "' is not SHA384");
  d.timestamp_ms = timestamp(required(p, "timestamp"));
  d.pcrs = pcrs(required(p, "pcrs"));
  d.certificate = bstr(required(p, "certificate"), "certificate", 1, kMaxCertificateSize);
  d.cabundle = cabundle(required(p, "cabundle"));
  d.public_key = optional_field(p, "public_key");
  d.user_data = optional_field(p, "user_data");
  d.nonce = optional_field(p, "nonce");
  return d;
}

Bytes document_bytes_from_text_or_binary(ByteView input) {
  auto not_a_document = [](const std::string& why, ByteView what) {
    return Error(Errc::kFormat, "not an attestation document (" + why + "): " + describe_input(what));
  };
  if (looks_like_cose_sign1(input)) return to_bytes(input);
  const std::string neither = "neither a COSE_Sign1 nor base64 of one";
  if (input.size() > 2 * kMaxDocumentSize)
    throw not_a_document(std::to_string(input.size()) + " bytes, more than any document", input);
  Bytes decoded;
  try {
    decoded = base64_decode(to_string(input));
  } catch (const Error&) {
    throw not_a_document(neither, input);
  }
  if (decoded.empty()) throw not_a_document(neither, input);
  if (!looks_like_cose_sign1(decoded)) throw not_a_document("base64 of something else", decoded);
  return decoded;
}

}  // namespace shield_nitro::attest
