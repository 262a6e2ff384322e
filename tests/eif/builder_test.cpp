// Builder round trips, reproducibility, architectures, signing failures and image inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/builder.h"
#include "shield_nitro/eif/describe.h"
#include "shield_nitro/eif/extract.h"
#include "shield_nitro/eif/image.h"
#include "shield_nitro/eif/metadata.h"
#include "shield_nitro/eif/ramdisk.h"
#include "shield_nitro/eif/reader.h"
#include "test_util.h"

using namespace shield_nitro;
using namespace shield_nitro::eif;
using eif_test::fixture;
using eif_test::slurp;
using eif_test::TempDir;
namespace fs = std::filesystem;

namespace {

void make_tree(const std::string& root) {
  fs::create_directories(root + "/app/data");
  eif_test::spit(root + "/app/server", Bytes{'#', '!', 'x'});
  eif_test::spit(root + "/app/data/model.bin", Bytes(5000, 7));
  fs::create_symlink("server", root + "/app/run");
  fs::create_hard_link(root + "/app/server", root + "/app/server-copy");
  fs::permissions(root + "/app/server", fs::perms(0755));
}

BuildInput input_for(const std::vector<FsEntry>& stream, Arch arch) {
  BuildInput in;
  in.kernel_path = fixture("tiny/kernel.bin");
  in.cmdline = slurp(fixture("tiny/cmdline.txt"));
  in.ramdisks = {{"", bootstrap_ramdisk(fixture("blobs/x86_64/init"), fixture("blobs/x86_64/nsm.ko"))},
                 {"", customer_ramdisk(stream, {"/app/server"}, {"A=1"})}};
  in.arch = arch;
  BuildMetadata m;
  m.image_name = "app";
  m.build_time = format_build_time(0);
  std::string meta = serialize_metadata(m);
  in.metadata = Bytes(meta.begin(), meta.end());
  in.progress = false;
  return in;
}

}  // namespace

TEST(EifBuilder, RoundTripBuildDescribeExtractRebuild) {
  TempDir t;
  make_tree(t / "root");
  auto stream = scan_rootfs_dir(t / "root", 1700000000);
  BuildResult first = build_eif(input_for(stream, Arch::kAarch64), t / "a.eif");
  auto d = describe_json(EifReader::open(t / "a.eif"), HashLabel::kCurrent);
  EXPECT_EQ(d["Measurements"]["PCR0"].get<std::string>(), hex_encode(first.measurements.pcr0));
  EXPECT_TRUE(d["CheckCRC"].get<bool>());
  EXPECT_EQ(d["ImageName"].get<std::string>(), "app");

  auto files = extract_eif(t / "a.eif", t / "x", true).files;
  EXPECT_EQ(files.front(), "kernel");
  EXPECT_TRUE(fs::is_regular_file(t / "x/ramdisk-1/rootfs/app/data/model.bin"));
  EXPECT_EQ(fs::read_symlink(t / "x/ramdisk-1/rootfs/app/run"), "server");
  EXPECT_EQ(fs::read_symlink(t / "x/ramdisk-1/rootfs/app/server-copy"), "server");  // hard link -> relative symlink
  EXPECT_EQ(eif_test::slurp_text(t / "x/ramdisk-1/cmd"), "/app/server\n");
  EXPECT_TRUE(fs::is_regular_file(t / "x/ramdisk-0/init"));

  BuildInput again;
  again.kernel_path = t / "x/kernel";
  again.cmdline = slurp(t / "x/cmdline");
  again.ramdisks = {{t / "x/ramdisk-0.cpio", {}}, {t / "x/ramdisk-1.cpio", {}}};
  again.metadata = slurp(t / "x/metadata.json");
  again.arch = Arch::kAarch64;
  again.progress = false;
  build_eif(again, t / "b.eif");
  EXPECT_EQ(slurp(t / "a.eif"), slurp(t / "b.eif"));
}

TEST(EifBuilder, ReproducibleAndArchitectureOnlyChangesFlagsAndCrc) {
  TempDir t;
  make_tree(t / "r1");
  make_tree(t / "r2");  // created later: different on-disk mtimes, same content
  BuildResult x = build_eif(input_for(scan_rootfs_dir(t / "r1", 0), Arch::kX86_64), t / "x.eif");
  build_eif(input_for(scan_rootfs_dir(t / "r2", 0), Arch::kX86_64), t / "x2.eif");
  EXPECT_EQ(slurp(t / "x.eif"), slurp(t / "x2.eif"));
  BuildResult a = build_eif(input_for(scan_rootfs_dir(t / "r1", 0), Arch::kAarch64), t / "a.eif");
  EXPECT_EQ(x.measurements.pcr0, a.measurements.pcr0);
  EXPECT_EQ(x.measurements.pcr2, a.measurements.pcr2);
  EXPECT_NE(x.crc32, a.crc32);
  Bytes bx = slurp(t / "x.eif"), ba = slurp(t / "a.eif");
  EXPECT_EQ(bx[7], 0);
  EXPECT_EQ(ba[7], 1);
  EXPECT_EQ(EifReader::open(t / "a.eif").arch(), Arch::kAarch64);
}

TEST(EifBuilder, FailedSigningLeavesNoFile) {
  TempDir t;
  BuildInput in = input_for({}, Arch::kX86_64);
  in.signing = SigningInput{slurp(fixture("signed/cert-p384.pem")), slurp(fixture("signed/key-p256.pem"))};
  EXPECT_THROW(build_eif(in, t / "s.eif"), Error);
  EXPECT_TRUE(fs::is_empty(t.path()));
  in.signing = SigningInput{Bytes{'x'}, slurp(fixture("signed/key-p256.pem"))};
  EXPECT_THROW(build_eif(in, t / "s.eif"), Error);
  EXPECT_TRUE(fs::is_empty(t.path()));
}

TEST(EifBuilder, MissingInputsAreErrors) {
  TempDir t;
  BuildInput in = input_for({}, Arch::kX86_64);
  in.kernel_path = t / "missing";
  EXPECT_THROW(build_eif(in, t / "o.eif"), Error);
  in = input_for({}, Arch::kX86_64);
  in.ramdisks.clear();
  EXPECT_THROW(build_eif(in, t / "o.eif"), Error);
  EXPECT_TRUE(fs::is_empty(t.path()));
}

TEST(EifExtract, RefusesNonEmptyTargetAndBadFiles) {
  TempDir t;
  fs::create_directories(t / "busy");
  eif_test::spit(t / "busy/keep", Bytes{1});
  EXPECT_THROW(extract_eif(fixture("tiny/tiny-x86_64.eif"), t / "busy", false), Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(t.path()), fs::directory_iterator()), 1);
  // The tiny ramdisks are not cpio archives: --unpack fails and leaves nothing behind.
  EXPECT_THROW(extract_eif(fixture("tiny/tiny-x86_64.eif"), t / "x", true), Error);
  EXPECT_FALSE(fs::exists(t / "x"));
  auto r = extract_eif(fixture("signed/tiny-signed-p256.eif"), t / "s", false);
  EXPECT_EQ(r.files.back(), "signature.cbor");
  EXPECT_EQ(slurp(t / "s/metadata.json"), slurp(fixture("tiny/metadata.json")));
}

TEST(EifMetadata, SerializationAndBuildTimes) {
  BuildMetadata m;
  m.image_name = "tiny";
  m.image_version = "1.0";
  m.build_time = format_build_time(parse_build_time("1970-01-01T00:00:00Z"));
  m.build_tool = "eifref";
  m.build_tool_version = "0.0.0";
  m.kernel_version = "0.0.0";
  EXPECT_EQ(serialize_metadata(m), eif_test::slurp_text(fixture("tiny/metadata.json")));
  m.custom_metadata = nlohmann::json::parse(R"({"b":1,"a":{"z":1,"y":2}})");
  EXPECT_NE(serialize_metadata(m).find(R"("CustomMetadata":{"a":{"y":2,"z":1},"b":1})"), std::string::npos);
  EXPECT_EQ(parse_build_time("1700000000"), 1700000000);
  EXPECT_EQ(format_build_time(parse_build_time("2024-01-02T03:04:05+00:00")), "2024-01-02T03:04:05+00:00");
  EXPECT_THROW(parse_build_time("2024-01-02T03:04:05+02:00"), Error);
  EXPECT_THROW(parse_build_time("yesterday"), Error);
  auto info = kernel_config_info("#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 4.14.256 Kernel Configuration\n");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->first, "Linux");
  EXPECT_EQ(info->second, "4.14.256");
}

TEST(EifDescribe, CustomMetadataIsFlattenedInSortedOrder) {
  TempDir t;
  BuildInput in = input_for({}, Arch::kX86_64);
  BuildMetadata m;
  m.image_name = "n";
  m.image_version = "v";
  m.build_time = format_build_time(1700000000);
  m.custom_metadata = nlohmann::json::parse(R"({"zeta":true,"alpha":{"k":[1,2]}})");
  std::string meta = serialize_metadata(m);
  in.metadata = Bytes(meta.begin(), meta.end());
  build_eif(in, t / "m.eif");
  auto d = describe_json(EifReader::open(t / "m.eif"), HashLabel::kLegacy);
  EXPECT_EQ(d["Measurements"]["HashAlgorithm"], "Sha384 { ... }");
  EXPECT_EQ(d["ImageVersion"], "v");
  std::vector<std::string> keys;
  for (auto it = d["Metadata"].begin(); it != d["Metadata"].end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"BuildTime", "BuildTool", "BuildToolVersion", "OperatingSystem",
                                            "KernelVersion", "DockerInfo", "alpha", "zeta"}));
  EXPECT_EQ(d["Metadata"]["BuildTime"], "2023-11-14T22:13:20+00:00");
  EXPECT_FALSE(d.contains("SignatureCheck"));
}
