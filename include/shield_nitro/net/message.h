// Messages: the CBOR maps carried in frames (docs/protocol.md has the full grammar and hex
// examples).
//
//   request       {"v": 1, "id": uint, "op": text, "body": map}                 (+ "more": true)
//   continuation  {"v": 1, "id": uint, "more": bool, "body": map}               (no "op")
//   response      {"v": 1, "id": uint, "ok": true,  "body": map}
//                 {"v": 1, "id": uint, "ok": false, "error": {"code": text, "message": text}}
//
// A request with "more": true opens a stream: further frames with the same id and no "op"
// carry continuation bodies, the last one with "more": false. The one response comes after
// the last part, so a receiver can process (e.g. decrypt) a large upload while it arrives.
//
// The body is never interpreted here: opaque sealed bytes inside it pass through unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "shield_nitro/cbor/value.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::net {

inline constexpr uint64_t kProtocolVersion = 1;

struct Request {
  uint64_t id = 0;
  std::string op;                          // empty for a continuation frame
  cbor::Value body = cbor::Value::map();   // always a map
  bool more = false;                       // more frames with this id follow

  // A later frame of a streamed request (it has no op).
  bool continuation() const { return op.empty(); }
};

struct Response {
  uint64_t id = 0;
  bool ok = true;
  cbor::Value body = cbor::Value::map();   // ok: the result map
  Errc code = Errc::kInternal;             // !ok: category, on the wire as errc_name()
  std::string message;                     // !ok: one line for humans

  // An ok response with body, or a failure with its category and one-line message.
  static Response success(cbor::Value body = cbor::Value::map());
  static Response failure(Errc code, std::string message);
  // Throws Error(code, message) when !ok; returns the body otherwise.
  const cbor::Value& value_or_throw() const;
};

// A message that is valid CBOR (or not) but breaks the grammar above. request_id() is the id
// when the message got far enough to have one, else 0, so the peer can match the error.
class ProtocolError : public Error {
 public:
  ProtocolError(uint64_t request_id, Errc code, const std::string& message)
      : Error(code, message), request_id_(request_id) {}
  // The offending request's id, or 0 when it had none yet.
  uint64_t request_id() const { return request_id_; }

 private:
  uint64_t request_id_;
};

// The CBOR message (no frame header) for a request or a response.
Bytes encode_request(const Request& r);
Bytes encode_response(const Response& r);
// Both append a complete frame (header + message), saving a copy on hot paths.
void append_request_frame(Bytes& out, const Request& r);
void append_response_frame(Bytes& out, const Response& r);

// Strict decoders for untrusted payloads (one frame's bytes). Throw ProtocolError with
// kFormat (not CBOR, not a map, a field of the wrong type, missing field), or kUnsupported
// (a version other than 1). Unknown keys are ignored so v1 peers can add optional fields.
// An error code name we do not know decodes as kRemote.
Request decode_request(ByteView payload, size_t max_string = size_t{64} << 20);
Response decode_response(ByteView payload, size_t max_string = size_t{64} << 20);
// decode_request() whose body's byte strings point into payload (cbor::decode_borrowed: read
// them with bytes_view()); owner, when given, keeps payload alive as long as the body.
Request decode_request_borrowed(ByteView payload, std::shared_ptr<const void> owner = nullptr,
                                size_t max_string = size_t{64} << 20);

}  // namespace shield_nitro::net
