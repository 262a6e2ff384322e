// CBOR response bodies as JSON, for `shield-nitro parent ... --json` and SDK users who log
// or forward results: byte strings become standard base64, integer map keys (PCR indexes)
// become decimal strings, tags are dropped (their content kept).
//
//   std::cout << parent::to_json(client->describe()).dump(2);
#pragma once

#include <nlohmann/json.hpp>

#include "shield_nitro/cbor/value.h"

namespace shield_nitro::parent {

// The JSON form of v (rules above); map order kept, non-finite floats become null. Never throws.
nlohmann::ordered_json to_json(const cbor::Value& v);

}  // namespace shield_nitro::parent
