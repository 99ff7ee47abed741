// Tests of the file store's eviction: usage kept between the watermarks
// (after twice the limit, while objects stream in), which objects survive
// (the newest, those with hits, pinned ones, those the busy check protects,
// resumed partials), ENOSPC requests, unlimited stores and a limit lowered
// across a restart. The StoreTest fixture is in store_test_util.h; background
// eviction is awaited by polling with a deadline.
#include "cache/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "tests/unit/cache/store_test_util.h"

namespace orchard::cache {
namespace {

using namespace orchard::cache::testing;
using namespace orchard::cache::store_test;

// ---- eviction ----

constexpr uint64_t kKiB = 1024;

TEST_F(StoreTest, UsageStaysWithinWatermarksAfterTwiceTheLimit) {
  constexpr uint64_t kLimit = 256 * kKiB;
  constexpr uint64_t kObject = 4 * kKiB;
  reopen(kLimit);
  const std::string body(kObject, 'x');
  for (int i = 0; i < static_cast<int>(2 * kLimit / kObject); ++i) ASSERT_TRUE(put(keyN("fill", i), body).ok());
  const uint64_t high = kLimit * kHighWatermarkPercent / 100;
  const uint64_t low = kLimit * kLowWatermarkPercent / 100;
  ASSERT_TRUE(waitUntil([&] { return usage() <= high; })) << usage();
  EXPECT_GE(usage(), low - kObject);  // stopped at the low watermark, not before
  StoreStats st = store_->stats();
  EXPECT_GT(st.evictions, 0u);
  EXPECT_EQ(st.evictedBytes, st.evictions * kObject);
  EXPECT_EQ(st.objects + st.evictions, 2 * kLimit / kObject);
  // Evicted means gone: files and records.
  ASSERT_TRUE(waitUntil([&] { return countFiles("objects") == store_->stats().objects; }));
  uint64_t objects = store_->stats().objects;
  reopen(kLimit);
  EXPECT_EQ(store_->stats().objects, objects);
  EXPECT_EQ(store_->stats().evictions, 0u);  // counted since open()
}

TEST_F(StoreTest, UsageStaysNearTheLimitWhileObjectsStreamIn) {
  constexpr uint64_t kLimit = 64 * kKiB;
  constexpr uint64_t kObject = 2 * kKiB;
  reopen(kLimit);
  const std::string body(kObject, 'n');
  for (int i = 0; i < 200; ++i) {  // 400 KiB through 64 KiB
    ASSERT_TRUE(put(keyN("stream", i), body).ok());
    // The evictor is woken by the commit that crossed the high watermark.
    ASSERT_TRUE(waitUntil([&] { return usage() <= kLimit; })) << i << ": " << usage();
  }
  // The newest objects are still hits.
  for (int i = 195; i < 200; ++i) EXPECT_NE(store_->lookup(keyN("stream", i)), nullptr) << i;
}

TEST_F(StoreTest, NewestObjectSurvivesAFloodOfDistinctObjects) {
  constexpr uint64_t kLimit = 64 * kKiB;
  reopen(kLimit);
  const std::string body(4 * kKiB, 'f');
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(put(keyN("flood", i), body).ok());
  ASSERT_TRUE(waitUntil([&] { return usage() <= kLimit * kHighWatermarkPercent / 100; }));
  std::shared_ptr<const ObjectMeta> newest = store_->lookup(keyN("flood", 99));
  ASSERT_NE(newest, nullptr);
  Result<int> fd = store_->openObject(keyN("flood", 99), *newest);
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(readAll(*fd), body);
  ::close(*fd);
  EXPECT_EQ(store_->lookup(keyN("flood", 0)), nullptr);  // the oldest went
}

TEST_F(StoreTest, ObjectWithHitsSurvivesAScanLargerThanTheStore) {
  constexpr uint64_t kLimit = 64 * kKiB;
  reopen(kLimit);
  const std::string body(2 * kKiB, 'h');
  const CacheKey hot = keyN("hot", 0);
  ASSERT_TRUE(put(hot, body).ok());
  store_->touch(hot);
  for (int i = 0; i < 256; ++i) {  // 512 KiB of objects requested once
    ASSERT_TRUE(put(keyN("scan", i), body).ok());
    if (i % 8 == 0) store_->touch(hot);  // the hot object keeps getting hits
  }
  ASSERT_TRUE(waitUntil([&] { return usage() <= kLimit * kHighWatermarkPercent / 100; }));
  EXPECT_GT(store_->stats().evictions, 200u);
  EXPECT_NE(store_->lookup(hot), nullptr);
}

TEST_F(StoreTest, PinnedObjectIsNotEvicted) {
  constexpr uint64_t kLimit = 64 * kKiB;
  reopen(kLimit);
  const std::string body(4 * kKiB, 'r');
  ASSERT_TRUE(put(kA, body).ok());
  ASSERT_TRUE(put(kB, body).ok());  // as old as kA, not read: evicted
  std::shared_ptr<const ObjectMeta> a = store_->lookup(kA);
  ASSERT_NE(a, nullptr);
  Result<OpenObject> open = store_->openForRead(kA, *a);
  ASSERT_TRUE(open.ok()) << open.error().message();
  EXPECT_NE(open->pin, nullptr);
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(put(keyN("other", i), body).ok());
  ASSERT_TRUE(waitUntil([&] { return store_->lookup(kB) == nullptr && usage() <= kLimit * kHighWatermarkPercent / 100; }));
  EXPECT_NE(store_->lookup(kA), nullptr);
  EXPECT_EQ(readAll(open->fd), body);
  ::close(open->fd);
  open->pin.reset();
}

TEST_F(StoreTest, OpenForReadFailsLikeOpenObjectAndReleasesItsPin) {
  reopen(64 * kKiB);
  ASSERT_TRUE(put(kA, "0123456789").ok());
  std::shared_ptr<const ObjectMeta> m = store_->lookup(kA);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(::unlink(objectPath(kA).c_str()), 0);
  Result<OpenObject> r = store_->openForRead(kA, *m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NotFound);
  EXPECT_EQ(store_->lookup(kA), nullptr);
}

TEST_F(StoreTest, BusyCheckProtectsCompleteAndPartialObjects) {
  constexpr uint64_t kLimit = 64 * kKiB;
  reopen(kLimit);
  const CacheKey busyPartial = keyN("busy-partial", 0);
  const CacheKey idlePartial = keyN("idle-partial", 0);
  std::atomic<int> calls{0};
  store_->setBusyCheck([&](const Hash128& h) {
    calls.fetch_add(1, std::memory_order_relaxed);
    return h == kA.hash || h == busyPartial.hash;
  });
  const std::string body(4 * kKiB, 'b');
  ASSERT_TRUE(put(kA, body).ok());
  uint64_t busyGen = putPartial(busyPartial, 4);
  uint64_t idleGen = putPartial(idlePartial, 4);
  ASSERT_NE(store_->lookupPartial(idlePartial), nullptr);
  EXPECT_EQ(store_->stats().partialBytes, 8 * kKiB);
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(put(keyN("other", i), body).ok());
  ASSERT_TRUE(waitUntil([&] { return store_->lookupPartial(idlePartial) == nullptr && usage() <= kLimit * kHighWatermarkPercent / 100; }));
  EXPECT_GT(calls.load(), 0);
  EXPECT_NE(store_->lookup(kA), nullptr);
  EXPECT_NE(store_->lookupPartial(busyPartial), nullptr);
  EXPECT_TRUE(exists(pathOf(busyPartial.hash, busyGen)));
  // The idle partial went the way dropObject() goes: record and file.
  EXPECT_FALSE(exists(pathOf(idlePartial.hash, idleGen)));
  EXPECT_EQ(store_->stats().partials, 1u);
  store_->setBusyCheck(nullptr);
  reopen(kLimit);
  EXPECT_EQ(store_->lookupPartial(idlePartial), nullptr);
  EXPECT_NE(store_->lookupPartial(busyPartial), nullptr);
}

TEST_F(StoreTest, ResumedPartialIsNotEvictedBeforeItsFillIsVisible) {
  // Between reopenPartial() and the fill entering the FillTable the busy
  // check cannot see the resume: the store guards the partial itself.
  reopen(64 * kKiB);
  const CacheKey resumed = keyN("resumed", 0);
  const CacheKey idle = keyN("idle", 0);
  uint64_t gen = putPartial(resumed, 4);
  putPartial(idle, 4);
  const std::string body(4 * kKiB, 'g');
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(put(keyN("other", i), body).ok());
  std::shared_ptr<const ObjectMeta> p = store_->lookupPartial(resumed);
  ASSERT_NE(p, nullptr);
  Result<int> fd = store_->reopenPartial(resumed, *p);
  ASSERT_TRUE(fd.ok());
  ::close(*fd);
  store_->requestEviction(1ull << 40);  // everything that may go, goes
  ASSERT_TRUE(waitUntil([&] { return store_->lookupPartial(idle) == nullptr && store_->stats().objects == 0; }));
  EXPECT_NE(store_->lookupPartial(resumed), nullptr);
  EXPECT_TRUE(exists(pathOf(resumed.hash, gen)));
  EXPECT_EQ(usage(), 4 * kKiB);
}

TEST_F(StoreTest, RequestEvictionFreesBeyondTheLowWatermark) {
  constexpr uint64_t kLimit = 100 * kKiB;
  reopen(kLimit);
  const std::string body(4 * kKiB, 'e');
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(put(keyN("full", i), body).ok());  // 80 KiB: under the watermarks
  EXPECT_EQ(store_->stats().evictions, 0u);
  store_->requestEviction(20 * kKiB);  // a fill hit ENOSPC
  ASSERT_TRUE(waitUntil([&] { return usage() <= 60 * kKiB; })) << usage();
  EXPECT_GE(usage(), 56 * kKiB);  // no more than asked (one object of slack)
  EXPECT_EQ(store_->stats().evictions, 5u);
}

TEST_F(StoreTest, UnlimitedStoreNeverEvicts) {
  const std::string body(4 * kKiB, 'u');
  for (int i = 0; i < 32; ++i) ASSERT_TRUE(put(keyN("u", i), body).ok());
  store_->requestEviction(64 * kKiB);
  ASSERT_TRUE(waitUntil([&] { return store_->reconciled(); }));
  EXPECT_EQ(store_->stats().objects, 32u);
  EXPECT_EQ(store_->stats().evictions, 0u);
}

TEST_F(StoreTest, OverLimitAtOpenIsEvictedInTheBackground) {
  const std::string body(4 * kKiB, 'o');
  for (int i = 0; i < 32; ++i) ASSERT_TRUE(put(keyN("o", i), body).ok());  // 128 KiB, unlimited
  reopen(64 * kKiB);  // the limit was lowered
  ASSERT_TRUE(waitUntil([&] { return usage() <= 64 * kKiB * kLowWatermarkPercent / 100; }));
}

}  // namespace
}  // namespace orchard::cache
