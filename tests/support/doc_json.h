// Test helper: the JSON block a document publishes (test vectors live in the docs, so the
// document is their one source and a test reads them from it).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace shield_nitro::test_support {

// The first ```json block of SN_SOURCE_DIR/doc after the line `heading` (from the start when
// heading is empty). A missing document, heading or block is a test failure and an empty array.
inline nlohmann::json doc_json_block(const std::string& doc, const std::string& heading = "") {
  std::ifstream f(std::string(SN_SOURCE_DIR) + "/" + doc);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  size_t from = heading.empty() ? 0 : text.find("\n" + heading + "\n");
  size_t start = from == std::string::npos ? from : text.find("```json\n", from);
  size_t end = start == std::string::npos ? start : text.find("```", start + 8);
  if (end == std::string::npos) {
    ADD_FAILURE() << "no ```json block" << (heading.empty() ? "" : " after '" + heading + "'") << " in " << doc;
    return nlohmann::json::array();
  }
  return nlohmann::json::parse(text.substr(start + 8, end - start - 8));
}

}  // namespace shield_nitro::test_support
