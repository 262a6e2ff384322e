// cbor::SecretValue: a Value that may carry secrets (credentials, data keys, plaintext) and
// wipes every byte and text string in it when it goes: destroyed (also while an exception
// unwinds), assigned over, or moved from. Callers hold secret-bearing messages in one instead
// of wiping by hand on every path out.
//
//   cbor::SecretValue req = cbor::decode_secret(opened);   // e.g. a sealed request
//   const cbor::Value* op = req->find("op");
//   cbor::SecretValue body = req.take("body");              // moved out, still wiped
//
// Map keys are not wiped (they name fields; see Value::wipe_strings). Not copyable: a copy
// would be a second, unwiped owner. decode_secret also leaves nothing behind when the input
// turns out malformed half-way (the partial items are wiped before the error propagates).
#pragma once

#include <string_view>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/value.h"

namespace shield_nitro::cbor {

class SecretValue {
 public:
  SecretValue() = default;
  // Takes v's contents over; what the move leaves in v is wiped (see Value's move).
  explicit SecretValue(Value&& v) noexcept : v_(std::move(v)) {}
  ~SecretValue() { v_.wipe_strings(); }
  SecretValue(SecretValue&& other) noexcept : v_(std::move(other.v_)) {}
  SecretValue& operator=(SecretValue&& other) noexcept;
  SecretValue(const SecretValue&) = delete;
  SecretValue& operator=(const SecretValue&) = delete;

  const Value& operator*() const { return v_; }
  const Value* operator->() const { return &v_; }
  // For building or extending in place (e.g. appending a field to a reply map).
  Value& value() { return v_; }

  // The value of map entry `key` (text), moved out into its own SecretValue; a null one when
  // absent or when this is not a map. The entry stays, empty, in this one.
  SecretValue take(std::string_view key);

 private:
  Value v_;
};

// decode(), into a SecretValue.
SecretValue decode_secret(ByteView data, const Limits& limits = Limits());

}  // namespace shield_nitro::cbor
