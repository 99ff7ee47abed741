// Tests for cache/fill: the read-while-write contract of Fill and the
// coalescing of FillTable, against a real Store in a mkdtemp directory.
//
// Readers follow STYLE pattern 3 ("bytes past my cursor, or register me"):
// most tests drive one writer and any number of readers by hand with
// ManualExecutor, so that every wake-up is observable (posted, never run
// inline, exactly once). Block checksums: recorded for whole fills, fills
// of unknown length, fills whose first run starts mid-block (a block then
// completed by two fetchers), and kept by Partial records across a resume.
// One test runs a real writer thread and four reader
// threads, each waking on its own condition-variable executor, with every
// wait bounded so that a lost wake-up fails the test instead of hanging it.
#include "cache/fill.h"

#include <fcntl.h>
#include <ftw.h>
#include <cstring>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/executor.h"

namespace orchard::cache {
namespace {

using State = Fill::State;

int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

size_t gFileCount;  // nftw has no user pointer
// Counts body files; the store's empty spare files (tmp/spare.N) are not bodies.
int countFile(const char* path, const struct stat*, int type, struct FTW* ftw) {
  if (type == FTW_F && std::strncmp(path + ftw->base, "spare.", 6) != 0) ++gFileCount;
  return 0;
}

const CacheKey kA = CacheKey::fromText("http://swcdn.apple.com/a.pkg");
const CacheKey kB = CacheKey::fromText("http://swcdn.apple.com/b.pkg");

ObjectMeta headFor(const CacheKey& key) {
  ObjectMeta m;
  m.key = key.text;
  m.status = 200;
  m.reason = "OK";
  m.headers = {{"Content-Type", "application/octet-stream"}, {"ETag", "\"v1\""}};
  m.etag = "\"v1\"";
  m.requestTime = 1'700'000'000;
  m.responseTime = 1'700'000'001;
  return m;
}

// Reads [off, off + n) from a fill's descriptor the way a reader does.
std::string preadAt(int fd, uint64_t off, size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out.data() + done, n - done, static_cast<off_t>(off + done));
    if (r <= 0) break;
    done += static_cast<size_t>(r);
  }
  out.resize(done);
  return out;
}

std::string readAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

Result<void> append(Fill& f, std::string_view s) { return f.append(s.data(), s.size()); }

class FillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-fill-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Result<std::unique_ptr<Store>> s = Store::open(StoreOptions{dir_, 0});
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(s).value();
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) ::nftw(dir_.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  }

  std::shared_ptr<Fill> newFill(const CacheKey& key = kA) { return std::make_shared<Fill>(key, store_.get(), true); }

  // The stored object's bytes, through the store's own read path.
  std::string storedBytes(const CacheKey& key) {
    auto meta = store_->lookup(key);
    if (!meta) return "<absent>";
    Result<int> fd = store_->openObject(key, *meta);
    if (!fd) return "<" + fd.error().message() + ">";
    std::string out = readAll(*fd);
    ::close(*fd);
    return out;
  }

  // Body files (complete objects and fills in progress) anywhere in the store.
  size_t bodyFiles() const {
    gFileCount = 0;
    ::nftw((dir_ + "/objects").c_str(), countFile, 16, FTW_PHYS);
    ::nftw((dir_ + "/tmp").c_str(), countFile, 16, FTW_PHYS);
    return gFileCount;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

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

// ------------------------------------------------------------ FillTable

TEST_F(FillTest, AcquireJoinsTheFillInFlight) {
  FillTable table(store_.get());
  EXPECT_EQ(table.inFlight(), 0u);
  FillTable::Acquired leader = table.acquire(kA);
  ASSERT_NE(leader.fill, nullptr);
  EXPECT_TRUE(leader.created);
  EXPECT_TRUE(leader.fill->shared());
  EXPECT_EQ(leader.fill->key().text, kA.text);

  FillTable::Acquired follower = table.acquire(kA);
  EXPECT_EQ(follower.fill, leader.fill);
  EXPECT_FALSE(follower.created);

  // Still the same fill once it streams.
  ASSERT_TRUE(leader.fill->begin(headFor(kA), true, 3).ok());
  ASSERT_TRUE(append(*leader.fill, "ab").ok());
  FillTable::Acquired late = table.acquire(kA);
  EXPECT_EQ(late.fill, leader.fill);
  EXPECT_FALSE(late.created);

  // Another key: another fill.
  FillTable::Acquired other = table.acquire(kB);
  ASSERT_NE(other.fill, nullptr);
  EXPECT_TRUE(other.created);
  EXPECT_NE(other.fill, leader.fill);
  EXPECT_EQ(table.inFlight(), 2u);

  // The first client leaving does not take the fill down: the table keeps it.
  std::weak_ptr<Fill> weak = leader.fill;
  leader.fill.reset();
  follower.fill.reset();
  late.fill.reset();
  ASSERT_FALSE(weak.expired());
  EXPECT_EQ(table.acquire(kA).fill, weak.lock());
}

TEST_F(FillTest, AcquireReturnsNullWhenTheStoreHasTheObject) {
  FillTable table(store_.get());
  auto fill = table.acquire(kA).fill;
  ASSERT_TRUE(fill->begin(headFor(kA), true, 4).ok());
  ASSERT_TRUE(append(*fill, "data").ok());
  fill->finish(1);
  EXPECT_EQ(table.inFlight(), 0u);
  FillTable::Acquired again = table.acquire(kA);
  EXPECT_EQ(again.fill, nullptr);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(table.inFlight(), 0u);

  // Once the object is gone, the next miss fills again.
  ASSERT_TRUE(store_->remove(kA).ok());
  FillTable::Acquired refill = table.acquire(kA);
  ASSERT_NE(refill.fill, nullptr);
  EXPECT_TRUE(refill.created);
  EXPECT_NE(refill.fill, fill);
}

TEST_F(FillTest, AcquireAfterAFailedFillCreatesANewOne) {
  FillTable table(store_.get());
  FillTable::Acquired first = table.acquire(kA);
  ASSERT_TRUE(first.fill->begin(headFor(kA), true, 10).ok());
  first.fill->fail(Error{Errc::Closed});
  EXPECT_EQ(table.inFlight(), 0u);
  FillTable::Acquired second = table.acquire(kA);
  ASSERT_NE(second.fill, nullptr);
  EXPECT_TRUE(second.created);
  EXPECT_NE(second.fill, first.fill);
  EXPECT_EQ(second.fill->snapshot().state, State::Pending);
}

TEST_F(FillTest, HashCollisionInFlightGetsAPrivateFill) {
  FillTable table(store_.get());
  FillTable::Acquired a = table.acquire(kA);
  const CacheKey forged{"http://swcdn.apple.com/other.pkg", kA.hash};  // same hash, other text
  FillTable::Acquired c = table.acquire(forged);
  ASSERT_NE(c.fill, nullptr);
  EXPECT_TRUE(c.created);
  EXPECT_NE(c.fill, a.fill);
  EXPECT_FALSE(c.fill->shared());
  EXPECT_EQ(c.fill->key().text, forged.text);
  EXPECT_EQ(table.inFlight(), 1u);
  EXPECT_EQ(table.acquire(kA).fill, a.fill);

  // The private fill completes without touching the table or the store.
  ASSERT_TRUE(c.fill->begin(headFor(forged), true, 1).ok());
  ASSERT_TRUE(append(*c.fill, "c").ok());
  c.fill->finish(1);
  EXPECT_EQ(table.inFlight(), 1u);
  EXPECT_EQ(table.acquire(kA).fill, a.fill);
  EXPECT_EQ(store_->lookup(forged), nullptr);
}

TEST_F(FillTest, FillOutlivesItsTable) {
  std::shared_ptr<Fill> fill;
  {
    FillTable table(store_.get());
    fill = table.acquire(kA).fill;
    ASSERT_TRUE(fill->begin(headFor(kA), true, 1).ok());
  }
  ASSERT_TRUE(append(*fill, "x").ok());
  fill->finish(1);  // must not touch the destroyed table
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_EQ(storedBytes(kA), "x");
}

// ------------------------------------------------------ threads, for real

// An executor for a plain thread: post() queues and signals; the owning
// thread runs what was posted, waiting at most until a deadline.
class CvExecutor final : public Executor {
 public:
  void post(Task task) override {
    // Notify under the lock: the reader may destroy this executor as soon
    // as it has run the task, while a poster outside the lock could still
    // be inside notify_one().
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(std::move(task));
    cv_.notify_one();
  }
  // Runs one task, waiting for it until `deadline`. False on timeout.
  bool runOneUntil(std::chrono::steady_clock::time_point deadline) {
    Task t;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_until(lock, deadline, [&] { return !q_.empty(); })) return false;
      t = std::move(q_.front());
      q_.pop_front();
    }
    t();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> q_;
};

TEST_F(FillTest, ThreadedWriterAndFourPollingReaders) {
  constexpr size_t kChunk = 4096 + 17;  // not a page multiple
  constexpr size_t kChunks = 200;
  std::string body(kChunk * kChunks, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 131 + i / 977) & 0xff);

  FillTable table(store_.get());
  FillTable::Acquired leader = table.acquire(kA);
  ASSERT_TRUE(leader.created);
  constexpr int kReaders = 4;
  std::vector<std::shared_ptr<Fill>> joined;
  for (int i = 0; i < kReaders; ++i) {
    FillTable::Acquired f = table.acquire(kA);
    ASSERT_FALSE(f.created);
    ASSERT_EQ(f.fill, leader.fill);
    joined.push_back(f.fill);
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  struct ReaderResult {
    std::string got;
    State end = State::Pending;
    bool timedOut = false;
    bool sawHeadBeforeBytes = true;
    int waits = 0;
    int wakes = 0;
  };
  std::vector<ReaderResult> results(kReaders);
  std::atomic<int> registered{0};  // readers parked on the Pending fill
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.emplace_back([&, i] {
      ReaderResult& res = results[static_cast<size_t>(i)];
      Fill& fill = *joined[static_cast<size_t>(i)];
      fill.addReader();
      CvExecutor ex;
      uint64_t cursor = 0;
      for (;;) {
        Fill::Snapshot s = fill.snapshot();
        if (s.committed > cursor) {
          if (!s.hasHead) res.sawHeadBeforeBytes = false;
          res.got += preadAt(fill.fd(), cursor, s.committed - cursor);
          cursor = s.committed;
          continue;  // look again before sleeping
        }
        if (s.state == State::Complete || s.state == State::Failed) {
          res.end = s.state;
          break;
        }
        // The wake-up runs on this thread (inside runOneUntil), so it may
        // touch res without a lock.
        if (!fill.waitIfUnchanged(s, &ex, [&res] { ++res.wakes; })) continue;
        if (++res.waits == 1) registered.fetch_add(1);
        if (!ex.runOneUntil(deadline)) {
          res.timedOut = true;
          break;
        }
      }
      // Nothing may be posted after the terminal state was seen.
      if (ex.runOneUntil(std::chrono::steady_clock::now())) res.wakes += 1000;
      fill.removeReader();
    });
  }

  // Every reader first waits for the head, so that the wake-up path is
  // exercised on every run, not only when the scheduler happens to allow it.
  while (registered.load() < kReaders && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(registered.load(), kReaders) << "readers never parked";
  EXPECT_EQ(leader.fill->snapshot().state, State::Pending);

  std::thread writer([&] {
    Fill& fill = *leader.fill;
    if (!fill.begin(headFor(kA), true, body.size()).ok()) {
      fill.fail(Error{Errc::Io});
      return;
    }
    for (size_t off = 0; off < body.size(); off += kChunk) {
      if (!fill.append(body.data() + off, kChunk).ok()) {
        fill.fail(Error{Errc::Io});
        return;
      }
      if (off % (kChunk * 16) == 0) std::this_thread::yield();  // let readers catch up and wait
    }
    fill.finish(1'700'000'500);
  });

  writer.join();
  for (auto& t : readers) t.join();

  for (int i = 0; i < kReaders; ++i) {
    SCOPED_TRACE("reader " + std::to_string(i));
    const ReaderResult& r = results[static_cast<size_t>(i)];
    EXPECT_FALSE(r.timedOut) << "a wake-up was lost";
    EXPECT_EQ(r.end, State::Complete);
    EXPECT_TRUE(r.sawHeadBeforeBytes);
    EXPECT_EQ(r.wakes, r.waits) << "every registered wait is woken exactly once";
    ASSERT_EQ(r.got.size(), body.size());
    EXPECT_TRUE(r.got == body) << "bytes differ";
  }
  EXPECT_EQ(leader.fill->readers(), 0);
  EXPECT_EQ(table.inFlight(), 0u);
  EXPECT_EQ(storedBytes(kA), body);
}


// ------------------------------------------------------------ a failing store

// A real store whose writes can be made to fail, as an unwritable or broken
// disk makes them fail: object and temp files cannot be created (EACCES), or
// the object file it hands out cannot be written (opened read-only: EBADF).
// Failures are reported to this store's health(), as the real store does.
class FailingStore final : public Store {
 public:
  explicit FailingStore(Store* inner) : inner_(inner) {}
  bool failCreate = false;       // createObject / createTemp fail with EACCES
  bool readOnlyObjects = false;  // createObject hands out a read-only descriptor
  bool failRecord = false;       // recordPartial / commitObject fail as an unwritable index would

  std::shared_ptr<const ObjectMeta> lookup(const CacheKey& k) const override { return inner_->lookup(k); }
  Result<int> openObject(const CacheKey& k, const ObjectMeta& m) override { return inner_->openObject(k, m); }
  Result<OpenObject> openForRead(const CacheKey& k, const ObjectMeta& m) override { return inner_->openForRead(k, m); }
  Result<void> verifyBlocks(const CacheKey& k, const ObjectMeta& m, int fd, uint64_t off, uint64_t len) override {
    return inner_->verifyBlocks(k, m, fd, off, len);
  }
  uint64_t scrubNow() override { return inner_->scrubNow(); }
  void touch(const CacheKey& k) override { inner_->touch(k); }
  std::shared_ptr<const ObjectMeta> lookupPartial(const CacheKey& k) const override { return inner_->lookupPartial(k); }
  Result<ObjectFile> createObject(const CacheKey& k) override {
    if (failCreate) {
      Error e{Errc::Io, EACCES, "create object file"};
      health().writeFailed(e, "objects/xx/" + k.hash.hex() + ".1", 1000);
      return e;
    }
    auto f = inner_->createObject(k);
    if (!f || !readOnlyObjects) return f;
    int ro = ::open(inner_->objectFilePath(k.hash, f->gen).c_str(), O_RDONLY | O_CLOEXEC);
    ::close(f->fd);
    return ObjectFile{ro, f->gen};
  }
  Result<int> reopenPartial(const CacheKey& k, const ObjectMeta& m) override { return inner_->reopenPartial(k, m); }
  Result<void> recordPartial(const CacheKey& k, ObjectMeta m) override {
    if (failRecord) return indexFailure();
    return inner_->recordPartial(k, std::move(m));
  }
  Result<void> commitObject(const CacheKey& k, ObjectMeta m) override {
    if (failRecord) return indexFailure();
    return inner_->commitObject(k, std::move(m));
  }
  void dropObject(const CacheKey& k, uint64_t gen) override { inner_->dropObject(k, gen); }
  Result<void> putStub(const CacheKey& k, ObjectMeta m) override { return inner_->putStub(k, std::move(m)); }
  Result<void> refresh(const CacheKey& k, const ObjectMeta& m) override { return inner_->refresh(k, m); }
  Result<TempFile> createTemp(const CacheKey& k) override {
    if (failCreate) {
      Error e{Errc::Io, EACCES, "create temp file"};
      health().writeFailed(e, "tmp/" + k.hash.hex() + ".0", 1000);
      return e;
    }
    return inner_->createTemp(k);
  }
  void abandon(TempFile&& f) override { inner_->abandon(std::move(f)); }
  Result<void> remove(const CacheKey& k) override { return inner_->remove(k); }
  StoreStats stats() const override { return inner_->stats(); }
  void setBusyCheck(std::function<bool(const Hash128&)> b) override { inner_->setBusyCheck(std::move(b)); }
  void requestEviction(uint64_t n) override { inner_->requestEviction(n); }
  bool reconciled() const override { return inner_->reconciled(); }
  void setCacheLimit(uint64_t bytes) override { inner_->setCacheLimit(bytes); }
  uint64_t cacheLimit() const override { return inner_->cacheLimit(); }
  std::string objectFilePath(const Hash128& h, uint64_t gen) const override { return inner_->objectFilePath(h, gen); }

 private:
  Error indexFailure() {
    Error e{Errc::Io, EROFS, "index: put"};
    health().writeFailed(e, "index", 1000);
    return e;
  }
  Store* inner_;
};

std::string readFill(const Fill& f, uint64_t off, size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    auto r = f.read(off + done, out.data() + done, n - done);
    if (!r || r.value() == 0) break;
    done += r.value();
  }
  out.resize(done);
  return out;
}

TEST_F(FillTest, ObjectFileThatCannotBeCreatedRelaysTheBodyAndStoresNothing) {
  FailingStore failing(store_.get());
  failing.failCreate = true;
  FillTable table(&failing);
  auto a = table.acquire(kA);
  ASSERT_TRUE(a.created);
  a.fill->firstFetch(0);
  const std::string body(300 * 1024, 'x');
  ASSERT_TRUE(a.fill->begin(headFor(kA), /*cacheable=*/true, body.size()).ok())
      << "a store that cannot create the file must not fail the fill";
  auto snap = a.fill->snapshot();
  EXPECT_EQ(snap.state, State::Streaming);
  EXPECT_TRUE(snap.hasHead);
  EXPECT_FALSE(snap.cacheable) << "nothing can be stored";
  EXPECT_TRUE(a.fill->relaying());
  EXPECT_EQ(table.inFlight(), 0u) << "a fill that will not be stored leaves the table";

  ASSERT_TRUE(a.fill->append(body.data(), body.size()).ok());
  EXPECT_EQ(a.fill->readable(0), body.size()) << "the whole small body stays in the window";
  EXPECT_EQ(readFill(*a.fill, 0, body.size()), body);
  a.fill->finish(1);
  EXPECT_EQ(a.fill->snapshot().state, State::Complete);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_EQ(bodyFiles(), 0u);

  auto h = failing.health().report(1000);
  EXPECT_TRUE(h.degraded);
  EXPECT_EQ(h.writeErrors, 1u);
  EXPECT_NE(h.reason.find("create object file: Permission denied (objects/"), std::string::npos) << h.reason;
}

// Relay backpressure: the writer never overwrites what a reader with a
// cursor has not read; it is told Busy and woken (posted, once) by the read
// that makes room, or by the reader leaving.
TEST_F(FillTest, RelayWaitsForTheSlowestCursorInsteadOfDroppingBytes) {
  FailingStore failing(store_.get());
  failing.failCreate = true;
  Fill fill(kA, &failing, false);
  auto fetch = fill.firstFetch(0);
  const uint64_t len = 40ull << 20;  // bigger than the 16 MiB window
  ASSERT_TRUE(fill.begin(headFor(kA), false, len).ok());
  ASSERT_TRUE(fill.relaying());
  const uint32_t slow = fill.addCursor(0);
  const uint32_t fast = fill.addCursor(0);
  std::string chunk(64 * 1024, 'r');
  uint64_t written = 0;
  while (true) {
    auto w = fill.write(fetch.id, chunk.data(), chunk.size());
    if (!w) {
      EXPECT_EQ(w.error().code, Errc::Busy);
      break;
    }
    written += w.value();
  }
  EXPECT_EQ(written, 16ull << 20) << "the window holds exactly what the slowest reader has not read";
  ManualExecutor ex;
  bool woke = false;
  ASSERT_TRUE(fill.waitForRoom(chunk.size(), &ex, [&] { woke = true; }));
  // The fast reader reading everything frees nothing: the slow one holds it.
  std::string buf(1 << 20, '\0');
  uint64_t at = 0;
  while (at < written) at += fill.read(at, buf.data(), buf.size(), fast).value();
  EXPECT_EQ(ex.pending(), 0u);
  // The slow reader reading 1 MiB frees room: the writer is woken, once.
  EXPECT_EQ(fill.read(0, buf.data(), buf.size(), slow).value(), buf.size());
  ASSERT_EQ(ex.pending(), 1u);
  ex.runAll();
  EXPECT_TRUE(woke);
  EXPECT_TRUE(fill.write(fetch.id, chunk.data(), chunk.size()).ok());
  // Every byte the slow reader reads is still there, in order.
  EXPECT_EQ(fill.read(buf.size(), buf.data(), 4096, slow).value(), 4096u);
  // Given up on, the slowest of several readers holds nothing back; a lone
  // reader is never dropped.
  const uint32_t third = fill.addCursor(at);
  EXPECT_TRUE(fill.dropSlowestCursor());  // `slow`, at 1 MiB + 4 KiB, is behind `third`
  EXPECT_TRUE(fill.dropSlowestCursor());  // then `fast`... both at the same place: one of them
  fill.removeCursor(fast);
  fill.removeCursor(third);
  const uint32_t lone = fill.addCursor(at);
  EXPECT_FALSE(fill.dropSlowestCursor());
  fill.removeCursor(lone);
  const uint32_t again = fill.addCursor(0);
  (void)again;
  // A reader that leaves holds nothing back.
  woke = false;
  while (fill.write(fetch.id, chunk.data(), chunk.size())) {
  }
  ASSERT_TRUE(fill.waitForRoom(chunk.size(), &ex, [&] { woke = true; }));
  fill.removeCursor(again);
  ASSERT_EQ(ex.pending(), 1u);
  ex.runAll();
  EXPECT_TRUE(woke);
  fill.fail(Error{Errc::Closed, 0, "test"});
}

// Shareable apart from stored: what followers may be given.
TEST_F(FillTest, ShareableIsApartFromStored) {
  auto stored = newFill(kA);
  ASSERT_TRUE(stored->begin(headFor(kA), true, 4).ok());
  EXPECT_TRUE(stored->snapshot().cacheable);
  EXPECT_TRUE(stored->snapshot().shareable) << "by default what is stored is shared";
  stored->fail(Error{Errc::Closed, 0, "test"});

  auto large = newFill(kB);
  ASSERT_TRUE(large->begin(headFor(kB), /*cacheable=*/false, 4, std::nullopt, /*shareable=*/true).ok());
  EXPECT_FALSE(large->snapshot().cacheable);
  EXPECT_TRUE(large->snapshot().shareable) << "too large to store, still one fetch for everyone who asked";
  large->fail(Error{Errc::Closed, 0, "test"});

  Fill priv(kA, store_.get(), false);
  ASSERT_TRUE(priv.begin(headFor(kA), true, 4, std::nullopt, true).ok());
  EXPECT_FALSE(priv.snapshot().shareable) << "a private fill has one reader";
  priv.fail(Error{Errc::Closed, 0, "test"});

  FailingStore failing(store_.get());
  failing.failCreate = true;
  auto degraded = std::make_shared<Fill>(kA, &failing, true);
  degraded->firstFetch(0);
  ASSERT_TRUE(degraded->begin(headFor(kA), true, 4).ok());
  EXPECT_FALSE(degraded->snapshot().cacheable);
  EXPECT_TRUE(degraded->snapshot().shareable) << "the store failing does not make the answer private";
  degraded->fail(Error{Errc::Closed, 0, "test"});
}

TEST_F(FillTest, PrivateFillWhoseTempFileCannotBeCreatedRelays) {
  FailingStore failing(store_.get());
  failing.failCreate = true;
  Fill fill(kA, &failing, false);
  fill.firstFetch(0);
  ASSERT_TRUE(fill.begin(headFor(kA), false, std::nullopt).ok());
  EXPECT_TRUE(fill.relaying());
  ASSERT_TRUE(append(fill, "chunked ").ok());
  ASSERT_TRUE(append(fill, "body").ok());
  EXPECT_EQ(readFill(fill, 0, 12), "chunked body");
  fill.finish(1);
  auto snap = fill.snapshot();
  EXPECT_EQ(snap.state, State::Complete);
  EXPECT_EQ(snap.length, 12u);
  EXPECT_EQ(failing.health().writeErrors(), 1u);
}

TEST_F(FillTest, FailedWriteIsReportedAndTheRelayCarriesOn) {
  FailingStore failing(store_.get());
  failing.readOnlyObjects = true;
  auto fill = std::make_shared<Fill>(kA, &failing, true);
  auto fetch = fill->firstFetch(0);
  ASSERT_TRUE(fill->begin(headFor(kA), true, 10).ok());
  EXPECT_TRUE(fill->snapshot().cacheable);
  auto w = fill->write(fetch.id, "hello", 5);
  ASSERT_FALSE(w.ok()) << "a write into a read-only descriptor must fail";
  EXPECT_EQ(w.error().code, Errc::Io);
  EXPECT_EQ(failing.health().writeErrors(), 1u);
  EXPECT_TRUE(failing.health().report(SystemClock::instance().monotonicMs()).degraded);
  // What the driver does: relay, and write the same bytes again.
  fill->startRelay(fetch.id);
  EXPECT_FALSE(fill->snapshot().cacheable);
  auto again = fill->write(fetch.id, "hello", 5);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), 5u);
  ASSERT_TRUE(fill->write(fetch.id, "world", 5).ok());
  EXPECT_EQ(readFill(*fill, 0, 10), "helloworld");
  auto next = fill->fetcherDone(fetch.id);
  EXPECT_TRUE(next.complete);
  fill->complete(1);
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_EQ(store_->lookup(kA), nullptr) << "a relayed fill is never stored";
  fill.reset();
  EXPECT_EQ(bodyFiles(), 0u) << "the object file of the failed fill is dropped";
}

TEST_F(FillTest, CheckpointThatCannotBeRecordedTellsTheWriterToRelay) {
  FailingStore failing(store_.get());
  failing.failRecord = true;
  auto fill = std::make_shared<Fill>(kA, &failing, true);
  auto fetch = fill->firstFetch(0);
  const uint64_t len = 3 * Fill::kBlockSize;
  ASSERT_TRUE(fill->begin(headFor(kA), true, len).ok());
  const std::string block(Fill::kBlockSize, 'b');
  ASSERT_TRUE(fill->write(fetch.id, block.data(), block.size()).ok());
  EXPECT_FALSE(fill->storeFailed());
  fill->checkpoint(1);
  EXPECT_TRUE(fill->storeFailed()) << "the blocks could not be recorded";
  EXPECT_EQ(store_->lookupPartial(kA), nullptr);
  // The driver relays from here on; the readers get every byte.
  fill->startRelay(fetch.id);
  ASSERT_TRUE(fill->write(fetch.id, block.data(), block.size()).ok());
  ASSERT_TRUE(fill->write(fetch.id, block.data(), block.size()).ok());
  EXPECT_EQ(fill->readable(0), Fill::kBlockSize) << "from the file";
  EXPECT_EQ(fill->readable(Fill::kBlockSize), 2 * Fill::kBlockSize) << "from the window";
  EXPECT_TRUE(readFill(*fill, 0, len) == std::string(len, 'b'));
  EXPECT_TRUE(fill->fetcherDone(fetch.id).complete);
  fill->complete(1);
  EXPECT_EQ(fill->snapshot().state, State::Complete);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_GE(failing.health().writeErrors(), 1u);
}

TEST_F(FillTest, CommitThatFailsCompletesForTheReadersAndStoresNothing) {
  FailingStore failing(store_.get());
  auto fill = std::make_shared<Fill>(kA, &failing, true);
  fill->firstFetch(0);
  ASSERT_TRUE(fill->begin(headFor(kA), true, 6).ok());
  ASSERT_TRUE(append(*fill, "commit").ok());
  failing.failRecord = true;
  fill->finish(1);
  auto snap = fill->snapshot();
  EXPECT_EQ(snap.state, State::Complete) << "the readers have every byte: they end cleanly";
  EXPECT_FALSE(snap.cacheable) << "not stored, and not counted as stored";
  EXPECT_TRUE(fill->storeFailed());
  EXPECT_EQ(readFill(*fill, 0, 6), "commit");
  EXPECT_EQ(store_->lookup(kA), nullptr);
  fill.reset();
  EXPECT_EQ(bodyFiles(), 0u) << "the unstored object file is dropped";
  auto h = failing.health().report(1000);
  EXPECT_TRUE(h.degraded);
  EXPECT_NE(h.reason.find("Read-only file system (index)"), std::string::npos) << h.reason;
}

// ---- block checksums ----

std::string patternedBody(uint64_t size) {
  std::string body(size, '\0');
  for (uint64_t i = 0; i < size; ++i) body[i] = static_cast<char>((i * 7 + i / 65536) & 0xff);
  return body;
}

void expectSumsOf(const ObjectMeta& meta, const std::string& body) {
  ASSERT_EQ(meta.blockSize, Fill::kBlockSize);
  const uint64_t blocks = (body.size() + Fill::kBlockSize - 1) / Fill::kBlockSize;
  ASSERT_EQ(meta.sums.size(), blocks);
  for (uint64_t b = 0; b < blocks; ++b) {
    const uint64_t off = b * Fill::kBlockSize;
    EXPECT_EQ(meta.sums[b], blockChecksum(body.data() + off, std::min<uint64_t>(Fill::kBlockSize, body.size() - off)))
        << "block " << b;
  }
}

// Writes body[from, ...) as fetcher `id` in 64 KiB pieces until its run ends.
void writeRun(Fill& fill, uint32_t id, const std::string& body, uint64_t from) {
  uint64_t at = from;
  while (at < body.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(64 << 10, body.size() - at));
    Result<size_t> w = fill.write(id, body.data() + at, n);
    ASSERT_TRUE(w.ok()) << w.error().message();
    at += *w;
    if (*w < n) break;
  }
}

TEST_F(FillTest, WholeFillRecordsAChecksumPerBlock) {
  const std::string body = patternedBody(2 * Fill::kBlockSize + Fill::kBlockSize / 2);
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, body.size()).ok());
  for (uint64_t at = 0; at < body.size(); at += 100'000)
    ASSERT_TRUE(append(*fill, std::string_view(body).substr(at, 100'000)).ok());
  fill->finish(1'700'000'000);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  expectSumsOf(*meta, body);
  ASSERT_NE(meta->verified, nullptr);
  EXPECT_FALSE(meta->verified->allVerified()) << "the first hit verifies";
}

TEST_F(FillTest, FillOfUnknownLengthRecordsChecksums) {
  const std::string body = patternedBody(Fill::kBlockSize + 17);
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, std::nullopt).ok());  // chunked
  ASSERT_TRUE(append(*fill, body).ok());
  fill->finish(1'700'000'000);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  expectSumsOf(*meta, body);
}

TEST_F(FillTest, FillStartedMidBlockRecordsTheChecksumOfTheBlockTwoFetchersWrote) {
  // A cold range starts at the exact byte asked for: block 1 is written from
  // its middle by the first run and whole by the run that fills behind it.
  const std::string body = patternedBody(3 * Fill::kBlockSize + 5);
  const uint64_t start = Fill::kBlockSize + Fill::kBlockSize / 2 + 3;
  auto fill = newFill();
  Fill::Fetch first = fill->firstFetch(start);
  ASSERT_TRUE(fill->begin(headFor(kA), true, body.size()).ok());
  writeRun(*fill, first.id, body, start);
  Fill::Next next = fill->fetcherDone(first.id);
  ASSERT_TRUE(next.fetch.has_value());
  EXPECT_EQ(next.fetch->start, 0u);
  fill->checkpoint(1'700'000'000);  // sums what is complete so far (block 2, 3)
  writeRun(*fill, next.fetch->id, body, 0);
  Fill::Next last = fill->fetcherDone(next.fetch->id);
  ASSERT_TRUE(last.complete);
  fill->complete(1'700'000'001);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  expectSumsOf(*meta, body);
  EXPECT_EQ(storedBytes(kA), body);
}

TEST_F(FillTest, PartialRecordKeepsChecksumsOfItsBlocksAcrossAResume) {
  const std::string body = patternedBody(3 * Fill::kBlockSize + 1000);
  {
    auto fill = newFill();
    Fill::Fetch f = fill->firstFetch(0);
    ASSERT_TRUE(fill->begin(headFor(kA), true, body.size()).ok());
    ASSERT_TRUE(fill->write(f.id, body.data(), 2 * Fill::kBlockSize + 100).ok());
    fill->checkpoint(1'700'000'000);
    fill->fail(Error{Errc::Closed, 0, "origin went away"});
  }
  auto partial = store_->lookupPartial(kA);
  ASSERT_NE(partial, nullptr);
  ASSERT_EQ(partial->sums.size(), 4u);
  EXPECT_EQ(static_cast<unsigned char>(partial->blocks[0]), 0x03);
  for (uint64_t b = 0; b < 2; ++b)
    EXPECT_EQ(partial->sums[b], blockChecksum(body.data() + b * Fill::kBlockSize, Fill::kBlockSize));
  // The record as stored (a restart between the two runs changes nothing).
  ObjectMeta decoded = decodeMeta(encodeMeta(*partial)).value();
  EXPECT_EQ(decoded.sums, partial->sums);

  auto resumed = newFill();
  ASSERT_TRUE(resumed->adopt(decoded).ok());
  Fill::Fetch f = resumed->firstFetch(0);
  EXPECT_EQ(f.start, 2 * Fill::kBlockSize);
  writeRun(*resumed, f.id, body, f.start);
  ASSERT_TRUE(resumed->fetcherDone(f.id).complete);
  resumed->complete(1'700'000'002);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  expectSumsOf(*meta, body);
}

}  // namespace
}  // namespace orchard::cache
