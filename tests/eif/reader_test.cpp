// EifReader on damaged files: every structural problem is a clear kFormat/kUnsupported error,
// a CRC mismatch is reported (not fatal), nothing crashes.
#include <gtest/gtest.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/describe.h"
#include "shield_nitro/eif/format.h"
#include "shield_nitro/eif/reader.h"
#include "shield_nitro/eif/signature.h"
#include "test_util.h"

using namespace shield_nitro;
using namespace shield_nitro::eif;
using eif_test::fixture;
using eif_test::slurp;

namespace {

Bytes tiny() { return slurp(fixture("tiny/tiny-x86_64.eif")); }

void put_be(Bytes& b, size_t at, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i, v >>= 8) b[at + i] = static_cast<uint8_t>(v);
}

EifReader open_mem(const Bytes& b) { return EifReader(std::make_shared<MemorySource>(b)); }

// Expects construction (and a scan) to fail with code, with `needle` in the message.
void expect_error(const Bytes& b, Errc code, const std::string& needle) {
  try {
    open_mem(b).scan();
    ADD_FAILURE() << "accepted a file that should fail with: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

constexpr size_t kOffsets = 0x1c, kSizes = 0x11c;

}  // namespace

TEST(EifReaderNegative, BadMagic) {
  Bytes b = tiny();
  b[0] = 'x';
  expect_error(b, Errc::kFormat, "bad magic");
}

TEST(EifReaderNegative, UnsupportedVersions) {
  for (uint16_t v : {0, 1, 5, 0xffff}) {
    Bytes b = tiny();
    put_be(b, 4, v, 2);
    expect_error(b, Errc::kUnsupported, "unsupported EIF version");
  }
}

TEST(EifReaderNegative, NumSectionsOutOfRangeOrInconsistent) {
  Bytes b = tiny();
  put_be(b, 0x1a, 33, 2);
  expect_error(b, Errc::kFormat, "num_sections");
  b = tiny();
  put_be(b, 0x1a, 4, 2);  // the fifth table entry is now "beyond num_sections"
  expect_error(b, Errc::kFormat, "beyond num_sections");
}

TEST(EifReaderNegative, OverlappingSections) {
  Bytes b = tiny();
  put_be(b, kOffsets + 8, 548 + 100, 8);  // cmdline starts inside the kernel
  expect_error(b, Errc::kFormat, "");
}

TEST(EifReaderNegative, SectionPastTheEnd) {
  Bytes b = tiny();
  put_be(b, kSizes + 4 * 8, 1u << 30, 8);
  expect_error(b, Errc::kFormat, "passes the end");
  b = tiny();
  put_be(b, kOffsets + 4 * 8, 0xfffffffffffffff0ULL, 8);
  expect_error(b, Errc::kFormat, "passes the end");
}

TEST(EifReaderNegative, HeaderSizeDisagreesWithTable) {
  Bytes b = tiny();
  put_be(b, 4656 + 4, 70, 8);  // cmdline section header says 70, the table 69
  expect_error(b, Errc::kFormat, "table says");
}

TEST(EifReaderNegative, InvalidSectionTypes) {
  for (uint16_t t : {0, 6, 0xffff}) {
    Bytes b = tiny();
    put_be(b, 4656, t, 2);
    expect_error(b, Errc::kFormat, "invalid type");
  }
}

TEST(EifReaderNegative, KernelNotFirstAndMissingMetadata) {
  Bytes b = tiny();
  put_be(b, 548, 3, 2);  // the kernel section now claims to be a ramdisk
  expect_error(b, Errc::kFormat, "first section must be the kernel");
  b = tiny();
  put_be(b, 4737, 3, 2);  // the metadata section becomes a ramdisk
  expect_error(b, Errc::kFormat, "metadata");
}

TEST(EifReaderNegative, TruncatedAndTrailingBytes) {
  Bytes b = tiny();
  for (size_t n : {0, 10, 547, 548, 600, 5126}) {
    Bytes cut(b.begin(), b.begin() + static_cast<long>(n));
    EXPECT_THROW(open_mem(cut), Error) << n;
  }
  b.push_back(0);
  expect_error(b, Errc::kFormat, "after the last section");
}

TEST(EifReaderNegative, CrcMismatchIsReportedNotFatal) {
  Bytes b = tiny();
  b[600] ^= 1;  // a kernel byte
  auto r = open_mem(b);
  ScanResult s = r.scan();
  EXPECT_FALSE(s.crc_ok);
  auto d = describe_json(r, HashLabel::kCurrent);
  EXPECT_FALSE(d["CheckCRC"].get<bool>());
  EXPECT_NE(hex_encode(s.measurements.pcr0), "396a67eabd05ad2e702d5ebc8fbabf525dc168f372e3f65a86a875a2f73025bca176464833cfcd68a4dc860929777e89");
  Bytes c = tiny();
  c[0x220] ^= 0xff;  // the stored CRC itself
  EXPECT_FALSE(open_mem(c).scan().crc_ok);
}

TEST(EifReaderNegative, SignatureSectionThatDoesNotDecode) {
  Bytes b = slurp(fixture("signed/tiny-signed-p384.eif"));
  auto r = open_mem(b);
  const SectionInfo* s = r.signature_section();
  ASSERT_NE(s, nullptr);
  b[s->data_offset] = 0xff;  // not an array
  EXPECT_THROW(open_mem(b).scan(), Error);
}

TEST(EifReaderNegative, SignatureByADifferentKeyFailsVerification) {
  auto r = EifReader::open(fixture("signed/tiny-signed-p384.eif"));
  auto pcr0 = r.scan().measurements.pcr0;
  auto entry = decode_signature_section(*r.signature()).front();
  EXPECT_TRUE(verify_pcr0_signature(entry, pcr0));
  // Same COSE bytes presented with another certificate: must not verify.
  SignatureEntry swapped{slurp(fixture("signed/cert-p256.pem")), entry.cose_sign1};
  EXPECT_FALSE(verify_pcr0_signature(swapped, pcr0));
  // A signature made by the P-256 key presented under the P-384 certificate.
  SignatureEntry other = sign_pcr0(pcr0, slurp(fixture("signed/cert-p256.pem")), slurp(fixture("signed/key-p256.pem")));
  other.certificate_pem = slurp(fixture("signed/cert-p384.pem"));
  EXPECT_FALSE(verify_pcr0_signature(other, pcr0));
  // Right key, wrong PCR0.
  Digest48 wrong = pcr0;
  wrong[0] ^= 1;
  EXPECT_FALSE(verify_pcr0_signature(entry, wrong));
  EXPECT_THROW(sign_pcr0(pcr0, slurp(fixture("signed/cert-p256.pem")), slurp(fixture("signed/key-p384.pem"))), Error);
}

TEST(EifReader, StreamsSectionsAndMeasuresWithOneCall) {
  auto r = EifReader::open(fixture("tiny/tiny-aarch64.eif"));
  EXPECT_EQ(r.arch(), Arch::kAarch64);
  Bytes kernel;
  r.stream_section(r.kernel(), [&](ByteView b) { kernel.insert(kernel.end(), b.begin(), b.end()); });
  EXPECT_EQ(kernel, slurp(fixture("tiny/kernel.bin")));
  EXPECT_EQ(r.cmdline(), slurp(fixture("tiny/cmdline.txt")));
  EXPECT_EQ(r.ramdisks().size(), 2u);
  EXPECT_FALSE(r.is_signed());
  EXPECT_EQ(hex_encode(measure(fixture("tiny/tiny-x86_64.eif")).pcr2),
            "d728b1026ad0336d7177cd25d724822adba50caf319435eeb7b8a3e50d9fea3bd9630ddcf32861e9a72b2673f32e9eda");
  EXPECT_THROW(EifReader::open("/nonexistent.eif"), Error);
}
