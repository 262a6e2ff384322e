// `eif blobs --stand-in` and eif build's errors about a blobs folder, through the real CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

using eif_test::fixture;
using eif_test::run;
using eif_test::slurp_text;
using eif_test::TempDir;

namespace {
std::string cli() { return std::string(SN_CLI) + " eif "; }
std::string q(const std::string& s) { return "'" + s + "'"; }
const char* kFiles[] = {"cmdline", "init", "nsm.ko"};
nlohmann::json measurements(const std::string& out) { return nlohmann::json::parse(out)["Measurements"]; }
}  // namespace

TEST(EifBlobs, StandInsAreDeterministicLabelledAndWarnAboutPcrs) {
  TempDir t;
  std::string out, err;
  ASSERT_EQ(run(cli() + "blobs --stand-in --arch x86_64 -o " + q(t / "a") + " 2>" + q(t / "err"), &out), 0);
  err = slurp_text(t / "err");
  EXPECT_EQ(out, t / "a/bzImage\n" + t / "a/bzImage.config\n" + t / "a/cmdline\n" + t / "a/init\n" + t / "a/nsm.ko\n");
  EXPECT_NE(err.find("STAND-IN"), std::string::npos) << err;
  EXPECT_NE(err.find("PCR0 and PCR1 differ"), std::string::npos) << err;
  EXPECT_NE(err.find("/usr/share/nitro_enclaves/blobs"), std::string::npos) << err;
  for (const char* f : {"bzImage", "bzImage.config", "init", "nsm.ko"})
    EXPECT_NE(slurp_text(t / "a/" + std::string(f)).find("STAND-IN"), std::string::npos) << f;
  EXPECT_NE(slurp_text(t / "a/cmdline").find("shield_nitro_stand_in"), std::string::npos);

  // The same bytes again, in another folder and over itself (an identical file may be rewritten).
  ASSERT_EQ(run(cli() + "blobs --stand-in --arch x86_64 -o " + q(t / "b") + " >/dev/null 2>&1"), 0);
  ASSERT_EQ(run(cli() + "blobs --stand-in --arch x86_64 -o " + q(t / "a") + " >/dev/null 2>&1"), 0);
  for (const char* f : {"bzImage", "bzImage.config", "cmdline", "init", "nsm.ko"})
    EXPECT_EQ(eif_test::slurp(t / "a/" + std::string(f)), eif_test::slurp(t / "b/" + std::string(f))) << f;

  // aarch64 names its kernel Image and its configuration arm64.
  ASSERT_EQ(run(cli() + "blobs --stand-in --arch aarch64 -o " + q(t / "arm") + " 2>/dev/null", &out), 0);
  EXPECT_TRUE(std::filesystem::exists(t / "arm/Image"));
  EXPECT_FALSE(std::filesystem::exists(t / "arm/bzImage"));
  EXPECT_NE(slurp_text(t / "arm/Image.config").find("Linux/arm64"), std::string::npos);
}

// An EIF from stand-ins builds and describes like any other; against nitro-cli's init and nsm.ko
// (the fixtures) only PCR0 and PCR1 change, never PCR2.
TEST(EifBlobs, StandInsBuildAnEifThatDescribes) {
  TempDir t;
  ASSERT_EQ(run(cli() + "blobs --stand-in --arch x86_64 -o " + q(t / "blobs") + " >/dev/null 2>&1"), 0);
  std::string app = R"( --rootfs-tar )" + q(fixture("linuxkit/export.tar")) + R"( --cmd '["/bin/hello.sh"]' --arch x86_64)";
  std::string built, described, real;
  ASSERT_EQ(run(cli() + "build --blobs " + q(t / "blobs") + app + " -o " + q(t / "s.eif") + " 2>/dev/null", &built), 0);
  ASSERT_EQ(run(cli() + "describe " + q(t / "s.eif"), &described), 0);
  EXPECT_EQ(measurements(built), measurements(described));
  auto d = nlohmann::json::parse(described);
  EXPECT_EQ(d["Metadata"]["OperatingSystem"], "Linux");
  EXPECT_TRUE(d["CheckCRC"].get<bool>());

  ASSERT_EQ(run(cli() + "build --blobs " + q(fixture("blobs/x86_64")) + " --kernel " + q(fixture("tiny/kernel.bin")) +
                    app + " -o " + q(t / "r.eif") + " 2>/dev/null",
                &real),
            0);
  EXPECT_EQ(measurements(built)["PCR2"], measurements(real)["PCR2"]);
  EXPECT_NE(measurements(built)["PCR0"], measurements(real)["PCR0"]);
  EXPECT_NE(measurements(built)["PCR1"], measurements(real)["PCR1"]);
}

TEST(EifBlobs, NeverReplacesAnotherFile) {
  TempDir t;
  std::filesystem::create_directory(t / "real");
  eif_test::spit(t / "real/bzImage", shield_nitro::Bytes{'r', 'e', 'a', 'l'});
  std::string out;
  EXPECT_EQ(run(cli() + "blobs --stand-in --arch x86_64 -o " + q(t / "real") + " 2>&1", &out), 2);
  EXPECT_NE(out.find("bzImage exists and is not this stand-in"), std::string::npos) << out;
  EXPECT_EQ(slurp_text(t / "real/bzImage"), "real");
  for (const char* f : kFiles) EXPECT_FALSE(std::filesystem::exists(t / "real/" + std::string(f))) << f;
}

TEST(EifBlobs, UsageErrors) {
  TempDir t;
  std::string out;
  // Without --stand-in: where the real ones come from, and nothing written.
  EXPECT_EQ(run(cli() + "blobs -o " + q(t / "x") + " 2>&1", &out), 2);
  EXPECT_NE(out.find("aws-nitro-enclaves-cli"), std::string::npos) << out;
  EXPECT_NE(out.find("/usr/share/nitro_enclaves/blobs"), std::string::npos) << out;
  EXPECT_NE(out.find("--stand-in"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(t / "x"));
  out.clear();
  EXPECT_EQ(run(cli() + "blobs --stand-in 2>&1", &out), 2);
  EXPECT_NE(out.find("-o DIR"), std::string::npos) << out;
  EXPECT_EQ(run(cli() + "blobs --stand-in --arch riscv -o " + q(t / "x") + " 2>/dev/null"), 2);
  EXPECT_EQ(run(cli() + "blobs --stand-in --nope -o " + q(t / "x") + " 2>/dev/null"), 2);
  EXPECT_FALSE(std::filesystem::exists(t / "x"));
}

// A missing or incomplete blobs folder names the default location and the stand-in command.
TEST(EifBlobs, BuildNamesWhereBlobsComeFrom) {
  TempDir t;
  std::string app = R"( --rootfs-tar )" + q(fixture("linuxkit/export.tar")) + R"( --cmd '["/bin/hello.sh"]' --arch x86_64)";
  std::string out;
  EXPECT_EQ(run(cli() + "build --blobs " + q(t / "none") + app + " -o " + q(t / "a.eif") + " 2>&1", &out), 3);
  EXPECT_NE(out.find("no such folder"), std::string::npos) << out;
  EXPECT_NE(out.find("/usr/share/nitro_enclaves/blobs"), std::string::npos) << out;
  EXPECT_NE(out.find("shield-nitro eif blobs --stand-in -o DIR"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;

  // The fixture folder has cmdline, init and nsm.ko but no kernel.
  out.clear();
  EXPECT_EQ(run(cli() + "build --blobs " + q(fixture("blobs/x86_64")) + app + " -o " + q(t / "a.eif") + " 2>&1", &out), 3);
  EXPECT_NE(out.find("has no bzImage"), std::string::npos) << out;
  EXPECT_NE(out.find("/usr/share/nitro_enclaves/blobs"), std::string::npos) << out;
  EXPECT_NE(out.find("eif blobs --stand-in"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(t / "a.eif"));
}
