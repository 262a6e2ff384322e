// The decrypt-side salt cache on its own: LRU order, bound, and sharing with in-flight users.
#include "salt_cache.h"

#include <gtest/gtest.h>

namespace shield_nitro::shield::detail {
namespace {

Salt salt(uint8_t b) {
  Salt s{};
  s.fill(b);
  return s;
}

std::shared_ptr<const KeyEntry> entry(uint8_t b) { return std::make_shared<const KeyEntry>(SecureBytes(Bytes(32, b))); }

TEST(SaltCache, EvictsLeastRecentlyUsed) {
  SaltCache c(2);
  c.insert(salt(1), entry(1));
  c.insert(salt(2), entry(2));
  ASSERT_NE(c.find(salt(1)), nullptr);  // 1 is now the most recent
  c.insert(salt(3), entry(3));
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.find(salt(2)), nullptr);
  ASSERT_NE(c.find(salt(1)), nullptr);
  EXPECT_EQ(c.find(salt(1))->master.view()[0], 1);
  ASSERT_NE(c.find(salt(3)), nullptr);
}

TEST(SaltCache, ReinsertKeepsTheFirstEntry) {
  SaltCache c(4);
  c.insert(salt(1), entry(1));
  c.insert(salt(1), entry(9));
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.find(salt(1))->master.view()[0], 1);
}

TEST(SaltCache, EvictedEntryLivesWhileInUse) {
  SaltCache c(1);
  c.insert(salt(1), entry(1));
  auto held = c.find(salt(1));
  c.insert(salt(2), entry(2));
  EXPECT_EQ(c.find(salt(1)), nullptr);
  EXPECT_EQ(held->master.view()[0], 1);
}

TEST(SaltCache, ZeroCapacityCachesNothing) {
  SaltCache c(0);
  c.insert(salt(1), entry(1));
  EXPECT_EQ(c.size(), 0u);
}

}  // namespace
}  // namespace shield_nitro::shield::detail
