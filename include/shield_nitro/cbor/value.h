// cbor::Value: an in-memory CBOR data item (RFC 8949).
//
// Maps keep their entries in wire order (a vector of pairs), because several formats we
// speak (NSM messages, attestation payloads, serde_cbor output) are order-sensitive and
// we must be able to re-emit exactly what a peer sends. Arrays and maps remember whether
// they were (or should be) encoded with indefinite length.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::cbor {

enum class Type { kUnsigned, kNegative, kBytes, kText, kArray, kMap, kTag, kBool, kNull, kUndefined, kFloat };

// "unsigned", "bytes", "map", ...: for messages that name what was found.
const char* type_name(Type t);

class Value;
using Array = std::vector<Value>;
using MapEntries = std::vector<std::pair<Value, Value>>;

class Value {
 public:
  Value() : Value(Type::kNull) {}
  Value(const Value&) = default;
  Value& operator=(const Value&) = default;
  // A moved-from text string keeps its characters in the small-string buffer; these moves
  // wipe that buffer, so moving a Value (e.g. into a SecretValue) leaves no copy behind.
  Value(Value&& other) noexcept;
  Value& operator=(Value&& other) noexcept;
  ~Value() = default;

  // Constructors of each kind. A text Value must hold UTF-8 (the decoder checks; builders trust).
  static Value uint(uint64_t v);
  // Any int64: non-negative values become kUnsigned, negative ones kNegative.
  static Value integer(int64_t v);
  // The negative integer -1 - n (covers the whole CBOR range down to -2^64).
  static Value negative_from_raw(uint64_t n);
  static Value bytes(ByteView b);
  static Value bytes(Bytes&& b);
  // A byte string that points into someone else's buffer instead of copying it (what
  // decode_borrowed() makes). owner, when given, keeps that buffer alive as long as any copy of
  // this Value; without one the caller keeps it alive and unchanged while the Value is used.
  static Value borrowed_bytes(ByteView b, std::shared_ptr<const void> owner = nullptr);
  static Value text(std::string_view s);
  static Value array(Array items = {}, bool indefinite = false);
  static Value map(MapEntries entries = {}, bool indefinite = false);
  static Value tag(uint64_t tag, Value inner);
  static Value boolean(bool b);
  static Value null();
  static Value undefined();
  static Value floating(double d);

  // The kind of value; is_integer() is true for both integer kinds.
  Type type() const { return type_; }
  bool is(Type t) const { return type_ == t; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_integer() const { return type_ == Type::kUnsigned || type_ == Type::kNegative; }

  // Accessors throw Error(kFormat, "cbor: expected <type>, got <type>") on a type mismatch,
  // so decoders of untrusted messages can use them directly.
  uint64_t as_uint() const;
  // kUnsigned up to INT64_MAX or kNegative down to INT64_MIN; throws otherwise.
  int64_t as_int() const;
  // For kNegative: the encoded argument n of the value -1 - n.
  uint64_t negative_raw() const;
  // An owned byte string; a borrowed one throws Error(kUsage) (read those with bytes_view()).
  const Bytes& as_bytes() const;
  // The bytes of a byte string, owned or borrowed (valid while this Value is).
  ByteView bytes_view() const;
  // True for a byte string that points into another buffer (borrowed_bytes, decode_borrowed).
  bool borrowed() const;
  const std::string& as_text() const;
  const Array& as_array() const;
  Array& as_array();
  const MapEntries& as_map() const;
  MapEntries& as_map();
  uint64_t tag_number() const;
  const Value& tagged() const;
  bool as_bool() const;
  double as_float() const;

  // Map lookup by text or integer key; nullptr when absent (or when this is not a map).
  const Value* find(std::string_view text_key) const;
  const Value* find_int(int64_t key) const;

  // Whether an array or map was (or will be) encoded with indefinite length.
  bool indefinite() const { return indefinite_; }
  void set_indefinite(bool v) { indefinite_ = v; }

  // Deep structural equality (length encoding is ignored).
  bool operator==(const Value& other) const;

  // Zeroes every byte and text string inside (map keys excepted) with secure_wipe, including
  // their spare capacity, keeping sizes and shape. Borrowed byte strings are left alone: their
  // buffer belongs to its owner, who wipes it. Value does not wipe itself when dropped:
  // hold a decoded message that may carry a secret in a SecretValue (cbor/secret.h), which
  // calls this. A tag's content is wiped only when no copy shares it.
  void wipe_strings();

 private:
  explicit Value(Type t) : type_(t) {}
  Type type_;
  bool indefinite_ = false;
  uint64_t num_ = 0;  // kUnsigned value, kNegative raw n, kTag number, kBool
  double float_ = 0;
  struct Borrowed {
    ByteView view;
    std::shared_ptr<const void> owner;
    bool operator==(const Borrowed& o) const;
  };
  std::variant<std::monostate, Bytes, std::string, Array, MapEntries, std::shared_ptr<Value>, Borrowed> data_;
};

// Map-building helper: cbor::entry("nonce", Value::bytes(n)).
inline std::pair<Value, Value> entry(std::string_view key, Value v) { return {Value::text(key), std::move(v)}; }
inline std::pair<Value, Value> entry(int64_t key, Value v) { return {Value::integer(key), std::move(v)}; }

// A map built by moving its entries in: Value::map({...}) takes a braced list, whose elements
// are const and get deep-copied (a second copy of a large or secret value, dropped unwiped).
template <class... Entries>
Value map_of(Entries&&... entries) {
  MapEntries m;
  m.reserve(sizeof...(entries));
  (m.push_back(std::move(entries)), ...);
  return Value::map(std::move(m));
}

}  // namespace shield_nitro::cbor
