// RecordCache: the bounded cache of decoded records the file store keeps
// beside its compact index: rev tags, pins that hold a published record
// until its write is applied, fill() never replacing a pinned slot, and the
// CLOCK bound.
#include "cache/record_cache.h"

#include <gtest/gtest.h>

#include <memory>

namespace orchard::cache {
namespace {

std::shared_ptr<const ObjectMeta> meta(uint64_t gen) {
  auto m = std::make_shared<ObjectMeta>();
  m->gen = gen;
  return m;
}

Hash128 H(uint64_t i) { return Hash128{i * 0x9E3779B97F4A7C15ull, i}; }

TEST(RecordCacheTest, AnswersOnlyForTheRevItWasPutWith) {
  RecordCache c(64);
  c.put(H(1), meta(10), 5, false);
  ASSERT_NE(c.get(H(1), 5), nullptr);
  EXPECT_EQ(c.get(H(1), 5)->gen, 10u);
  EXPECT_EQ(c.get(H(1), 6), nullptr);
  EXPECT_EQ(c.get(H(2), 5), nullptr);
  c.put(H(1), meta(11), 6, false);
  EXPECT_EQ(c.get(H(1), 5), nullptr);
  EXPECT_EQ(c.get(H(1), 6)->gen, 11u);
}

TEST(RecordCacheTest, StaysWithinItsCapacity) {
  RecordCache c(64);
  for (uint64_t i = 0; i < 10000; ++i) c.fill(H(i), meta(i), 1);
  EXPECT_LE(c.size(), c.capacity());
  EXPECT_NE(c.get(H(9999), 1), nullptr);  // the newest stays
}

TEST(RecordCacheTest, PinnedRecordsAreNeverEvictedAndFillDoesNotReplaceThem) {
  RecordCache c(16);  // one slot per shard
  c.put(H(1), meta(1), 7, /*pinned=*/true);
  for (uint64_t i = 2; i < 2000; ++i) c.fill(H(i), meta(i), 1);
  ASSERT_NE(c.get(H(1), 7), nullptr);
  // A RocksDB read that raced the publish comes back with the old record.
  c.fill(H(1), meta(0), 3);
  EXPECT_NE(c.get(H(1), 7), nullptr);
  EXPECT_EQ(c.get(H(1), 3), nullptr);
  EXPECT_EQ(c.pinnedSlots(), 1u);
  c.unpin(H(1));
  EXPECT_EQ(c.pinnedSlots(), 0u);
  c.fill(H(1), meta(8), 8);  // unpinned now: a fill may replace it
  EXPECT_EQ(c.get(H(1), 8)->gen, 8u);
}

TEST(RecordCacheTest, TwoPublishesNeedTwoUnpins) {
  RecordCache c(16);
  c.put(H(1), meta(1), 1, true);
  c.put(H(1), meta(2), 2, true);
  c.unpin(H(1));
  EXPECT_EQ(c.pinnedSlots(), 1u);
  EXPECT_EQ(c.get(H(1), 2)->gen, 2u);
  c.unpin(H(1));
  EXPECT_EQ(c.pinnedSlots(), 0u);
}

TEST(RecordCacheTest, EraseForgetsTheRecordButKeepsPins) {
  RecordCache c(64);
  c.put(H(1), meta(1), 1, true);
  c.erase(H(1));
  EXPECT_EQ(c.get(H(1), 1), nullptr);
  EXPECT_EQ(c.pinnedSlots(), 1u);
  c.unpin(H(1));
  c.put(H(2), meta(2), 1, false);
  c.erase(H(2));
  EXPECT_EQ(c.get(H(2), 1), nullptr);
}

}  // namespace
}  // namespace orchard::cache
