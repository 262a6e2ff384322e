// Conformance with fixtures/eif: byte-identical EIFs, PCRs, describe JSON, CBOR vectors,
// linuxkit ramdisks and bootstrap hashes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/builder.h"
#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/describe.h"
#include "shield_nitro/eif/ramdisk.h"
#include "shield_nitro/eif/reader.h"
#include "shield_nitro/eif/signature.h"
#include "shield_nitro/eif/tar.h"
#include "test_util.h"

using namespace shield_nitro;
using namespace shield_nitro::eif;
using eif_test::fixture;
using eif_test::slurp;
using eif_test::TempDir;

namespace {

nlohmann::json load_json(const std::string& rel) { return nlohmann::json::parse(eif_test::slurp_text(fixture(rel))); }

BuildInput tiny_input(Arch arch) {
  BuildInput in;
  in.kernel_path = fixture("tiny/kernel.bin");
  in.cmdline = slurp(fixture("tiny/cmdline.txt"));
  in.ramdisks = {{fixture("tiny/ramdisk0.bin"), {}}, {fixture("tiny/ramdisk1.bin"), {}}};
  in.arch = arch;
  in.metadata = slurp(fixture("tiny/metadata.json"));
  in.progress = false;
  return in;
}

Bytes cpio_bytes(const std::vector<CpioEntry>& entries) {
  Bytes out;
  write_cpio(entries, [&](ByteView b) { out.insert(out.end(), b.begin(), b.end()); });
  return out;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::string text = eif_test::slurp_text(path), cur;
  for (char c : text) {
    if (c == '\n') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

}  // namespace

class TinyArch : public ::testing::TestWithParam<const char*> {};

TEST_P(TinyArch, BuildIsByteIdenticalWithSamePcrs) {
  TempDir t;
  std::string arch = GetParam();
  BuildResult r = build_eif(tiny_input(parse_arch(arch)), t / "out.eif");
  EXPECT_EQ(slurp(t / "out.eif"), slurp(fixture("tiny/tiny-" + arch + ".eif")));
  auto expected = load_json("tiny/build-" + arch + ".json");
  EXPECT_EQ(nlohmann::json::parse(build_output_json(r.measurements, HashLabel::kCurrent).dump()), expected);
}

TEST_P(TinyArch, ReaderAndDescribeMatchFixtures) {
  std::string arch = GetParam();
  auto reader = EifReader::open(fixture("tiny/tiny-" + arch + ".eif"));
  ScanResult s = reader.scan();
  auto expected = load_json("tiny/reader-" + arch + ".json");
  EXPECT_TRUE(s.crc_ok);
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", s.computed_crc);
  EXPECT_EQ(crc, expected["crc32"].get<std::string>());
  EXPECT_EQ(reader.arch(), parse_arch(arch));
  ASSERT_EQ(reader.sections().size(), 5u);
  const uint64_t offsets[] = {548, 4656, 4737, 4986, 5028};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(reader.sections()[i].header_offset, offsets[i]);
  // Key order matters: compare the exact pretty text.
  auto want = nlohmann::ordered_json::parse(eif_test::slurp_text(fixture("tiny/describe-" + arch + ".json")));
  EXPECT_EQ(describe_json(reader, HashLabel::kCurrent).dump(2), want.dump(2));
}

INSTANTIATE_TEST_SUITE_P(Eif, TinyArch, ::testing::Values("x86_64", "aarch64"));

class SignedCurve : public ::testing::TestWithParam<const char*> {};

TEST_P(SignedCurve, DescribeMatchesAndSignatureVerifies) {
  std::string c = GetParam();
  auto reader = EifReader::open(fixture("signed/tiny-signed-" + c + ".eif"));
  auto want = nlohmann::ordered_json::parse(eif_test::slurp_text(fixture("signed/describe-" + c + ".json")));
  EXPECT_EQ(describe_json(reader, HashLabel::kCurrent).dump(2), want.dump(2));
  auto build = load_json("signed/build-" + c + ".json");
  EXPECT_EQ(hex_encode(pcr8_of_certificate(slurp(fixture("signed/cert-" + c + ".pem")))),
            build["Measurements"]["PCR8"].get<std::string>());
  auto entries = decode_signature_section(*reader.signature());
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].certificate_pem, slurp(fixture("signed/cert-" + c + ".pem")));
  EXPECT_EQ(encode_signature_section(entries), *reader.signature());
}

TEST_P(SignedCurve, ResigningGivesAValidFileWithSamePcrs) {
  std::string c = GetParam();
  TempDir t;
  BuildInput in = tiny_input(Arch::kX86_64);
  in.signing = SigningInput{slurp(fixture("signed/cert-" + c + ".pem")), slurp(fixture("signed/key-" + c + ".pem"))};
  BuildResult r = build_eif(in, t / "s.eif");
  auto build = load_json("signed/build-" + c + ".json");
  EXPECT_EQ(nlohmann::json::parse(build_output_json(r.measurements, HashLabel::kCurrent).dump()), build);
  auto d = describe_json(EifReader::open(t / "s.eif"), HashLabel::kCurrent);
  EXPECT_TRUE(d["SignatureCheck"].get<bool>());
  EXPECT_TRUE(d["CheckCRC"].get<bool>());
}

INSTANTIATE_TEST_SUITE_P(Eif, SignedCurve, ::testing::Values("p384", "p256"));

TEST(EifPcr, InputVectors) {
  auto v = load_json("tiny/pcr-input-vectors.json");
  EXPECT_EQ(hex_encode(pcr_of({})), v["empty file"].get<std::string>());
  EXPECT_EQ(hex_encode(pcr_of(slurp(fixture("tiny/kernel.bin")))), v["tiny/kernel.bin"].get<std::string>());
  EXPECT_EQ(hex_encode(sha384({})), v["sha384(\"\") (content digest of empty input)"].get<std::string>());
  EXPECT_EQ(std::string(hash_label(HashLabel::kLegacy)), "Sha384 { ... }");
}

TEST(EifCbor, SerdeCborVectors) {
  auto v = load_json("cbor/vectors.json");
  Bytes value(48);
  for (size_t i = 0; i < 48; ++i) value[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(hex_encode(encode_pcr_info(0, value)), v["PcrInfo{register_index:0, register_value:0x00..=0x2f}"].get<std::string>());
  std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  SignatureEntry e{Bytes(pem.begin(), pem.end()), hex_decode("d28444a101382" "2a04040")};
  std::string key;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key().rfind("vec![PcrSignature", 0) == 0) key = it.key();
  ASSERT_FALSE(key.empty());
  Bytes section = encode_signature_section({e});
  EXPECT_EQ(hex_encode(section), v[key].get<std::string>());
  auto back = decode_signature_section(section);
  EXPECT_EQ(back[0].certificate_pem, e.certificate_pem);
  EXPECT_EQ(back[0].cose_sign1, e.cose_sign1);
}

TEST(EifLinuxkit, ExportTarsGiveIdenticalCustomerCpio) {
  struct Case {
    const char *tar, *cmd, *env, *cpio;
  } cases[] = {{"export.tar", "cmd", "env", "customer.cpio"}, {"export-min.tar", "cmd2", "env2", "customer-min.cpio"}};
  auto hashes = load_json("linuxkit/hashes.json");
  for (const auto& c : cases) {
    auto stream = read_export_tar(fixture(std::string("linuxkit/") + c.tar), "");
    Bytes got = cpio_bytes(customer_ramdisk(stream, lines_of(fixture(std::string("linuxkit/") + c.cmd)),
                                            lines_of(fixture(std::string("linuxkit/") + c.env))));
    EXPECT_EQ(got, slurp(fixture(std::string("linuxkit/") + c.cpio))) << c.tar;
    EXPECT_EQ(cpio_size(customer_ramdisk(stream, {"x"}, {})), cpio_size(customer_ramdisk(stream, {"y"}, {})));
    EXPECT_EQ(hex_encode(sha384(got)), hashes[c.cpio]["sha384"].get<std::string>());
  }
}

TEST(EifLinuxkit, BootstrapRamdisksMatchHashes) {
  auto hashes = load_json("linuxkit/hashes.json");
  for (std::string arch : {"x86_64", "aarch64"}) {
    auto entries = bootstrap_ramdisk(fixture("blobs/" + arch + "/init"), fixture("blobs/" + arch + "/nsm.ko"));
    Bytes got = cpio_bytes(entries);
    const auto& want = hashes["bootstrap-" + arch + ".cpio"];
    EXPECT_EQ(got.size(), want["size"].get<size_t>());
    EXPECT_EQ(cpio_size(entries), got.size());
    EXPECT_EQ(hex_encode(sha384(got)), want["sha384"].get<std::string>()) << arch;
  }
}

TEST(EifLinuxkit, CompositeEifPcrs) {
  TempDir t;
  auto hashes = load_json("linuxkit/hashes.json");
  std::string cmdline = eif_test::slurp_text(fixture("blobs/x86_64/cmdline"));
  while (!cmdline.empty() && (cmdline.back() == '\n' || cmdline.back() == ' ')) cmdline.pop_back();
  BuildInput in;
  in.kernel_path = fixture("tiny/kernel.bin");
  in.cmdline = Bytes(cmdline.begin(), cmdline.end());
  in.ramdisks = {{"", bootstrap_ramdisk(fixture("blobs/x86_64/init"), fixture("blobs/x86_64/nsm.ko"))},
                 {fixture("linuxkit/customer.cpio"), {}}};
  in.metadata = slurp(fixture("tiny/metadata.json"));
  in.progress = false;
  BuildResult r = build_eif(in, t / "c.eif");
  const auto& want = hashes["composite_eif_tiny_kernel_plus_real_bootstrap_plus_customer"];
  EXPECT_EQ(hex_encode(r.measurements.pcr0), want["PCR0"].get<std::string>());
  EXPECT_EQ(hex_encode(r.measurements.pcr1), want["PCR1"].get<std::string>());
  EXPECT_EQ(hex_encode(r.measurements.pcr2), want["PCR2"].get<std::string>());
  EXPECT_EQ(measure(t / "c.eif").pcr0, r.measurements.pcr0);
}
