// PCR3/PCR4 derivation and debug-mode zeroing, against the values AWS publishes.
#include <gtest/gtest.h>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/sim/pcrs.h"

using namespace shield_nitro;
using namespace shield_nitro::sim;

namespace {
eif::Measurements sample_image() {
  eif::Measurements m;
  m.pcr0.fill(0xA0);
  m.pcr1.fill(0xA1);
  m.pcr2.fill(0xA2);
  return m;
}
std::string hex(const eif::Digest48& d) { return hex_encode(ByteView(d.data(), d.size())); }
}  // namespace

TEST(SimPcrs, RuntimePcrsMatchTheAwsUserGuideExamples) {
  // spec/nsm.md §4: the AWS user guide's role and instance examples.
  std::string pcr3 = hex(runtime_pcr("arn:aws:iam::123456789012:role/Webserver"));
  std::string pcr4 = hex(runtime_pcr("i-1234567890abcdef0"));
  EXPECT_EQ(pcr3.substr(0, 8), "78fce75d");
  EXPECT_EQ(pcr3.substr(88), "2e6921e6");
  EXPECT_EQ(pcr4.substr(0, 8), "08f996b5");
  EXPECT_EQ(pcr4.substr(88), "7ae79ce0");
}

TEST(SimPcrs, ImagePcrsAndRuntimePcrs) {
  PcrInputs in{sample_image(), "arn:aws:iam::123456789012:role/Webserver", "i-1234567890abcdef0", false};
  auto pcrs = enclave_pcrs(in);
  ASSERT_EQ(pcrs.size(), 16u);
  EXPECT_EQ(pcrs[0], Bytes(48, 0xA0));
  EXPECT_EQ(pcrs[1], Bytes(48, 0xA1));
  EXPECT_EQ(pcrs[2], Bytes(48, 0xA2));
  EXPECT_EQ(hex_encode(pcrs[3]).substr(0, 8), "78fce75d");
  EXPECT_EQ(hex_encode(pcrs[4]).substr(0, 8), "08f996b5");
  EXPECT_EQ(pcrs[8], Bytes(48, 0));  // unsigned image
  for (int i : {5, 6, 7, 9, 15}) EXPECT_EQ(pcrs[i], Bytes(48, 0));
}

TEST(SimPcrs, SignedImageCarriesPcr8) {
  PcrInputs in{sample_image(), "", "", false};
  in.image.pcr8.emplace();
  in.image.pcr8->fill(0xA8);
  auto pcrs = enclave_pcrs(in);
  EXPECT_EQ(pcrs[8], Bytes(48, 0xA8));
  EXPECT_EQ(pcrs[3], Bytes(48, 0));  // no role: zeros
  EXPECT_EQ(pcrs[4], Bytes(48, 0));
}

TEST(SimPcrs, DebugModeZeroesImagePcrsButKeepsRuntimeOnes) {
  PcrInputs in{sample_image(), "arn:aws:iam::123456789012:role/Webserver", "i-1234567890abcdef0", true};
  in.image.pcr8.emplace();
  in.image.pcr8->fill(0xA8);
  auto pcrs = enclave_pcrs(in);
  for (int i : {0, 1, 2, 8}) EXPECT_EQ(pcrs[i], Bytes(48, 0)) << i;
  EXPECT_EQ(hex_encode(pcrs[3]).substr(0, 8), "78fce75d");
  EXPECT_EQ(hex_encode(pcrs[4]).substr(0, 8), "08f996b5");
}
