// docs/runtime.md stays in step with the parsers: its YAML examples parse, and every key the
// parsers accept (as their own "unknown key" refusals list them) has a row in its tables.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/runtime/host_config.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

namespace shield_nitro::runtime {
namespace {

std::string doc() { return read_text_file(std::string(SN_SOURCE_DIR) + "/docs/runtime.md"); }

std::vector<std::string> yaml_blocks(const std::string& text) {
  std::vector<std::string> out;
  const std::string open = "```yaml\n";
  for (size_t at = text.find(open); at != std::string::npos; at = text.find(open, at)) {
    size_t start = at + open.size();
    size_t end = text.find("\n```", start);
    out.push_back(text.substr(start, end - start + 1));
    at = end;
  }
  return out;
}

// The keys a parser knows at one place, from its refusal of an unknown one.
std::vector<std::string> known_keys(const std::function<void()>& parse) {
  std::string what = test_support::message_of(parse);
  std::smatch m;
  EXPECT_TRUE(std::regex_search(what, m, std::regex("expected one of: ([a-z0-9_, ]+)"))) << what;
  std::vector<std::string> keys;
  std::string list = m[1];
  while (!list.empty() && list.back() == ' ') list.pop_back();  // before " (line N)"
  for (size_t start = 0; start < list.size();) {
    size_t comma = list.find(", ", start);
    keys.push_back(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    start = comma == std::string::npos ? list.size() : comma + 2;
  }
  return keys;
}

TEST(RuntimeDocs, ExamplesParse) {
  std::vector<std::string> blocks = yaml_blocks(doc());
  ASSERT_EQ(blocks.size(), 2u) << "docs/runtime.md: a runtime config and a host config example";
  RuntimeConfig rc = parse_runtime_config(blocks[0], "docs/runtime.md");
  EXPECT_EQ(rc.artifacts.size(), 2u);
  EXPECT_TRUE(rc.egress.allows("bucket.s3.amazonaws.com", 443));
  test_support::TempDir dir;
  write_file_atomic(dir / "app.runtime.yaml", as_bytes(blocks[0]));
  HostConfig hc = parse_host_config(blocks[1], dir.path(), "docs/runtime.md");
  EXPECT_EQ(hc.enclaves.at(0).artifacts.at("model"), "/srv/model.sealed");
}

TEST(RuntimeDocs, EveryKeyHasARow) {
  const std::string text = doc();
  test_support::TempDir dir;
  write_file_atomic(dir / "r.yaml", as_bytes(std::string("version: 1\ningress: [{vsock_port: 5000, app_port: 80}]\n")));
  auto runtime = [](const std::string& yaml) { return [yaml] { parse_runtime_config(yaml); }; };
  auto host = [&](const std::string& yaml) { return [yaml, &dir] { parse_host_config(yaml, dir.path()); }; };
  std::vector<std::function<void()>> places = {
      runtime("version: 1\nzzz: 1\n"),
      runtime("version: 1\napp: {zzz: 1}\n"),
      runtime("version: 1\nhost: {zzz: 1}\n"),
      runtime("version: 1\nkms: {zzz: 1}\n"),
      runtime("version: 1\nstorage: {zzz: 1}\n"),
      runtime("version: 1\nartifacts: [{zzz: 1}]\n"),
      runtime("version: 1\negress: {zzz: 1}\n"),
      runtime("version: 1\ningress: [{zzz: 1}]\n"),
      runtime("version: 1\nlogs: {zzz: 1}\n"),
      host("zzz: 1\n"),
      host("enclaves: [{zzz: 1}]\n"),
      host("enclaves: [{name: a, runtime: r.yaml, ingress: [{zzz: 1}]}]\n"),
      host("enclaves: [{name: a, runtime: r.yaml}]\nkms: {zzz: 1}\n"),
  };
  size_t keys = 0;
  for (const auto& parse : places)
    for (const auto& key : known_keys(parse)) {
      ++keys;
      EXPECT_NE(text.find("| `" + key + "` |"), std::string::npos) << "docs/runtime.md has no row for `" << key << "`";
    }
  EXPECT_GT(keys, 40u);
}

}  // namespace
}  // namespace shield_nitro::runtime
