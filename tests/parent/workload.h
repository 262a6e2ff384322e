// What the end-to-end tests run through the enclave: a sealed model, a sealed code plugin and
// an input whose output can be checked. The digits MLP of examples/model-inference when it was
// built (the plugin's predictions must equal reference.json's), else the enclave tests' plugin
// over a random model.
#pragma once

#include <functional>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace sn_test {

struct Artifacts {
  std::string description;
  shield_nitro::Bytes model;   // plaintext weights
  shield_nitro::Bytes plugin;  // plaintext shared object
  shield_nitro::Bytes input;   // one invoke request
  // Empty when the output is right, else what is wrong with it.
  std::function<std::string(shield_nitro::ByteView output)> check;
};

Artifacts example_artifacts();

}  // namespace sn_test
