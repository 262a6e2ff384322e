// Strict CBOR decoding and deterministic encoding.
//
// We decode with our own cursor-based reader (core/reader.h) rather than libcbor because the
// formats we verify need rules libcbor does not enforce: duplicate map keys and trailing bytes
// rejected, depth/size limits applied before allocation, indefinite strings refusable, and
// a per-call policy on tags, floats and `undefined`. Every failure is Error(kFormat, "cbor: ...").
//
//   cbor::Limits lim = cbor::Limits::strict();   // attestation documents
//   cbor::Value doc = cbor::decode(bytes, lim);    // whole input must be exactly one item
//   Bytes out = cbor::encode(doc);                 // shortest heads; indefinite if marked
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "shield_nitro/cbor/value.h"
#include "shield_nitro/core/bytes.h"

namespace shield_nitro::cbor {

struct Limits {
  size_t max_depth = 16;             // nesting of arrays/maps/tags
  size_t max_items = 1u << 20;       // entries of one array or map
  size_t max_string = 64u << 20;     // bytes of one byte/text string
  bool allow_indefinite_containers = true;
  bool allow_indefinite_strings = true;
  bool allow_tags = true;
  bool allow_undefined = true;
  bool allow_floats = true;

  // The hardened profile of attestation.md §3: depth 4, 64 map entries, no indefinite
  // strings, no floats, no undefined; tags only where the caller unwraps them itself.
  static Limits strict();
};

// Decodes exactly one data item; trailing bytes are an error.
Value decode(ByteView data, const Limits& limits = Limits());

// decode() with the same checks, but every definite-length byte string is borrowed: it points
// into data instead of being copied (Value::bytes_view(); as_bytes() refuses it). owner, when
// given, keeps data alive as long as any part of the result; without one the caller keeps data
// alive and unchanged while the result is used. Indefinite byte strings are gathered (owned).
// For hot paths that read a message and drop it (requests): nothing is copied out of it.
Value decode_borrowed(ByteView data, std::shared_ptr<const void> owner = nullptr, const Limits& limits = Limits());

// Decodes one data item from the front of data and returns how many bytes it used.
Value decode_prefix(ByteView data, size_t& consumed, const Limits& limits = Limits());

// Encodes with the shortest head for every length/integer; arrays and maps marked
// indefinite() are written with indefinite length. Text strings must be valid UTF-8
// (not re-checked here).
Bytes encode(const Value& v);
void encode_append(const Value& v, Bytes& out);
// The exact number of bytes encode(v) produces, for reserving a buffer once: a buffer that
// reallocates while a secret is written into it leaves a partial copy in freed memory.
size_t encoded_size(const Value& v);
// The size of a head (major type + argument) in the shortest form.
size_t head_size(uint64_t arg);

// Low-level writer for callers that stream or must control every byte.
class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}
  void head(uint8_t major, uint64_t arg);  // shortest form
  // One item each, in the shortest form, appended to the buffer; begin_* are followed by n items
  // (or, indefinite, by items and end_indefinite()); raw() appends already-encoded bytes. The
  // writer checks nothing: the caller keeps counts and nesting right.
  void uint(uint64_t v) { head(0, v); }
  void integer(int64_t v);
  void bytes(ByteView b);
  void text(std::string_view s);
  void begin_array(uint64_t n) { head(4, n); }
  void begin_map(uint64_t n) { head(5, n); }
  void begin_indefinite_array() { out_.push_back(0x9f); }
  void begin_indefinite_map() { out_.push_back(0xbf); }
  void end_indefinite() { out_.push_back(0xff); }
  void tag(uint64_t t) { head(6, t); }
  void boolean(bool b) { out_.push_back(b ? 0xf5 : 0xf4); }
  void null() { out_.push_back(0xf6); }
  void raw(ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }

 private:
  Bytes& out_;
};

}  // namespace shield_nitro::cbor
