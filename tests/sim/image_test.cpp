// /cmd and /env parsing: nitro-cli's one-element-per-line format, strictly.
#include <gtest/gtest.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/sim/image.h"

using shield_nitro::as_bytes;
using shield_nitro::Bytes;
using shield_nitro::Error;
using namespace shield_nitro::sim;

TEST(ImageFiles, CmdLinesAreElements) {
  EXPECT_EQ(parse_cmd_file(as_bytes("/bin/app\n--port\n5000\n")),
            (std::vector<std::string>{"/bin/app", "--port", "5000"}));
  EXPECT_EQ(parse_cmd_file(as_bytes("/bin/app\n\nx")), (std::vector<std::string>{"/bin/app", "", "x"}));
  EXPECT_EQ(parse_cmd_file(as_bytes("app with space\n")), (std::vector<std::string>{"app with space"}));
}

TEST(ImageFiles, EnvLinesAreAssignments) {
  EXPECT_TRUE(parse_env_file(as_bytes("")).empty());
  EXPECT_EQ(parse_env_file(as_bytes("A=1\nB=x=y\nC=\n")), (std::vector<std::string>{"A=1", "B=x=y", "C="}));
}

TEST(ImageFiles, MalformedFilesAreRefused) {
  EXPECT_THROW(parse_cmd_file(as_bytes("")), Error);
  EXPECT_THROW(parse_cmd_file(as_bytes("\n/bin/app\n")), Error);
  EXPECT_THROW(parse_env_file(as_bytes("NOEQUALS\n")), Error);
  EXPECT_THROW(parse_env_file(as_bytes("=value\n")), Error);
  Bytes nul = {'/', 'a', 0, 'b', '\n'};
  EXPECT_THROW(parse_cmd_file(nul), Error);
  std::string big((1 << 20) + 1, 'a');
  EXPECT_THROW(parse_cmd_file(as_bytes(big)), Error);
}
