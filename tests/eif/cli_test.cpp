// The eif commands end to end through the real CLI binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

using eif_test::fixture;
using eif_test::run;
using eif_test::TempDir;

namespace {
std::string cli() { return std::string(SN_CLI) + " eif "; }
std::string q(const std::string& s) { return "'" + s + "'"; }
// Fixture files differ in whether they end with a newline; the CLI always prints one.
std::string text_of(const std::string& path) {
  std::string t = eif_test::slurp_text(path);
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t + "\n";
}
}  // namespace

TEST(EifCli, DescribeMatchesFixtureText) {
  std::string out;
  ASSERT_EQ(run(cli() + "describe --json " + q(fixture("signed/tiny-signed-p384.eif")), &out), 0);
  EXPECT_EQ(out, text_of(fixture("signed/describe-p384.json")));
  ASSERT_EQ(run(cli() + "describe --hash-label legacy " + q(fixture("tiny/tiny-x86_64.eif")), &out), 0);
  EXPECT_NE(out.find("\"Sha384 { ... }\""), std::string::npos);
  EXPECT_EQ(run(cli() + "describe " + q(fixture("tiny/kernel.bin")) + " 2>/dev/null"), 1);
  EXPECT_EQ(run(cli() + "describe /nonexistent.eif 2>/dev/null"), 3);
  EXPECT_EQ(run(cli() + "describe --hash-label nope " + q(fixture("tiny/tiny-x86_64.eif")) + " 2>/dev/null"), 2);
}

TEST(EifCli, PcrOfFileAndCertificate) {
  std::string out;
  ASSERT_EQ(run(cli() + "pcr --input " + q(fixture("tiny/kernel.bin")), &out), 0);
  EXPECT_EQ(nlohmann::json::parse(out)["PCR"], "eccf4e98a898b8d1d572df8d6c3dafc1e397fc2527c833f470e7f18cde9e9f765ec1f88324c91b0d6d29639e88fe88ef");
  ASSERT_EQ(run(cli() + "pcr --signing-cert " + q(fixture("signed/cert-p256.pem")), &out), 0);
  EXPECT_EQ(nlohmann::json::parse(out)["PCR8"], "05c6acc95c5056a7fe29ac37b352c43dc8c5a50db77785b4c02330f586636f2765e50f952ece2a348bb5a2d3e1d1978a");
  EXPECT_EQ(run(cli() + "pcr 2>/dev/null"), 2);
}

TEST(EifCli, BuildTinyExtractAndRebuild) {
  TempDir t;
  std::string tiny = " --kernel " + q(fixture("tiny/kernel.bin")) + " --cmdline " + q(fixture("tiny/cmdline.txt")) +
                     " --metadata " + q(fixture("tiny/metadata.json"));
  std::string out;
  ASSERT_EQ(run(cli() + "build" + tiny + " --ramdisk " + q(fixture("tiny/ramdisk0.bin")) + " --ramdisk " +
                    q(fixture("tiny/ramdisk1.bin")) + " --arch aarch64 --json -o " + q(t / "t.eif") + " 2>/dev/null",
                &out),
            0);
  EXPECT_EQ(out, text_of(fixture("tiny/build-aarch64.json")));
  EXPECT_EQ(eif_test::slurp(t / "t.eif"), eif_test::slurp(fixture("tiny/tiny-aarch64.eif")));
  ASSERT_EQ(run(cli() + "extract " + q(t / "t.eif") + " -o " + q(t / "x") + " >/dev/null"), 0);
  ASSERT_EQ(run(cli() + "build --kernel " + q(t / "x/kernel") + " --cmdline " + q(t / "x/cmdline") + " --metadata " +
                q(t / "x/metadata.json") + " --ramdisk " + q(t / "x/ramdisk-0.cpio") + " --ramdisk " +
                q(t / "x/ramdisk-1.cpio") + " --arch aarch64 -o " + q(t / "t2.eif") + " >/dev/null 2>&1"),
            0);
  EXPECT_EQ(eif_test::slurp(t / "t2.eif"), eif_test::slurp(t / "t.eif"));
}

TEST(EifCli, BuildFromRootfsTarWithBlobsAndSigning) {
  TempDir t;
  std::string out;
  std::string args = " --blobs " + q(fixture("blobs/x86_64")) + " --kernel " + q(fixture("tiny/kernel.bin")) +
                     " --rootfs-tar " + q(fixture("linuxkit/export.tar")) +
                     R"( --cmd '["/bin/hello.sh"]' --env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --env 'HELLO=Hello from the enclave side!' --arch x86_64)";
  ASSERT_EQ(run(cli() + "build" + args + " -o " + q(t / "a.eif") + " 2>/dev/null", &out), 0);
  auto hashes = nlohmann::json::parse(eif_test::slurp_text(fixture("linuxkit/hashes.json")));
  auto m = nlohmann::json::parse(out)["Measurements"];
  EXPECT_EQ(m["PCR1"], hashes["composite_eif_tiny_kernel_plus_real_bootstrap_plus_customer"]["PCR1"]);
  EXPECT_EQ(m["PCR2"], hashes["PCR2_if_customer.cpio_is_the_only_user_ramdisk"]);
  ASSERT_EQ(run("SOURCE_DATE_EPOCH=0 " + cli() + "build" + args + " -o " + q(t / "b.eif") + " >/dev/null 2>&1"), 0);
  EXPECT_EQ(eif_test::slurp(t / "a.eif"), eif_test::slurp(t / "b.eif"));
  ASSERT_EQ(run(cli() + "build" + args + " --sign-cert " + q(fixture("signed/cert-p384.pem")) + " --sign-key " +
                    q(fixture("signed/key-p384.pem")) + " -o " + q(t / "s.eif") + " 2>/dev/null",
                &out),
            0);
  EXPECT_TRUE(nlohmann::json::parse(out)["Measurements"].contains("PCR8"));
  ASSERT_EQ(run(cli() + "describe " + q(t / "s.eif"), &out), 0);
  EXPECT_TRUE(nlohmann::json::parse(out)["SignatureCheck"].get<bool>());
  EXPECT_EQ(run(cli() + "build" + args + " --sign-cert " + q(fixture("signed/cert-p384.pem")) + " --sign-key " +
                q(fixture("signed/key-p256.pem")) + " -o " + q(t / "bad.eif") + " >/dev/null 2>&1"),
            2);
  EXPECT_FALSE(std::filesystem::exists(t / "bad.eif"));
  EXPECT_EQ(run(cli() + "build --blobs " + q(fixture("blobs/x86_64")) + " --kernel " + q(fixture("tiny/kernel.bin")) +
                " --rootfs-tar " + q(fixture("linuxkit/export.tar")) + " -o " + q(t / "c.eif") + " 2>/dev/null"),
            2);  // --cmd is required without an image config
}

TEST(EifCli, RamdiskCommandMatchesLinuxkit) {
  TempDir t;
  ASSERT_EQ(run(cli() + "ramdisk --rootfs-tar " + q(fixture("linuxkit/export-min.tar")) +
                R"( --cmd '["/app/server","--port","8080"]' -o )" + q(t / "c.cpio")),
            0);
  EXPECT_EQ(eif_test::slurp(t / "c.cpio"), eif_test::slurp(fixture("linuxkit/customer-min.cpio")));
  ASSERT_EQ(run(cli() + "ramdisk --bootstrap --init " + q(fixture("blobs/aarch64/init")) + " --nsm-ko " +
                q(fixture("blobs/aarch64/nsm.ko")) + " -o " + q(t / "b.cpio")),
            0);
  EXPECT_EQ(std::filesystem::file_size(t / "b.cpio"), 762368u);
  EXPECT_EQ(run(cli() + "ramdisk --bootstrap -o " + q(t / "x.cpio") + " 2>/dev/null"), 2);
}

TEST(EifCli, RootfsCommand) {
  TempDir t;
  ASSERT_EQ(run(cli() + "rootfs --binary " + q(SN_CLI) + " -o " + q(t / "r") + " 2>/dev/null"), 0);
  EXPECT_TRUE(std::filesystem::is_regular_file(t / "r/bin/shield-nitro"));
  EXPECT_EQ(run(cli() + "rootfs --binary " + q(SN_CLI) + " --file nocolon -o " + q(t / "r2") + " 2>/dev/null"), 2);
}

// A gzip'd layer is inflated next to the output, never in $TMPDIR, and one that inflates past
// --max-layer-mib is refused with one line naming it; neither run leaves a file behind.
TEST(EifCli, GzipLayersInflateNextToTheOutputWithinABound) {
  TempDir t;
  eif_test::TarWriter layer;
  layer.file("app/zeros", std::string(size_t{3} << 20, '\0'));  // 3 MiB that gzip to a few KiB
  eif_test::TarWriter img;
  img.file("c.json", R"({"config":{"Cmd":["/app/zeros"]}})");
  img.file("l.tar.gz", shield_nitro::to_string(eif_test::gzip(layer.finish())));
  img.file("manifest.json", R"([{"Config":"c.json","Layers":["l.tar.gz"]}])");
  std::filesystem::create_directory(t / "in");
  std::filesystem::create_directory(t / "out");
  eif_test::spit(t / "in/img.tar", img.finish());
  auto names_in = [](const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
    return out;
  };

  std::string out;
  EXPECT_EQ(run("TMPDIR=" + q(t / "no-such-dir") + " " + cli() + "ramdisk --image " + q(t / "in/img.tar") + " -o " +
                    q(t / "out/r.cpio") + " 2>&1",
                &out),
            0)
      << out;
  EXPECT_EQ(names_in(t / "out"), std::vector<std::string>{"r.cpio"});

  out.clear();
  EXPECT_EQ(run(cli() + "ramdisk --max-layer-mib 2 --image " + q(t / "in/img.tar") + " -o " + q(t / "out/small.cpio") +
                    " 2>&1",
                &out),
            1);
  EXPECT_NE(out.find("layer 'l.tar.gz'"), std::string::npos) << out;
  EXPECT_NE(out.find("inflates past 2 MiB"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(names_in(t / "out"), std::vector<std::string>{"r.cpio"});
  EXPECT_EQ(names_in(t / "in"), std::vector<std::string>{"img.tar"});
  EXPECT_EQ(run(cli() + "ramdisk --max-layer-mib 0 --image " + q(t / "in/img.tar") + " -o " + q(t / "out/z.cpio") +
                " 2>/dev/null"),
            2);
}
