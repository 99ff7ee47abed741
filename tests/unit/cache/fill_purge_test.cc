// Tests for purging fills in flight (Fill::purge, FillTable::purgeWhere,
// POST /api/v1/purge) and for the numbers the status page shows of them
// (Fill::receivedBytes, FillTable::progress). A purge must never tear a
// reader: the bytes already read and the ones still coming stay readable;
// what changes is that nothing is stored and new requests start afresh.
// Fixture: fill_test_util.h (a real file store in a temp directory).
#include "cache/fill.h"

#include <string>

#include "tests/unit/cache/fill_test_util.h"

namespace orchard::cache {
namespace {

using namespace orchard::cache::fill_test;

const CacheKey kOther = CacheKey::fromText("http://updates.cdn-apple.com/c.pkg");

TEST_F(FillTest, PurgedStreamingFillKeepsItsReaderAndStoresNothing) {
  FillTable table(store_.get());
  auto fill = table.acquire(kA).fill;
  ASSERT_TRUE(fill->begin(headFor(kA), true, 10).ok());
  ASSERT_TRUE(append(*fill, "hello").ok());
  fill->checkpoint(1'700'000'002);  // a partial record exists before the purge
  ASSERT_NE(store_->lookupPartial(kA), nullptr);

  EXPECT_EQ(table.purgeWhere([](std::string_view k) { return keyHost(k) == "swcdn.apple.com"; }), 1u);
  EXPECT_TRUE(fill->purged());
  EXPECT_TRUE(fill->snapshot().purged);
  EXPECT_EQ(table.inFlight(), 0u);
  EXPECT_EQ(store_->lookupPartial(kA), nullptr);  // no resume of the purged bytes

  // A new request starts a fill of its own.
  FillTable::Acquired next = table.acquire(kA);
  EXPECT_TRUE(next.created);
  EXPECT_NE(next.fill, fill);

  // The old reader reads everything, before and after the purge.
  ASSERT_TRUE(append(*fill, "world").ok());
  fill->finish(1'700'000'003);
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_EQ(preadAt(fill->fd(), 0, 10), "helloworld");
  EXPECT_EQ(store_->lookup(kA), nullptr);  // never committed
  next.fill->fail(Error{Errc::Closed, 0, "test"});
  next.fill.reset();
  fill.reset();
  EXPECT_EQ(bodyFiles(), 0u);
}

TEST_F(FillTest, FillPurgedBeforeItsHeadIsNeverStored) {
  FillTable table(store_.get());
  auto fill = table.acquire(kA).fill;
  fill->purge();
  fill->purge();  // idempotent
  EXPECT_EQ(table.inFlight(), 0u);
  ASSERT_TRUE(fill->begin(headFor(kA), true, 3).ok());
  EXPECT_FALSE(fill->snapshot().cacheable);
  ASSERT_TRUE(append(*fill, "abc").ok());
  fill->finish(1'700'000'002);
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_EQ(preadAt(fill->fd(), 0, 3), "abc");
  EXPECT_EQ(store_->lookup(kA), nullptr);
}

TEST_F(FillTest, PurgeAfterCompleteLeavesTheStoreToTheCaller) {
  // A fill that completed already: its object is in the store (the purge
  // handler removes it there); the fill itself must not remove it twice
  // or unlink a newer generation.
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, 2).ok());
  ASSERT_TRUE(append(*fill, "ok").ok());
  fill->finish(1'700'000'002);
  ASSERT_NE(store_->lookup(kA), nullptr);
  fill->purge();
  EXPECT_EQ(storedBytes(kA), "ok");
  ASSERT_TRUE(store_->remove(kA).ok());
  fill.reset();
  EXPECT_EQ(bodyFiles(), 0u);
}

TEST_F(FillTest, PurgeWhereTakesOnlyTheMatchingFills) {
  FillTable table(store_.get());
  auto a = table.acquire(kA).fill;
  auto other = table.acquire(kOther).fill;
  EXPECT_EQ(table.purgeWhere([](std::string_view k) { return keyHost(k) == "updates.cdn-apple.com"; }), 1u);
  EXPECT_FALSE(a->purged());
  EXPECT_TRUE(other->purged());
  EXPECT_EQ(table.inFlight(), 1u);
  EXPECT_EQ(table.purgeWhere([](std::string_view) { return true; }), 1u);
  EXPECT_EQ(table.inFlight(), 0u);
  a->fail(Error{Errc::Closed, 0, "test"});
  other->fail(Error{Errc::Closed, 0, "test"});
}

TEST_F(FillTest, ReceivedBytesCountsEveryRunOnce) {
  auto fill = newFill();
  EXPECT_EQ(fill->receivedBytes(), 0u);
  const uint64_t len = 8 * Fill::kBlockSize;
  ASSERT_TRUE(fill->begin(headFor(kA), true, len).ok());
  Fill::Fetch first = fill->firstFetch(0);
  std::string chunk(Fill::kBlockSize + 100, 'x');
  ASSERT_TRUE(fill->write(first.id, chunk.data(), chunk.size()).ok());
  EXPECT_EQ(fill->receivedBytes(), chunk.size());
  // A second run far in (a range reader): its bytes add, nothing twice.
  auto second = fill->need(7 * Fill::kBlockSize);  // past the first run's lookahead
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(fill->write(second->id, chunk.data(), 1000).ok());
  EXPECT_EQ(fill->receivedBytes(), chunk.size() + 1000);
  fill->fail(Error{Errc::Closed, 0, "test"});
}

TEST_F(FillTest, ProgressListsLargestFirstWithReaders) {
  FillTable table(store_.get());
  auto small = table.acquire(kA).fill;
  auto big = table.acquire(kB).fill;
  auto unknown = table.acquire(kOther).fill;
  ASSERT_TRUE(small->begin(headFor(kA), true, 10).ok());
  ASSERT_TRUE(big->begin(headFor(kB), true, 1000).ok());
  ASSERT_TRUE(unknown->begin(headFor(kOther), true, std::nullopt).ok());
  ASSERT_TRUE(append(*big, "0123456789").ok());
  ASSERT_TRUE(append(*unknown, std::string(500, 'u')).ok());
  big->addReader();
  big->addReader();

  auto p = table.progress(50);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].key, kB.text);
  EXPECT_EQ(p[0].received, 10u);
  EXPECT_EQ(p[0].length, std::optional<uint64_t>(1000));
  EXPECT_EQ(p[0].readers, 2);
  EXPECT_EQ(p[1].key, kOther.text);  // 500 bytes so far, length unknown
  EXPECT_FALSE(p[1].length.has_value());
  EXPECT_EQ(p[1].received, 500u);
  EXPECT_EQ(p[2].key, kA.text);
  EXPECT_EQ(p[2].readers, 0);
  EXPECT_EQ(table.progress(1).size(), 1u);  // bounded

  big->removeReader();
  big->removeReader();
  for (auto* f : {&small, &big, &unknown}) (*f)->fail(Error{Errc::Closed, 0, "test"});
}

}  // namespace
}  // namespace orchard::cache
