// Tests for cache/evictor (S3Fifo): queue placement, one-hit wonders first,
// promotion and second chances in M, the ghost set, pinned entries, byte
// sizes, and scan resistance measured on a small simulated cache.
#include "cache/evictor.h"

#include <unordered_map>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

namespace orchard::cache {
namespace {

Hash128 H(uint64_t i) { return Hash128{0x5eed, i}; }

std::vector<uint64_t> drain(S3Fifo& p, size_t n, const S3Fifo::Pinned& pinned = nullptr) {
  std::vector<uint64_t> out;
  for (size_t k = 0; k < n; ++k) {
    auto v = p.victim(pinned);
    if (!v) break;
    out.push_back(v->lo);
  }
  return out;
}

// A cache of `capacity` bytes driven by the policy: a request is a hit
// (access) or a miss (insert, then evict while over capacity).
struct Sim {
  explicit Sim(uint64_t capacity) : policy(S3Fifo::Options{capacity}), capacity(capacity) {}
  bool request(uint64_t id, uint64_t bytes) {
    if (policy.contains(H(id))) {
      policy.access(H(id));
      ++hits;
      return true;
    }
    policy.insert(H(id), bytes);
    while (policy.bytes() > capacity) {
      auto v = policy.victim(nullptr);
      if (!v) break;
    }
    return false;
  }
  S3Fifo policy;
  uint64_t capacity;
  uint64_t hits = 0;
};

TEST(FrequencyTest, SaturatesAtThree) {
  Frequency f;
  EXPECT_EQ(f.get(), 0);
  for (int i = 0; i < 10; ++i) f.bump();
  EXPECT_EQ(f.get(), Frequency::kMax);
  f.set(1);
  EXPECT_EQ(f.get(), 1);
}

TEST(S3FifoTest, NewEntriesEnterSmallAndLeaveInFifoOrder) {
  S3Fifo p(S3Fifo::Options{1000});
  for (uint64_t i = 1; i <= 4; ++i) p.insert(H(i), 10);
  EXPECT_TRUE(p.inSmall(H(1)));
  EXPECT_FALSE(p.inMain(H(1)));
  EXPECT_EQ(p.size(), 4u);
  EXPECT_EQ(p.bytes(), 40u);
  EXPECT_EQ(drain(p, 10), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(p.size(), 0u);
  EXPECT_EQ(p.bytes(), 0u);
  EXPECT_FALSE(p.victim(nullptr).has_value());
}

TEST(S3FifoTest, OneHitWondersLeaveBeforeRequestedObjects) {
  S3Fifo p(S3Fifo::Options{100});  // S target: 10 bytes
  for (uint64_t i = 1; i <= 6; ++i) p.insert(H(i), 10);
  p.access(H(1));
  p.access(H(3));
  p.access(H(5));
  // 2, 4, 6 were never requested: they go first, 1, 3, 5 move to M.
  EXPECT_EQ(drain(p, 3), (std::vector<uint64_t>{2, 4, 6}));
  EXPECT_TRUE(p.inMain(H(1)));
  EXPECT_TRUE(p.inMain(H(3)));
  EXPECT_TRUE(p.inMain(H(5)));
  EXPECT_EQ(p.smallBytes(), 0u);
  EXPECT_EQ(p.mainBytes(), 30u);
  // Promotion reset their counters: M now evicts in FIFO order.
  EXPECT_EQ(drain(p, 3), (std::vector<uint64_t>{1, 3, 5}));
}

TEST(S3FifoTest, MainGivesOneSecondChancePerHit) {
  S3Fifo p(S3Fifo::Options{1000});
  p.restore(H(1), 10);
  p.restore(H(2), 10);
  p.access(H(1));
  p.access(H(1));  // two credits
  // 1 is at M's tail with freq 2: it goes round twice while 2 leaves.
  EXPECT_EQ(drain(p, 1), (std::vector<uint64_t>{2}));
  EXPECT_EQ(drain(p, 1), (std::vector<uint64_t>{1}));
}

TEST(S3FifoTest, SmallIsServedWhileItHoldsItsShare) {
  S3Fifo p(S3Fifo::Options{100});  // S target: 10 bytes
  p.restore(H(100), 50);           // M, cold
  p.insert(H(1), 5);               // S holds 5 < 10: M's tail goes first
  EXPECT_EQ(drain(p, 1), (std::vector<uint64_t>{100}));
  p.restore(H(101), 50);
  p.insert(H(2), 5);  // S holds 10 >= 10: S's tail goes first
  EXPECT_EQ(drain(p, 1), (std::vector<uint64_t>{1}));
}

TEST(S3FifoTest, GhostSendsReturningObjectsToMain) {
  S3Fifo p(S3Fifo::Options{100});
  p.insert(H(1), 10);
  p.insert(H(2), 10);
  EXPECT_EQ(drain(p, 1), (std::vector<uint64_t>{1}));
  EXPECT_TRUE(p.inGhost(H(1)));
  EXPECT_FALSE(p.contains(H(1)));
  p.insert(H(1), 10);
  EXPECT_TRUE(p.inMain(H(1)));
  EXPECT_FALSE(p.inGhost(H(1)));
  // Objects evicted from M, or removed by the caller, are not ghosts.
  p.remove(H(2));
  EXPECT_FALSE(p.inGhost(H(2)));
  EXPECT_EQ(drain(p, 1), (std::vector<uint64_t>{1}));
  EXPECT_FALSE(p.inGhost(H(1)));
}

TEST(S3FifoTest, GhostIsBoundedByCount) {
  S3Fifo p(S3Fifo::Options{100, 10, 8});
  for (uint64_t i = 0; i < 100; ++i) {
    p.insert(H(i), 1);
    ASSERT_TRUE(p.victim(nullptr).has_value());
  }
  EXPECT_EQ(p.ghostSize(), 8u);
  EXPECT_TRUE(p.inGhost(H(99)));
  EXPECT_FALSE(p.inGhost(H(0)));
}

TEST(S3FifoTest, InsertOfAKnownHashUpdatesItsSize) {
  S3Fifo p(S3Fifo::Options{1000});
  p.insert(H(1), 10);
  p.insert(H(2), 10);
  p.access(H(2));
  p.insert(H(2), 30);  // a partial object grew
  EXPECT_EQ(p.size(), 2u);
  EXPECT_EQ(p.bytes(), 40u);
  EXPECT_TRUE(p.inSmall(H(2)));
  p.remove(H(1));
  EXPECT_EQ(p.bytes(), 30u);
  p.remove(H(1));  // unknown: no-op
  EXPECT_EQ(p.size(), 1u);
}

TEST(S3FifoTest, PinnedEntriesAreNeverVictims) {
  S3Fifo p(S3Fifo::Options{100});
  for (uint64_t i = 1; i <= 4; ++i) p.insert(H(i), 10);
  std::set<uint64_t> pins = {1, 3};
  auto pinned = [&](const Hash128& h) { return pins.count(h.lo) > 0; };
  EXPECT_EQ(drain(p, 10, pinned), (std::vector<uint64_t>{2, 4}));
  EXPECT_EQ(p.size(), 2u);
  EXPECT_FALSE(p.victim(pinned).has_value());  // everything left is pinned
  pins.clear();
  auto rest = drain(p, 10, pinned);
  std::sort(rest.begin(), rest.end());
  EXPECT_EQ(rest, (std::vector<uint64_t>{1, 3}));
}

TEST(S3FifoTest, SmallGivesUpItsShareWhenEverythingInMainIsPinned) {
  S3Fifo p(S3Fifo::Options{1000});  // S target: 100 bytes
  p.restore(H(1), 500);
  p.restore(H(2), 300);
  p.insert(H(3), 50);  // S under its share: M would normally go first
  auto pinned = [](const Hash128& h) { return h.lo == 1 || h.lo == 2; };
  EXPECT_EQ(drain(p, 10, pinned), (std::vector<uint64_t>{3}));
  EXPECT_EQ(p.size(), 2u);
}

TEST(S3FifoTest, CallerCountersAreReadAndSpentThroughHitCounters) {
  // The file store keeps the counters in its compact index entries.
  struct Counters : HitCounters {
    std::unordered_map<uint64_t, Frequency> f;
    uint8_t get(const Hash128& h) override { return f[h.lo].get(); }
    void set(const Hash128& h, uint8_t v) override { f[h.lo].set(v); }
  } counters;
  S3Fifo::Options o{100};
  o.counters = &counters;
  S3Fifo p(o);
  p.insert(H(1), 10);
  p.insert(H(2), 10);
  counters.f[1].bump();  // a hit recorded by another thread, no call into the policy
  EXPECT_EQ(drain(p, 1), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(p.inMain(H(1)));
  EXPECT_EQ(counters.f[1].get(), 0);  // promotion spent it
}

TEST(S3FifoTest, IndexSurvivesManyInsertsAndRemovals) {
  S3Fifo p(S3Fifo::Options{1u << 30});
  p.reserve(1000);
  for (uint64_t i = 1; i <= 5000; ++i) p.insert(Hash128{i * 7, i * 0x9E3779B97F4A7C15ull}, 1);
  for (uint64_t i = 1; i <= 5000; i += 2) p.remove(Hash128{i * 7, i * 0x9E3779B97F4A7C15ull});
  EXPECT_EQ(p.size(), 2500u);
  for (uint64_t i = 1; i <= 5000; ++i)
    EXPECT_EQ(p.contains(Hash128{i * 7, i * 0x9E3779B97F4A7C15ull}), i % 2 == 0) << i;
}

TEST(S3FifoTest, LargeUnrequestedObjectLeavesBeforeSmallRequestedOnes) {
  S3Fifo p(S3Fifo::Options{1000});
  for (uint64_t i = 1; i <= 5; ++i) {
    p.insert(H(i), 20);
    p.access(H(i));
  }
  p.insert(H(99), 500);  // one big object, fetched once
  ASSERT_EQ(drain(p, 1), (std::vector<uint64_t>{99}));
  EXPECT_EQ(p.bytes(), 100u);
}

TEST(S3FifoTest, HotSetSurvivesAScanLargerThanTheCache) {
  constexpr uint64_t kObject = 1000;
  Sim sim(100 * kObject);  // room for 100 objects
  // A hot set filling half the cache, requested a few times each.
  for (int round = 0; round < 3; ++round)
    for (uint64_t id = 0; id < 50; ++id) sim.request(id, kObject);
  // One pass over 5,000 distinct objects: 50 times the cache.
  for (uint64_t id = 1000; id < 6000; ++id) sim.request(id, kObject);
  int survivors = 0;
  for (uint64_t id = 0; id < 50; ++id) survivors += sim.policy.contains(H(id)) ? 1 : 0;
  EXPECT_EQ(survivors, 50);
  EXPECT_LE(sim.policy.bytes(), sim.capacity);
  // The scan never reached M: only the hot set is there.
  EXPECT_EQ(sim.policy.mainBytes(), 50 * kObject);
}

TEST(S3FifoTest, HotSetSurvivesAScanInterleavedWithItsRequests) {
  constexpr uint64_t kObject = 1000;
  Sim sim(100 * kObject);
  for (uint64_t id = 0; id < 40; ++id) sim.request(id, kObject);
  uint64_t hotHits = 0, hotRequests = 0;
  for (uint64_t n = 0; n < 20000; ++n) {
    sim.request(100000 + n, kObject);  // scan: every object once
    if (n % 5 == 0) {                  // hot set: round robin
      ++hotRequests;
      hotHits += sim.request(n / 5 % 40, kObject) ? 1 : 0;
    }
  }
  // After the first round each hot object is requested every 200 scan
  // objects (twice the cache): FIFO or LRU would miss every time.
  EXPECT_GT(hotHits, hotRequests * 95 / 100);
}

TEST(S3FifoTest, SizesAreRespected) {
  Sim sim(10'000);
  uint64_t seed = 42;
  for (int n = 0; n < 5000; ++n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t id = (seed >> 33) % 300;
    uint64_t bytes = 1 + (id * 37) % 900;
    sim.request(id, bytes);
    ASSERT_LE(sim.policy.bytes(), sim.capacity);
    ASSERT_EQ(sim.policy.bytes(), sim.policy.smallBytes() + sim.policy.mainBytes());
  }
  EXPECT_GT(sim.hits, 0u);
}

}  // namespace
}  // namespace orchard::cache
