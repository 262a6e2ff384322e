#include "shield_nitro/cbor/codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <type_traits>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::cbor {

Limits Limits::strict() {
  Limits l;
  l.max_depth = 4;
  l.max_items = 64;
  l.max_string = 16384 + 1024;
  l.allow_indefinite_strings = false;
  l.allow_undefined = false;
  l.allow_floats = false;
  return l;
}

namespace {

[[noreturn]] void fail(const std::string& why, size_t offset) {
  throw Error(Errc::kFormat, "cbor: " + why + " at offset " + std::to_string(offset));
}

double half_to_double(uint16_t h) {
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  double val;
  if (exp == 0) val = std::ldexp(mant, -24);
  else if (exp != 31) val = std::ldexp(mant + 1024, exp - 25);
  else val = mant == 0 ? INFINITY : NAN;
  return (h & 0x8000) ? -val : val;
}

// An indefinite string's bytes as they gather: the storage a reallocation leaves, and what is
// held when decoding fails, are wiped.
struct WipedBuffer {
  Bytes b;
  void append(ByteView part) {
    if (b.size() + part.size() > b.capacity()) {
      Bytes bigger;
      bigger.reserve(std::max(b.size() + part.size(), 2 * b.capacity()));
      bigger.assign(b.begin(), b.end());
      secure_wipe(b.data(), b.size());
      b.swap(bigger);
    }
    b.insert(b.end(), part.begin(), part.end());
  }
  ~WipedBuffer() { secure_wipe(b.data(), b.size()); }  // empty once moved into its Value
};

// The items of a container being decoded, wiped if decoding fails before they are moved
// into their Value (which leaves the container empty, so success costs nothing).
template <class Items>
struct WipeOnUnwind {
  Items& items;
  ~WipeOnUnwind() {
    for (auto& item : items) {
      if constexpr (std::is_same_v<Items, Array>) item.wipe_strings();
      else item.second.wipe_strings();
    }
  }
};

class Decoder {
 public:
  Decoder(ByteView data, const Limits& limits) : r_(data), limits_(limits) {}
  // Definite-length byte strings point into the input (kept alive by owner, if any).
  Decoder(ByteView data, const Limits& limits, std::shared_ptr<const void> owner)
      : r_(data), limits_(limits), borrow_(true), owner_(std::move(owner)) {}

  Value item(size_t depth) {
    if (depth > limits_.max_depth) fail("nesting deeper than " + std::to_string(limits_.max_depth), r_.offset());
    size_t at = r_.offset();
    uint8_t ib;
    if (!r_.u8(ib)) fail("unexpected end of input", at);
    uint8_t major = ib >> 5, info = ib & 0x1f;
    if (major == 7) return simple(info, at);
    if (info == 31) return indefinite(major, depth, at);
    uint64_t arg = argument(info, at);
    switch (major) {
      case 0: return Value::uint(arg);
      case 1: return Value::negative_from_raw(arg);
      case 2:
        if (borrow_) return Value::borrowed_bytes(string_view(arg, at), owner_);
        return Value::bytes(string_bytes(arg, at));
      case 3: return text_value(string_view(arg, at), at);
      case 4: return array(arg, false, depth, at);
      case 5: return map(arg, false, depth, at);
      default: return tag(arg, depth, at);
    }
  }

  size_t offset() const { return r_.offset(); }

 private:
  uint64_t argument(uint8_t info, size_t at) {
    if (info < 24) return info;
    uint8_t b8; uint16_t b16; uint32_t b32; uint64_t b64;
    switch (info) {
      case 24: if (r_.u8(b8)) return b8; break;
      case 25: if (r_.u16be(b16)) return b16; break;
      case 26: if (r_.u32be(b32)) return b32; break;
      case 27: if (r_.u64be(b64)) return b64; break;
      default: fail("reserved additional information " + std::to_string(info), at);
    }
    fail("truncated argument", at);
  }

  ByteView string_view(uint64_t len, size_t at) {
    if (len > limits_.max_string) fail("string of " + std::to_string(len) + " bytes exceeds the limit", at);
    ByteView v;
    if (!r_.take(static_cast<size_t>(len), v)) fail("string runs past the end of input", at);
    return v;
  }

  Bytes string_bytes(uint64_t len, size_t at) {
    ByteView v = string_view(len, at);
    return Bytes(v.begin(), v.end());
  }

  // Straight from the input into the Value: no intermediate copy of a text (e.g. a secret key).
  static Value text_value(ByteView b, size_t at) {
    if (!valid_utf8(b)) fail("text string is not valid UTF-8", at);
    return Value::text(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  }

  static bool valid_utf8(ByteView s) {
    size_t i = 0;
    while (i < s.size()) {
      uint8_t c = s[i];
      size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 99;
      if (n == 99 || i + n >= s.size()) return false;  // bad lead byte or cut sequence
      uint32_t cp = n == 0 ? c : c & (0x3f >> n);
      for (size_t k = 1; k <= n; ++k) {
        if ((s[i + k] & 0xc0) != 0x80) return false;
        cp = cp << 6 | (s[i + k] & 0x3f);
      }
      static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
      if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
      i += n + 1;
    }
    return true;
  }

  Value simple(uint8_t info, size_t at) {
    switch (info) {
      case 20: return Value::boolean(false);
      case 21: return Value::boolean(true);
      case 22: return Value::null();
      case 23:
        if (!limits_.allow_undefined) fail("undefined is not allowed", at);
        return Value::undefined();
      case 25: case 26: case 27: return floating(info, at);
      case 31: fail("unexpected break", at);
      default: fail("unsupported simple value " + std::to_string(info), at);
    }
  }

  Value floating(uint8_t info, size_t at) {
    if (!limits_.allow_floats) fail("floating-point values are not allowed", at);
    uint16_t h; uint32_t f; uint64_t d;
    if (info == 25 && r_.u16be(h)) return Value::floating(half_to_double(h));
    if (info == 26 && r_.u32be(f)) { float x; std::memcpy(&x, &f, 4); return Value::floating(x); }
    if (info == 27 && r_.u64be(d)) { double x; std::memcpy(&x, &d, 8); return Value::floating(x); }
    fail("truncated float", at);
  }

  bool at_break() {
    uint8_t b;
    if (!r_.peek_u8(b)) fail("indefinite-length item is not terminated", r_.offset());
    if (b != 0xff) return false;
    r_.skip(1);
    return true;
  }

  Value indefinite(uint8_t major, size_t depth, size_t at) {
    if (major == 2 || major == 3) {
      if (!limits_.allow_indefinite_strings) fail("indefinite-length strings are not allowed", at);
      WipedBuffer all;  // chunks may be secret: neither the pieces nor a failed whole are left behind
      while (!at_break()) {
        size_t chunk_at = r_.offset();
        uint8_t ib;
        r_.u8(ib);
        if ((ib >> 5) != major || (ib & 0x1f) == 31) fail("bad chunk in indefinite-length string", chunk_at);
        ByteView part = string_view(argument(ib & 0x1f, chunk_at), chunk_at);
        if (all.b.size() + part.size() > limits_.max_string) fail("string exceeds the limit", chunk_at);
        all.append(part);
      }
      return major == 2 ? Value::bytes(std::move(all.b)) : text_value(all.b, at);
    }
    if (major == 4 || major == 5) {
      if (!limits_.allow_indefinite_containers) fail("indefinite-length containers are not allowed", at);
      return major == 4 ? array(0, true, depth, at) : map(0, true, depth, at);
    }
    fail("indefinite length on a major type that has none", at);
  }

  bool more(bool indefinite, uint64_t count, uint64_t done) {
    return indefinite ? !at_break() : done < count;
  }

  void check_count(uint64_t n, size_t at) {
    if (n > limits_.max_items) fail("container of " + std::to_string(n) + " items exceeds the limit", at);
  }

  // Room for a definite count up front, so small containers (every protocol message) are not
  // reallocated as they fill. Capped, and at most what the input left can hold, so that a
  // forged count in a small or deeply nested input reserves nothing big.
  size_t reserve_for(uint64_t count, size_t min_item_bytes) const {
    constexpr uint64_t kMaxReserve = 32;
    return static_cast<size_t>(std::min({count, uint64_t{r_.remaining() / min_item_bytes}, kMaxReserve}));
  }

  Value array(uint64_t count, bool indefinite, size_t depth, size_t at) {
    check_count(count, at);
    Array items;
    items.reserve(indefinite ? 0 : reserve_for(count, 1));
    WipeOnUnwind<Array> guard{items};
    for (uint64_t i = 0; more(indefinite, count, i); ++i) {
      check_count(i + 1, at);
      items.push_back(item(depth + 1));
    }
    return Value::array(std::move(items), indefinite);
  }

  Value map(uint64_t count, bool indefinite, size_t depth, size_t at) {
    check_count(count, at);
    MapEntries entries;
    entries.reserve(indefinite ? 0 : reserve_for(count, 2));  // a key and a value
    WipeOnUnwind<MapEntries> guard{entries};
    KeyCheck keys;
    for (uint64_t i = 0; more(indefinite, count, i); ++i) {
      check_count(i + 1, at);
      size_t key_at = r_.offset();
      Value k = item(depth + 1);
      if (keys.repeats(entries, k)) fail("duplicate map key", key_at);
      Value v = item(depth + 1);
      entries.emplace_back(std::move(k), std::move(v));
    }
    return Value::map(std::move(entries), indefinite);
  }

  // Two keys are duplicates when their encodings are equal. For integers and strings (nearly
  // every key) that is value equality, so the first keys of a map are compared by value, with
  // no encoding; past kLinearKeys, and for other kinds of keys, a set of encodings keeps the
  // check O(n log n). Scalar and other encodings never coincide (different major types).
  class KeyCheck {
   public:
    bool repeats(const MapEntries& earlier, const Value& k) {
      if (!all_encoded_ && earlier.size() >= kLinearKeys) {
        for (const auto& e : earlier)
          if (scalar(e.first)) encoded_.insert(encode(e.first));
        all_encoded_ = true;
      }
      if (all_encoded_ || !scalar(k)) return !encoded_.insert(encode(k)).second;
      for (const auto& e : earlier)
        if (e.first == k) return true;
      return false;
    }

   private:
    static constexpr size_t kLinearKeys = 16;
    static bool scalar(const Value& v) {
      return v.is(Type::kUnsigned) || v.is(Type::kNegative) || v.is(Type::kText) || v.is(Type::kBytes);
    }
    std::set<Bytes> encoded_;  // non-scalar keys, and every key once the map is large
    bool all_encoded_ = false;
  };

  Value tag(uint64_t number, size_t depth, size_t at) {
    if (!limits_.allow_tags) fail("tag " + std::to_string(number) + " is not allowed", at);
    return Value::tag(number, item(depth + 1));
  }

  ByteReader r_;
  const Limits& limits_;
  bool borrow_ = false;
  std::shared_ptr<const void> owner_;
};

}  // namespace

Value decode_prefix(ByteView data, size_t& consumed, const Limits& limits) {
  Decoder d(data, limits);
  Value v = d.item(0);
  consumed = d.offset();
  return v;
}

Value decode_borrowed(ByteView data, std::shared_ptr<const void> owner, const Limits& limits) {
  Decoder d(data, limits, std::move(owner));
  Value v = d.item(0);
  if (d.offset() != data.size()) {
    v.wipe_strings();
    fail(std::to_string(data.size() - d.offset()) + " trailing bytes", d.offset());
  }
  return v;
}

Value decode(ByteView data, const Limits& limits) {
  size_t used = 0;
  Value v = decode_prefix(data, used, limits);
  if (used != data.size()) {
    v.wipe_strings();  // the item may hold a secret: nothing decoded stays behind an error
    fail(std::to_string(data.size() - used) + " trailing bytes", used);
  }
  return v;
}

void Writer::head(uint8_t major, uint64_t arg) {
  uint8_t m = static_cast<uint8_t>(major << 5);
  if (arg < 24) {
    out_.push_back(m | static_cast<uint8_t>(arg));
  } else if (arg <= 0xff) {
    out_.push_back(m | 24);
    out_.push_back(static_cast<uint8_t>(arg));
  } else if (arg <= 0xffff) {
    out_.push_back(m | 25);
    put_u16be(out_, static_cast<uint16_t>(arg));
  } else if (arg <= 0xffffffffu) {
    out_.push_back(m | 26);
    put_u32be(out_, static_cast<uint32_t>(arg));
  } else {
    out_.push_back(m | 27);
    put_u64be(out_, arg);
  }
}

void Writer::integer(int64_t v) {
  if (v >= 0) head(0, static_cast<uint64_t>(v));
  else head(1, static_cast<uint64_t>(-(v + 1)));
}

void Writer::bytes(ByteView b) {
  head(2, b.size());
  raw(b);
}

void Writer::text(std::string_view s) {
  head(3, s.size());
  raw(as_bytes(s));
}

void encode_append(const Value& v, Bytes& out) {
  Writer w(out);
  switch (v.type()) {
    case Type::kUnsigned: w.uint(v.as_uint()); break;
    case Type::kNegative: w.head(1, v.negative_raw()); break;
    case Type::kBytes: w.bytes(v.bytes_view()); break;
    case Type::kText: w.text(v.as_text()); break;
    case Type::kArray:
      if (v.indefinite()) w.begin_indefinite_array();
      else w.begin_array(v.as_array().size());
      for (const auto& item : v.as_array()) encode_append(item, out);
      if (v.indefinite()) w.end_indefinite();
      break;
    case Type::kMap:
      if (v.indefinite()) w.begin_indefinite_map();
      else w.begin_map(v.as_map().size());
      for (const auto& [k, val] : v.as_map()) {
        encode_append(k, out);
        encode_append(val, out);
      }
      if (v.indefinite()) w.end_indefinite();
      break;
    case Type::kTag:
      w.tag(v.tag_number());
      encode_append(v.tagged(), out);
      break;
    case Type::kBool: w.boolean(v.as_bool()); break;
    case Type::kNull: w.null(); break;
    case Type::kUndefined: out.push_back(0xf7); break;
    case Type::kFloat: {
      double d = v.as_float();
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      out.push_back(0xfb);
      put_u64be(out, bits);
      break;
    }
  }
}

size_t head_size(uint64_t arg) { return arg < 24 ? 1 : arg <= 0xff ? 2 : arg <= 0xffff ? 3 : arg <= 0xffffffffu ? 5 : 9; }

size_t encoded_size(const Value& v) {
  switch (v.type()) {
    case Type::kUnsigned: return head_size(v.as_uint());
    case Type::kNegative: return head_size(v.negative_raw());
    case Type::kBytes: return head_size(v.bytes_view().size()) + v.bytes_view().size();
    case Type::kText: return head_size(v.as_text().size()) + v.as_text().size();
    case Type::kArray: {
      size_t n = v.indefinite() ? 2 : head_size(v.as_array().size());
      for (const auto& item : v.as_array()) n += encoded_size(item);
      return n;
    }
    case Type::kMap: {
      size_t n = v.indefinite() ? 2 : head_size(v.as_map().size());
      for (const auto& [k, val] : v.as_map()) n += encoded_size(k) + encoded_size(val);
      return n;
    }
    case Type::kTag: return head_size(v.tag_number()) + encoded_size(v.tagged());
    case Type::kFloat: return 9;
    default: return 1;  // bool, null, undefined
  }
}

Bytes encode(const Value& v) {
  Bytes out;
  out.reserve(encoded_size(v));
  encode_append(v, out);
  return out;
}

}  // namespace shield_nitro::cbor
