// HKDF-SHA256 against the RFC 5869 appendix A vectors (test cases 1 to 3).
#include <gtest/gtest.h>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/hkdf.h"
#include "support/expect_error.h"

using namespace shield_nitro;

namespace {

Bytes run(uint8_t first, size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(first + i);
  return b;
}

std::string okm(const SecureBytes& s) { return hex_encode(s.view()); }

}  // namespace

TEST(Hkdf, Rfc5869Case1Basic) {
  Bytes ikm(22, 0x0b);
  EXPECT_EQ(okm(hkdf_sha256(ikm, run(0x00, 13), run(0xf0, 10), 42)),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  // Expand alone from the case's PRK gives the same OKM.
  Bytes prk = hex_decode("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
  EXPECT_EQ(okm(hkdf_sha256_expand(prk, run(0xf0, 10), 42)),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(Hkdf, Rfc5869Case2LongInputs) {
  EXPECT_EQ(okm(hkdf_sha256(run(0x00, 80), run(0x60, 80), run(0xb0, 80), 82)),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275"
            "600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
  Bytes prk = hex_decode("06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244");
  EXPECT_EQ(okm(hkdf_sha256_expand(prk, run(0xb0, 80), 82)),
            okm(hkdf_sha256(run(0x00, 80), run(0x60, 80), run(0xb0, 80), 82)));
}

TEST(Hkdf, Rfc5869Case3EmptySaltAndInfo) {
  Bytes ikm(22, 0x0b);
  EXPECT_EQ(okm(hkdf_sha256(ikm, {}, {}, 42)),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
  Bytes prk = hex_decode("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04");
  EXPECT_EQ(okm(hkdf_sha256_expand(prk, {}, 42)),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST(Hkdf, RefusesLengthsTheRfcDoesNotAllow) {
  Bytes ikm(22, 0x0b);
  EXPECT_EQ(hkdf_sha256(ikm, {}, {}, 255 * 32).size(), 255u * 32);
  for (size_t bad : {size_t{0}, size_t{255 * 32 + 1}})
    EXPECT_EQ(test_support::code_of([&] { hkdf_sha256(ikm, {}, {}, bad); }), Errc::kUsage) << bad;
}
