// CBOR response bodies as JSON, for `shield-nitro parent ... --json` and SDK users who log
// or forward results: byte strings become standard base64, integer map keys (PCR indexes)
// become decimal strings, tags are dropped (their content kept).
//
//   std::cout << parent::to_json_text(client->describe(), 2) << "\n";
//
// Text rather than a JSON library's type, so the SDK's headers need no JSON library; parse it
// with the one you use.
#pragma once

#include <string>

#include "shield_nitro/cbor/value.h"

namespace shield_nitro::parent {

// The JSON text of v (rules above): map order kept, non-finite floats become null, integers
// below -2^63 become the nearest double. indent < 0: one line; else pretty-printed with that
// many spaces per level. Never throws for a value cbor::Value can hold.
std::string to_json_text(const cbor::Value& v, int indent = -1);

}  // namespace shield_nitro::parent
