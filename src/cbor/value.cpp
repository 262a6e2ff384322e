#include "shield_nitro/cbor/value.h"

#include <algorithm>
#include <limits>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::cbor {

const char* type_name(Type t) {
  switch (t) {
    case Type::kUnsigned: return "unsigned integer";
    case Type::kNegative: return "negative integer";
    case Type::kBytes: return "byte string";
    case Type::kText: return "text string";
    case Type::kArray: return "array";
    case Type::kMap: return "map";
    case Type::kTag: return "tag";
    case Type::kBool: return "bool";
    case Type::kNull: return "null";
    case Type::kUndefined: return "undefined";
    case Type::kFloat: return "float";
  }
  return "unknown";
}

namespace {
[[noreturn]] void mismatch(Type want, Type got) {
  throw Error(Errc::kFormat, std::string("cbor: expected ") + type_name(want) + ", got " + type_name(got));
}

// Zeroes what the buffer holds past size() (what a move left in the small-string buffer, or
// what a shrink left behind). Growing to capacity() never reallocates, and makes those bytes
// ours to write.
template <class Buffer>
void wipe_spare(Buffer& b) {
  size_t n = b.size();
  if (b.capacity() == n) return;
  b.resize(b.capacity());
  secure_wipe(b.data() + n, b.size() - n);
  b.resize(n);
}

template <class Buffer>
void wipe_all(Buffer& b) {
  secure_wipe(b.data(), b.size());
  wipe_spare(b);
}
}  // namespace

Value::Value(Value&& o) noexcept
    : type_(o.type_), indefinite_(o.indefinite_), num_(o.num_), float_(o.float_), data_(std::move(o.data_)) {
  if (auto* t = std::get_if<std::string>(&o.data_)) wipe_spare(*t);
}

Value& Value::operator=(Value&& o) noexcept {
  if (this == &o) return *this;
  type_ = o.type_;
  indefinite_ = o.indefinite_;
  num_ = o.num_;
  float_ = o.float_;
  data_ = std::move(o.data_);
  if (auto* t = std::get_if<std::string>(&o.data_)) wipe_spare(*t);
  return *this;
}

Value Value::uint(uint64_t v) {
  Value x(Type::kUnsigned);
  x.num_ = v;
  return x;
}
Value Value::integer(int64_t v) {
  if (v >= 0) return uint(static_cast<uint64_t>(v));
  return negative_from_raw(static_cast<uint64_t>(-(v + 1)));
}
Value Value::negative_from_raw(uint64_t n) {
  Value x(Type::kNegative);
  x.num_ = n;
  return x;
}
Value Value::bytes(ByteView b) {
  Value x(Type::kBytes);
  x.data_ = Bytes(b.begin(), b.end());
  return x;
}
Value Value::bytes(Bytes&& b) {
  Value x(Type::kBytes);
  x.data_ = std::move(b);
  return x;
}
Value Value::borrowed_bytes(ByteView b, std::shared_ptr<const void> owner) {
  Value x(Type::kBytes);
  x.data_ = Borrowed{b, std::move(owner)};
  return x;
}
bool Value::Borrowed::operator==(const Borrowed& o) const {
  return view.size() == o.view.size() && std::equal(view.begin(), view.end(), o.view.begin());
}
Value Value::text(std::string_view s) {
  Value x(Type::kText);
  x.data_ = std::string(s);
  return x;
}
Value Value::array(Array items, bool indefinite) {
  Value x(Type::kArray);
  x.data_ = std::move(items);
  x.indefinite_ = indefinite;
  return x;
}
Value Value::map(MapEntries entries, bool indefinite) {
  Value x(Type::kMap);
  x.data_ = std::move(entries);
  x.indefinite_ = indefinite;
  return x;
}
Value Value::tag(uint64_t tag, Value inner) {
  Value x(Type::kTag);
  x.num_ = tag;
  x.data_ = std::make_shared<Value>(std::move(inner));
  return x;
}
Value Value::boolean(bool b) {
  Value x(Type::kBool);
  x.num_ = b ? 1 : 0;
  return x;
}
Value Value::null() { return Value(Type::kNull); }
Value Value::undefined() { return Value(Type::kUndefined); }
Value Value::floating(double d) {
  Value x(Type::kFloat);
  x.float_ = d;
  return x;
}

uint64_t Value::as_uint() const {
  if (type_ != Type::kUnsigned) mismatch(Type::kUnsigned, type_);
  return num_;
}
int64_t Value::as_int() const {
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (type_ == Type::kUnsigned) {
    if (num_ > kMax) throw Error(Errc::kFormat, "cbor: integer does not fit in 64-bit signed");
    return static_cast<int64_t>(num_);
  }
  if (type_ == Type::kNegative) {
    if (num_ > kMax) throw Error(Errc::kFormat, "cbor: integer does not fit in 64-bit signed");
    return -1 - static_cast<int64_t>(num_);
  }
  mismatch(Type::kUnsigned, type_);
}
uint64_t Value::negative_raw() const {
  if (type_ != Type::kNegative) mismatch(Type::kNegative, type_);
  return num_;
}
const Bytes& Value::as_bytes() const {
  if (type_ != Type::kBytes) mismatch(Type::kBytes, type_);
  if (const Bytes* b = std::get_if<Bytes>(&data_)) return *b;
  throw Error(Errc::kUsage, "cbor: this byte string is borrowed from its message; read it with bytes_view()");
}
ByteView Value::bytes_view() const {
  if (type_ != Type::kBytes) mismatch(Type::kBytes, type_);
  if (const Bytes* b = std::get_if<Bytes>(&data_)) return *b;
  return std::get<Borrowed>(data_).view;
}
bool Value::borrowed() const { return std::holds_alternative<Borrowed>(data_); }
const std::string& Value::as_text() const {
  if (type_ != Type::kText) mismatch(Type::kText, type_);
  return std::get<std::string>(data_);
}
const Array& Value::as_array() const {
  if (type_ != Type::kArray) mismatch(Type::kArray, type_);
  return std::get<Array>(data_);
}
Array& Value::as_array() {
  if (type_ != Type::kArray) mismatch(Type::kArray, type_);
  return std::get<Array>(data_);
}
const MapEntries& Value::as_map() const {
  if (type_ != Type::kMap) mismatch(Type::kMap, type_);
  return std::get<MapEntries>(data_);
}
MapEntries& Value::as_map() {
  if (type_ != Type::kMap) mismatch(Type::kMap, type_);
  return std::get<MapEntries>(data_);
}
uint64_t Value::tag_number() const {
  if (type_ != Type::kTag) mismatch(Type::kTag, type_);
  return num_;
}
const Value& Value::tagged() const {
  if (type_ != Type::kTag) mismatch(Type::kTag, type_);
  return *std::get<std::shared_ptr<Value>>(data_);
}
bool Value::as_bool() const {
  if (type_ != Type::kBool) mismatch(Type::kBool, type_);
  return num_ != 0;
}
double Value::as_float() const {
  if (type_ != Type::kFloat) mismatch(Type::kFloat, type_);
  return float_;
}

const Value* Value::find(std::string_view key) const {
  if (type_ != Type::kMap) return nullptr;
  for (const auto& [k, v] : std::get<MapEntries>(data_))
    if (k.type_ == Type::kText && std::get<std::string>(k.data_) == key) return &v;
  return nullptr;
}

const Value* Value::find_int(int64_t key) const {
  if (type_ != Type::kMap) return nullptr;
  Value want = integer(key);
  for (const auto& [k, v] : std::get<MapEntries>(data_))
    if (k == want) return &v;
  return nullptr;
}

bool Value::operator==(const Value& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::kUnsigned:
    case Type::kNegative:
    case Type::kBool:
      return num_ == o.num_;
    case Type::kFloat:
      return float_ == o.float_;
    case Type::kNull:
    case Type::kUndefined:
      return true;
    case Type::kTag:
      return num_ == o.num_ && tagged() == o.tagged();
    case Type::kBytes: {  // owned and borrowed alike
      ByteView a = bytes_view(), b = o.bytes_view();
      return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
    }
    default:
      return data_ == o.data_;
  }
}

void Value::wipe_strings() {
  if (auto* b = std::get_if<Bytes>(&data_)) wipe_all(*b);
  else if (auto* t = std::get_if<std::string>(&data_)) wipe_all(*t);
  else if (auto* a = std::get_if<Array>(&data_)) for (Value& item : *a) item.wipe_strings();
  else if (auto* m = std::get_if<MapEntries>(&data_)) for (auto& [k, item] : *m) item.wipe_strings();
  else if (auto* p = std::get_if<std::shared_ptr<Value>>(&data_); p && p->use_count() == 1) (*p)->wipe_strings();
}

}  // namespace shield_nitro::cbor
