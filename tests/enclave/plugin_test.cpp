#include <gtest/gtest.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/enclave/plugin.h"

using namespace shield_nitro;
using namespace shield_nitro::enclave;

namespace {
SecureBytes plugin_bytes() { return SecureBytes(read_file(SN_TEST_PLUGIN)); }
}  // namespace

TEST(Plugin, LoadsFromMemoryAndInvokes) {
  Bytes model = {1, 2, 3};
  auto p = Plugin::load(plugin_bytes(), "test", {{"weights", model}});
  EXPECT_EQ(to_string(p->invoke(as_bytes("abc")).view()), "weights:3|cba");
  // No file of ours appears among the process's mappings: only the memfd.
  std::string maps = read_text_file("/proc/self/maps");
  EXPECT_NE(maps.find("memfd:sn-plugin-test"), std::string::npos);
}

TEST(Plugin, ReportsPluginFailures) {
  auto p = Plugin::load(plugin_bytes(), "test", {});
  try {
    p->invoke(as_bytes("fail"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kRemote);
    EXPECT_NE(std::string(e.what()).find("asked to fail"), std::string::npos);
  }
  Bytes empty;
  try {
    Plugin::load(plugin_bytes(), "test", {{"w", empty}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("init failed: empty model"), std::string::npos);
  }
}

TEST(Plugin, RefusesWhatIsNotAPlugin) {
  try {
    Plugin::load(SecureBytes(as_bytes("not an ELF object")), "junk", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kFormat);
  }
  // A real shared object without the ABI: the C++ runtime itself.
  for (const char* lib : {"/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"}) {
    if (!file_exists(lib)) continue;
    try {
      Plugin::load(SecureBytes(read_file(lib)), "libz", {});
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("does not export sn_plugin_abi_version"), std::string::npos) << e.what();
    }
    break;
  }
}
