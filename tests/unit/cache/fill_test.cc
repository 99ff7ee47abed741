// Tests for cache/fill: the read-while-write contract of Fill, against a
// real Store in a mkdtemp directory (the fixture is in fill_test_util.h;
// FillTable, threads, failing stores and checksums have files of their own:
// fill_table_test.cc, fill_relay_test.cc, fill_checksum_test.cc).
//
// Readers follow STYLE pattern 3 ("bytes past my cursor, or register me"):
// the tests drive one writer and any number of readers by hand with
// ManualExecutor, so that every wake-up is observable (posted, never run
// inline, exactly once): the lifecycle, waiting, finishing, failing, and
// private or uncacheable fills.
#include "cache/fill.h"

#include <fcntl.h>

#include <string>

#include "tests/unit/cache/fill_test_util.h"

namespace orchard::cache {
namespace {

using namespace orchard::cache::fill_test;

// ------------------------------------------------------------ lifecycle

TEST_F(FillTest, PendingThenBeginPublishesStreamingWithHead) {
  auto fill = newFill();
  EXPECT_EQ(fill->key().text, kA.text);
  EXPECT_TRUE(fill->shared());
  Fill::Snapshot s = fill->snapshot();
  EXPECT_EQ(s.state, State::Pending);
  EXPECT_FALSE(s.hasHead);
  EXPECT_EQ(s.committed, 0u);
  EXPECT_FALSE(s.length.has_value());

  ASSERT_TRUE(fill->begin(headFor(kA), true, 11).ok());
  s = fill->snapshot();
  EXPECT_EQ(s.state, State::Streaming);
  EXPECT_TRUE(s.hasHead);
  EXPECT_TRUE(s.cacheable);
  EXPECT_EQ(s.committed, 0u);
  ASSERT_TRUE(s.length.has_value());
  EXPECT_EQ(*s.length, 11u);
  EXPECT_EQ(fill->head().status, 200);
  EXPECT_EQ(fill->head().header("content-type"), "application/octet-stream");
  EXPECT_GE(fill->fd(), 0);
  EXPECT_EQ(::fcntl(fill->fd(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST_F(FillTest, BeginTwiceIsRefused) {
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, 1).ok());
  Result<void> again = fill->begin(headFor(kA), true, 1);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::Invalid);
  EXPECT_EQ(fill->snapshot().state, State::Streaming);
}

TEST_F(FillTest, StateNames) {
  EXPECT_STREQ(Fill::stateName(State::Pending), "Pending");
  EXPECT_STREQ(Fill::stateName(State::Streaming), "Streaming");
  EXPECT_STREQ(Fill::stateName(State::Complete), "Complete");
  EXPECT_STREQ(Fill::stateName(State::Failed), "Failed");
  EXPECT_STREQ(Fill::stateName(State::Revalidated), "Revalidated");
}

TEST_F(FillTest, AppendGrowsCommittedAndBytesAreReadable) {
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, std::nullopt).ok());
  ASSERT_TRUE(append(*fill, "hello").ok());
  EXPECT_EQ(fill->snapshot().committed, 5u);
  EXPECT_EQ(preadAt(fill->fd(), 0, 5), "hello");

  ASSERT_TRUE(append(*fill, " world").ok());
  Fill::Snapshot s = fill->snapshot();
  EXPECT_EQ(s.state, State::Streaming);
  EXPECT_EQ(s.committed, 11u);
  EXPECT_EQ(preadAt(fill->fd(), 0, s.committed), "hello world");
  EXPECT_EQ(preadAt(fill->fd(), 5, 6), " world");  // a follower's cursor past its first read
  EXPECT_EQ(preadAt(fill->fd(), 11, 10), "");      // nothing past committed

  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(append(*fill, big).ok());
  EXPECT_EQ(fill->snapshot().committed, 11u + big.size());
  EXPECT_EQ(preadAt(fill->fd(), 11, big.size()), big);
}

// ----------------------------------------------------------- waiting

TEST_F(FillTest, WaiterIsPostedExactlyOnceOnTheNextChangeNeverInline) {
  auto fill = newFill();
  ManualExecutor ex;
  int woken = 0;

  // Registered while Pending: begin() is the next change.
  ASSERT_TRUE(fill->waitIfUnchanged(fill->snapshot(), &ex, [&] { ++woken; }));
  EXPECT_EQ(ex.pending(), 0u);
  ASSERT_TRUE(fill->begin(headFor(kA), true, 10).ok());
  EXPECT_EQ(woken, 0) << "run inline";
  EXPECT_EQ(ex.pending(), 1u);
  EXPECT_EQ(ex.runAll(), 1u);
  EXPECT_EQ(woken, 1);

  // One-shot: later changes do not post it again.
  ASSERT_TRUE(append(*fill, "ab").ok());
  EXPECT_EQ(ex.pending(), 0u);

  // Registered while Streaming: append() is the next change.
  ASSERT_TRUE(fill->waitIfUnchanged(fill->snapshot(), &ex, [&] { ++woken; }));
  ASSERT_TRUE(append(*fill, "cd").ok());
  EXPECT_EQ(woken, 1) << "run inline";
  ASSERT_TRUE(append(*fill, "ef").ok());
  EXPECT_EQ(ex.pending(), 1u) << "posted more than once";
  ex.runAll();
  EXPECT_EQ(woken, 2);
}

TEST_F(FillTest, EachWaiterIsPostedToItsOwnExecutor) {
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, std::nullopt).ok());
  ManualExecutor ex1, ex2;
  int a = 0, b = 0, c = 0;
  Fill::Snapshot s = fill->snapshot();
  ASSERT_TRUE(fill->waitIfUnchanged(s, &ex1, [&] { ++a; }));
  ASSERT_TRUE(fill->waitIfUnchanged(s, &ex2, [&] { ++b; }));
  ASSERT_TRUE(fill->waitIfUnchanged(s, &ex2, [&] { ++c; }));
  ASSERT_TRUE(append(*fill, "x").ok());
  EXPECT_EQ(ex1.pending(), 1u);
  EXPECT_EQ(ex2.pending(), 2u);
  ex1.runAll();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b + c, 0);
  ex2.runAll();
  EXPECT_EQ(b, 1);
  EXPECT_EQ(c, 1);
}

TEST_F(FillTest, WaitIfUnchangedRefusesAStaleSnapshot) {
  auto fill = newFill();
  ManualExecutor ex;
  int woken = 0;
  Fill::Snapshot pending = fill->snapshot();
  ASSERT_TRUE(fill->begin(headFor(kA), true, std::nullopt).ok());
  // State changed since the snapshot (Pending -> Streaming).
  EXPECT_FALSE(fill->waitIfUnchanged(pending, &ex, [&] { ++woken; }));

  Fill::Snapshot empty = fill->snapshot();
  ASSERT_TRUE(append(*fill, "abc").ok());
  // Committed changed since the snapshot (0 -> 3).
  EXPECT_FALSE(fill->waitIfUnchanged(empty, &ex, [&] { ++woken; }));
  // A fresh snapshot registers.
  EXPECT_TRUE(fill->waitIfUnchanged(fill->snapshot(), &ex, [&] { ++woken; }));
  EXPECT_EQ(ex.pending(), 0u);
  EXPECT_EQ(woken, 0);
  fill->fail(Error{Errc::Closed});
  EXPECT_EQ(ex.runAll(), 1u);
  EXPECT_EQ(woken, 1);
}

TEST_F(FillTest, WaitIfUnchangedRefusesTerminalStates) {
  ManualExecutor ex;
  int woken = 0;
  auto done = newFill(kA);
  ASSERT_TRUE(done->begin(headFor(kA), true, 1).ok());
  ASSERT_TRUE(append(*done, "z").ok());
  done->finish(1'700'000'100);
  ASSERT_EQ(done->snapshot().state, State::Complete);
  EXPECT_FALSE(done->waitIfUnchanged(done->snapshot(), &ex, [&] { ++woken; }));

  auto failed = newFill(kB);
  failed->fail(Error{Errc::Closed});
  ASSERT_EQ(failed->snapshot().state, State::Failed);
  EXPECT_FALSE(failed->waitIfUnchanged(failed->snapshot(), &ex, [&] { ++woken; }));
  EXPECT_EQ(ex.pending(), 0u);
  EXPECT_EQ(woken, 0);
}

// ------------------------------------------------------------ finish

TEST_F(FillTest, FinishWithMatchingLengthCommitsThenPublishesComplete) {
  const std::string body = "hello world";
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, body.size()).ok());
  ASSERT_TRUE(append(*fill, body.substr(0, 4)).ok());
  ASSERT_TRUE(append(*fill, body.substr(4)).ok());
  EXPECT_EQ(store_->lookup(kA), nullptr) << "visible before finish";

  // The wake-up is posted when Complete is published; by then the object
  // must already be in the store (fill.h: committed *before* Complete).
  struct CheckingExecutor final : Executor {
    Store* store;
    bool storedAtPost = false;
    int posts = 0;
    ManualExecutor inner;
    void post(Task t) override {
      ++posts;
      storedAtPost = store->lookup(kA) != nullptr;
      inner.post(std::move(t));
    }
  } ex;
  ex.store = store_.get();
  int woken = 0;
  ASSERT_TRUE(fill->waitIfUnchanged(fill->snapshot(), &ex, [&] { ++woken; }));
  fill->finish(1'700'000'123);

  EXPECT_EQ(ex.posts, 1);
  EXPECT_TRUE(ex.storedAtPost) << "Complete published before the store commit";
  EXPECT_EQ(woken, 0) << "run inline";
  ex.inner.runAll();
  EXPECT_EQ(woken, 1);

  Fill::Snapshot s = fill->snapshot();
  EXPECT_EQ(s.state, State::Complete);
  EXPECT_EQ(s.committed, body.size());
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(meta->key, kA.text);
  EXPECT_EQ(meta->size, body.size());
  EXPECT_EQ(meta->lastAccess, 1'700'000'123);
  EXPECT_EQ(meta->etag, "\"v1\"");
  EXPECT_EQ(meta->header("content-type"), "application/octet-stream");
  EXPECT_EQ(storedBytes(kA), body);
  EXPECT_EQ(store_->stats().objects, 1u);
  EXPECT_EQ(store_->stats().bytes, body.size());
}

TEST_F(FillTest, FinishWithoutDeclaredLengthStoresWhatCame) {
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, std::nullopt).ok());  // chunked
  ASSERT_TRUE(append(*fill, "abc").ok());
  ASSERT_TRUE(append(*fill, "").ok());
  ASSERT_TRUE(append(*fill, "defg").ok());
  fill->finish(1);
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_EQ(storedBytes(kA), "abcdefg");
}

TEST_F(FillTest, EmptyBodyCompletes) {
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, 0).ok());
  fill->finish(1);
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(meta->size, 0u);
  EXPECT_EQ(storedBytes(kA), "");
}

TEST_F(FillTest, FdStaysReadableAfterTheCommit) {
  const std::string body(100'000, 'q');
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, body.size()).ok());
  ASSERT_TRUE(append(*fill, body).ok());
  const int fd = fill->fd();
  fill->finish(1);
  ASSERT_EQ(fill->snapshot().state, State::Complete);
  ASSERT_NE(store_->lookup(kA), nullptr);
  // The file moved into objects/ (or was published in place); a reader that
  // was streaming keeps reading the same descriptor to the end.
  EXPECT_EQ(fill->fd(), fd);
  EXPECT_EQ(preadAt(fill->fd(), 0, body.size()), body);
  EXPECT_EQ(preadAt(fill->fd(), 99'990, 100), body.substr(99'990));
  struct stat st;
  ASSERT_EQ(::fstat(fill->fd(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), body.size());
  EXPECT_GE(st.st_nlink, 1u) << "the descriptor must name the stored file, not an unlinked one";
}

TEST_F(FillTest, FinishWithAShortBodyFailsAndStoresNothing) {
  auto fill = newFill();
  ManualExecutor ex;
  int woken = 0;
  ASSERT_TRUE(fill->begin(headFor(kA), true, 10).ok());
  ASSERT_TRUE(append(*fill, "12345").ok());
  ASSERT_TRUE(fill->waitIfUnchanged(fill->snapshot(), &ex, [&] { ++woken; }));
  fill->finish(1);
  Fill::Snapshot s = fill->snapshot();
  EXPECT_EQ(s.state, State::Failed);
  EXPECT_EQ(s.error.code, Errc::Protocol);
  EXPECT_EQ(s.committed, 5u);  // the bytes already streamed stay readable
  EXPECT_EQ(preadAt(fill->fd(), 0, 5), "12345");
  EXPECT_EQ(ex.runAll(), 1u);
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_EQ(store_->stats().objects, 0u);
  fill.reset();
  EXPECT_EQ(bodyFiles(), 0u) << "a failed fill's file outlived it";
}

TEST_F(FillTest, AppendBeyondTheDeclaredLengthIsRefused) {
  auto fill = newFill();
  ManualExecutor ex;
  ASSERT_TRUE(fill->begin(headFor(kA), true, 5).ok());
  ASSERT_TRUE(append(*fill, "abc").ok());
  ASSERT_TRUE(fill->waitIfUnchanged(fill->snapshot(), &ex, [] {}));
  Result<void> r = append(*fill, "def");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Protocol);
  // Refused whole: nothing written, nothing published, nobody woken.
  Fill::Snapshot s = fill->snapshot();
  EXPECT_EQ(s.state, State::Streaming);
  EXPECT_EQ(s.committed, 3u);
  EXPECT_EQ(ex.pending(), 0u);
  struct stat st;
  ASSERT_EQ(::fstat(fill->fd(), &st), 0);
  EXPECT_EQ(st.st_size, 3);
  // The exact remainder still fits, and the fill completes.
  ASSERT_TRUE(append(*fill, "de").ok());
  EXPECT_FALSE(append(*fill, "f").ok());
  fill->finish(1);
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_EQ(storedBytes(kA), "abcde");
}

// -------------------------------------------------------------- fail

TEST_F(FillTest, FailWakesWaitersAndStoresNothing) {
  auto fill = newFill();
  ManualExecutor ex;
  int woken = 0;
  ASSERT_TRUE(fill->begin(headFor(kA), true, 100).ok());
  ASSERT_TRUE(append(*fill, "partial").ok());
  Fill::Snapshot seen = fill->snapshot();
  ASSERT_TRUE(fill->waitIfUnchanged(seen, &ex, [&] { ++woken; }));
  ASSERT_TRUE(fill->waitIfUnchanged(seen, &ex, [&] { ++woken; }));
  fill->fail(Error{Errc::Closed, 0, "origin reset"});
  EXPECT_EQ(woken, 0) << "run inline";
  EXPECT_EQ(ex.runAll(), 2u);
  EXPECT_EQ(woken, 2);

  Fill::Snapshot s = fill->snapshot();
  EXPECT_EQ(s.state, State::Failed);
  EXPECT_EQ(s.error.code, Errc::Closed);
  EXPECT_EQ(s.committed, 7u);
  EXPECT_EQ(store_->lookup(kA), nullptr);

  // A second fail() changes nothing (first error kept, nobody posted).
  ASSERT_FALSE(fill->waitIfUnchanged(fill->snapshot(), &ex, [&] { ++woken; }));
  fill->fail(Error{Errc::Io, 5, "other"});
  EXPECT_EQ(fill->snapshot().error.code, Errc::Closed);
  EXPECT_EQ(ex.pending(), 0u);
  fill.reset();
  EXPECT_EQ(bodyFiles(), 0u);
}

TEST_F(FillTest, FailWhilePendingWakesHeadWaiters) {
  FillTable table(store_.get());
  auto fill = table.acquire(kA).fill;
  ManualExecutor ex;
  int woken = 0;
  ASSERT_TRUE(fill->waitIfUnchanged(fill->snapshot(), &ex, [&] { ++woken; }));
  fill->fail(Error{Errc::Timeout});
  EXPECT_EQ(ex.runAll(), 1u);
  EXPECT_EQ(woken, 1);
  Fill::Snapshot s = fill->snapshot();
  EXPECT_EQ(s.state, State::Failed);
  EXPECT_FALSE(s.hasHead);
  EXPECT_EQ(s.error.code, Errc::Timeout);
  EXPECT_EQ(table.inFlight(), 0u);
}

TEST_F(FillTest, CompleteIsFinal) {
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, 1).ok());
  ASSERT_TRUE(append(*fill, "x").ok());
  fill->finish(1);
  fill->fail(Error{Errc::Closed});
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_NE(store_->lookup(kA), nullptr);
}

// ---------------------------------------------------- private and uncacheable

TEST_F(FillTest, UncacheableBeginLeavesTheTable) {
  FillTable table(store_.get());
  FillTable::Acquired first = table.acquire(kA);
  ASSERT_NE(first.fill, nullptr);
  ASSERT_TRUE(first.created);
  EXPECT_EQ(table.inFlight(), 1u);
  ASSERT_TRUE(first.fill->begin(headFor(kA), false, 3).ok());
  EXPECT_FALSE(first.fill->snapshot().cacheable);
  EXPECT_EQ(table.inFlight(), 0u) << "new readers would join an uncacheable fill";

  // A later miss gets a fill of its own.
  FillTable::Acquired second = table.acquire(kA);
  ASSERT_NE(second.fill, nullptr);
  EXPECT_TRUE(second.created);
  EXPECT_NE(second.fill, first.fill);

  // The uncacheable fill still streams to its readers and completes, storing nothing.
  ASSERT_TRUE(append(*first.fill, "abc").ok());
  first.fill->finish(1);
  EXPECT_EQ(first.fill->snapshot().state, State::Complete);
  EXPECT_EQ(preadAt(first.fill->fd(), 0, 3), "abc");
  EXPECT_EQ(store_->lookup(kA), nullptr);
  // ...and does not take the second fill out of the table when it ends.
  EXPECT_EQ(table.inFlight(), 1u);
  EXPECT_EQ(table.acquire(kA).fill, second.fill);
}

TEST_F(FillTest, PrivateFillWithoutStoreNeverStores) {
  Fill fill(kA, nullptr, false);
  EXPECT_FALSE(fill.shared());
  ASSERT_TRUE(fill.begin(headFor(kA), /*cacheable=*/true, 4).ok());
  EXPECT_FALSE(fill.snapshot().cacheable) << "a private fill is never cacheable";
  ASSERT_TRUE(append(fill, "priv").ok());
  EXPECT_EQ(preadAt(fill.fd(), 0, 4), "priv");
  fill.finish(1);
  EXPECT_EQ(fill.snapshot().state, State::Complete);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_EQ(bodyFiles(), 0u);
}

TEST_F(FillTest, PrivateFillWithStoreNeverStores) {
  auto fill = std::make_shared<Fill>(kA, store_.get(), false);
  ASSERT_TRUE(fill->begin(headFor(kA), true, 2).ok());
  EXPECT_FALSE(fill->snapshot().cacheable);
  ASSERT_TRUE(append(*fill, "ok").ok());
  fill->finish(1);
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  fill.reset();
  EXPECT_EQ(bodyFiles(), 0u);
}

// An origin's declared length is only a claim: a fill that does not store
// never sizes anything by it (10^18 bytes once cost a bad_alloc).
TEST_F(FillTest, UnstoredFillWithAnAbsurdLengthCostsNothing) {
  auto fill = std::make_shared<Fill>(kA, store_.get(), false);
  ASSERT_TRUE(fill->begin(headFor(kA), true, uint64_t{1000000000000000000}).ok());
  ASSERT_TRUE(append(*fill, "only this").ok());
  EXPECT_EQ(fill->readable(0), 9u);
  EXPECT_EQ(preadAt(fill->fd(), 0, 9), "only this");
  fill->finish(1);
  EXPECT_EQ(fill->snapshot().state, State::Failed) << "short of what it declared";
}

TEST_F(FillTest, StoredFillOverTheHardCapIsNotStored) {
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, Fill::kMaxStoredLength + 1).ok());
  EXPECT_FALSE(fill->snapshot().cacheable);
  fill->fail(Error{Errc::Closed, 0, "test"});
  fill.reset();
  EXPECT_EQ(store_->lookupPartial(kA), nullptr);
}

// An unstored fill read by two fetchers (a reader far ahead) completes only
// when their runs cover the whole body.
TEST_F(FillTest, UnstoredFillWithTwoRunsCompletesWhenBothEnd) {
  auto fill = std::make_shared<Fill>(kA, store_.get(), false);
  const uint64_t kB = Fill::kBlockSize;
  const uint64_t len = 8 * kB;
  auto first = fill->firstFetch(0);
  ASSERT_TRUE(fill->begin(headFor(kA), false, len).ok());
  std::string block(kB, 'x');
  ASSERT_EQ(fill->write(first.id, block.data(), block.size()).value(), block.size());
  auto far = fill->need(7 * kB + 10);  // beyond the look-ahead of the first run
  ASSERT_TRUE(far.has_value());
  EXPECT_EQ(far->start, 7 * kB);
  for (int i = 1; i < 7; ++i) ASSERT_EQ(fill->write(first.id, block.data(), block.size()).value(), block.size());
  EXPECT_EQ(fill->write(first.id, block.data(), block.size()).value(), 0u) << "the first run stops where the far one starts";
  auto next = fill->fetcherDone(first.id);
  EXPECT_FALSE(next.complete) << "the far run is still going";
  ASSERT_EQ(fill->write(far->id, block.data(), block.size()).value(), block.size());
  next = fill->fetcherDone(far->id);
  EXPECT_TRUE(next.complete);
}

// A parent dying mid-run (issue 15): the run is cut at its last whole
// block, the rest goes to a new fetcher from that boundary, and the bytes
// written by both make the whole object, stored complete.
TEST_F(FillTest, CutFetcherResumesFromItsLastWholeBlock) {
  auto fill = std::make_shared<Fill>(kA, store_.get(), true);
  const uint64_t kB = Fill::kBlockSize;
  const uint64_t len = 4 * kB;
  auto first = fill->firstFetch(0);
  ASSERT_TRUE(fill->begin(headFor(kA), true, len).ok());
  std::string block(kB, 'y');
  ASSERT_EQ(fill->write(first.id, block.data(), block.size()).value(), block.size());
  ASSERT_EQ(fill->write(first.id, block.data(), kB / 2).value(), kB / 2);  // half of block 1, then the parent dies
  auto cut = fill->fetcherCut(first.id);
  ASSERT_TRUE(cut.has_value());
  EXPECT_FALSE(cut->complete);
  ASSERT_TRUE(cut->fetch.has_value());
  EXPECT_EQ(cut->fetch->start, kB) << "block 1 is fetched again whole";
  EXPECT_EQ(fill->snapshot().committed, kB + kB / 2) << "readers keep what they could read";
  for (int i = 1; i < 4; ++i) ASSERT_EQ(fill->write(cut->fetch->id, block.data(), block.size()).value(), block.size());
  auto next = fill->fetcherDone(cut->fetch->id);
  EXPECT_TRUE(next.complete);
  fill->complete(1000);
  EXPECT_EQ(fill->snapshot().state, Fill::State::Complete);
  auto m = store_->lookup(kA);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->size, len);
}

// A relayed (unstored) fill cannot be resumed elsewhere: the caller fails it.
TEST_F(FillTest, CutOfAnUnstoredFillCannotResume) {
  auto fill = std::make_shared<Fill>(kA, store_.get(), true);
  auto first = fill->firstFetch(0);
  ASSERT_TRUE(fill->begin(headFor(kA), false, 4 * Fill::kBlockSize).ok());
  EXPECT_FALSE(fill->fetcherCut(first.id).has_value());
}

TEST_F(FillTest, ReadersCount) {
  auto fill = newFill();
  EXPECT_EQ(fill->readers(), 0);
  fill->addReader();
  fill->addReader();
  fill->addReader();
  EXPECT_EQ(fill->readers(), 3);
  fill->removeReader();
  EXPECT_EQ(fill->readers(), 2);
  fill->removeReader();
  fill->removeReader();
  EXPECT_EQ(fill->readers(), 0);
}

}  // namespace
}  // namespace orchard::cache
