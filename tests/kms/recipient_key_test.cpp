#include <gtest/gtest.h>

#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/kms/cms.h"
#include "shield_nitro/kms/recipient_key.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;

TEST(RecipientKey, SpkiIsRsa2048AndOpensItsEnvelopes) {
  RecipientKeyManager mgr(std::chrono::seconds(0));
  auto pair = mgr.current();
  EXPECT_EQ(pair->spki_der().size(), 294u);
  EXPECT_EQ(EVP_PKEY_get_bits(pair->private_key()), 2048);
  Bytes plaintext(32, 7);
  EXPECT_EQ(to_bytes(pair->open(build_recipient_envelope(plaintext, pair->spki_der())).view()), plaintext);
  EXPECT_EQ(mgr.generations(), 1u);
}

TEST(RecipientKey, RotatesInBackgroundWhileOldPairsStayUsable) {
  RecipientKeyManager mgr(std::chrono::seconds(1));
  auto first = mgr.current();
  Bytes envelope = build_recipient_envelope(as_bytes("in flight"), first->spki_der());
  for (int i = 0; i < 300 && mgr.generations() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GE(mgr.generations(), 2u);
  EXPECT_NE(mgr.current()->spki_der(), first->spki_der());
  EXPECT_EQ(to_string(first->open(envelope).view()), "in flight");  // the held pair still opens
  EXPECT_THROW(mgr.current()->open(envelope), Error);
}
