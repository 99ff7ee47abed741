// CompactIndex (the file store's per-object entry table) against a
// std::unordered_map model, through inserts, erases and growth, including
// runs that wrap around the end of the table.
#include "cache/compact_index.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

namespace orchard::cache {
namespace {

TEST(CompactIndexTest, EntryIsAtMost48Bytes) { EXPECT_LE(sizeof(IndexEntry), 48u); }

TEST(CompactIndexTest, FindUpsertErase) {
  CompactIndex idx;
  EXPECT_EQ(idx.find(Hash128{1, 2}), nullptr);
  IndexEntry& e = idx.upsert(Hash128{1, 2});
  e.has = IndexEntry::kComplete;
  e.gen = 7;
  ASSERT_NE(idx.find(Hash128{1, 2}), nullptr);
  EXPECT_EQ(idx.find(Hash128{1, 2})->gen, 7u);
  EXPECT_EQ(&idx.upsert(Hash128{1, 2}), idx.find(Hash128{1, 2}));
  EXPECT_EQ(idx.size(), 1u);
  EXPECT_TRUE(idx.erase(Hash128{1, 2}));
  EXPECT_FALSE(idx.erase(Hash128{1, 2}));
  EXPECT_EQ(idx.find(Hash128{1, 2}), nullptr);
  EXPECT_EQ(idx.size(), 0u);
}

TEST(CompactIndexTest, MatchesAMapThroughRandomChanges) {
  for (uint64_t seed : {1, 2, 3}) {
    std::mt19937_64 rng(seed);
    CompactIndex idx;
    if (seed == 2) idx.reserve(3000);
    std::unordered_map<uint64_t, uint64_t> model;
    // Few distinct hashes with clustered lo values: long runs and wrap-arounds.
    auto hashOf = [&](uint64_t k) { return Hash128{seed == 3 ? ~uint64_t{0} - (k % 64) * 1000 : k * 0x9E3779B97F4A7C15ull, k}; };
    for (int step = 0; step < 200000; ++step) {
      const uint64_t k = rng() % 4000;
      const Hash128 h = hashOf(k);
      if (rng() % 3 == 0) {
        EXPECT_EQ(idx.erase(h), model.erase(k) == 1);
      } else {
        IndexEntry& e = idx.upsert(h);
        e.has = IndexEntry::kComplete;
        e.gen = step;
        e.freq.set(2);
        model[k] = step;
      }
      if (step % 1000 == 0) {
        ASSERT_EQ(idx.size(), model.size());
        for (uint64_t q = 0; q < 4000; ++q) {
          const IndexEntry* e = idx.find(hashOf(q));
          auto it = model.find(q);
          ASSERT_EQ(e != nullptr, it != model.end()) << "seed " << seed << " step " << step << " key " << q;
          if (e) {
            EXPECT_EQ(e->gen, it->second);
            EXPECT_EQ(e->freq.get(), 2);
          }
        }
        ASSERT_TRUE(idx.consistent());
      }
    }
  }
}

TEST(CompactIndexTest, ReserveSizesForTheLoadFactor) {
  CompactIndex idx;
  idx.reserve(1000000);
  EXPECT_GE(idx.capacity(), 1000000 / CompactIndex::kMaxLoad);
  EXPECT_LE(idx.memoryBytes(), 1000000 * 48 / CompactIndex::kLoadLoad + 4096);
  for (uint64_t i = 0; i < 1000000; ++i) idx.upsert(Hash128{i * 0x9E3779B97F4A7C15ull, i}).has = IndexEntry::kStub;
  EXPECT_LE(idx.memoryBytes(), 1000000 * 48 / CompactIndex::kLoadLoad + 4096);  // no growth
}

}  // namespace
}  // namespace orchard::cache
