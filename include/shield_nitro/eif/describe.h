// The JSON nitro-cli prints: `build-enclave`'s measurements and `describe-eif`'s description,
// with the same keys in the same order (spec/eif.md §3).
#pragma once

#include <nlohmann/json.hpp>

#include "shield_nitro/eif/pcr.h"
#include "shield_nitro/eif/reader.h"

namespace shield_nitro::eif {

// {"HashAlgorithm": ..., "PCR0": ..., "PCR1": ..., "PCR2": ...[, "PCR8": ...]}
nlohmann::ordered_json measurements_json(const Measurements& m, HashLabel label);
// {"Measurements": {...}} as build-enclave prints it.
nlohmann::ordered_json build_output_json(const Measurements& m, HashLabel label);
// describe-eif's object. A CRC mismatch is reported as CheckCRC false, not thrown.
nlohmann::ordered_json describe_json(const EifReader& reader, HashLabel label);

}  // namespace shield_nitro::eif
