#include "shield_nitro/parent/json.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace shield_nitro::parent {

using cbor::Type;
using nlohmann::ordered_json;

namespace {

ordered_json to_json(const cbor::Value& v);

std::string key_text(const cbor::Value& k) {
  switch (k.type()) {
    case Type::kText:
      return k.as_text();
    case Type::kUnsigned:
      return std::to_string(k.as_uint());
    case Type::kNegative:
      return "-" + std::to_string(k.negative_raw() + 1);  // -1 - n; wraps only for -2^64
    default:
      return to_json(k).dump();  // unusual keys keep a readable, unique form
  }
}

ordered_json to_json(const cbor::Value& v) {
  switch (v.type()) {
    case Type::kUnsigned:
      return v.as_uint();
    case Type::kNegative:
      if (v.negative_raw() <= static_cast<uint64_t>(INT64_MAX)) return -1 - static_cast<int64_t>(v.negative_raw());
      return -1.0 - static_cast<double>(v.negative_raw());
    case Type::kBytes:
      return base64_encode(v.as_bytes());
    case Type::kText:
      return v.as_text();
    case Type::kArray: {
      ordered_json a = ordered_json::array();
      for (const auto& item : v.as_array()) a.push_back(to_json(item));
      return a;
    }
    case Type::kMap: {
      ordered_json o = ordered_json::object();
      for (const auto& [k, item] : v.as_map()) o[key_text(k)] = to_json(item);
      return o;
    }
    case Type::kTag:
      return to_json(v.tagged());
    case Type::kBool:
      return v.as_bool();
    case Type::kFloat:
      return std::isfinite(v.as_float()) ? ordered_json(v.as_float()) : ordered_json(nullptr);
    case Type::kNull:
    case Type::kUndefined:
      return nullptr;
  }
  return nullptr;
}

}  // namespace

std::string to_json_text(const cbor::Value& v, int indent) { return to_json(v).dump(indent); }

}  // namespace shield_nitro::parent
