// Tests for cache/fill's FillTable: coalescing (joining the fill in flight,
// none when the store has the object, a new fill after a failed one, a
// private fill on a hash collision, fills outliving their table), and one
// test with a real writer thread and four reader threads, each waking on
// its own condition-variable executor, with every wait bounded so that a
// lost wake-up fails the test instead of hanging it. Fixture:
// fill_test_util.h.
#include "cache/fill.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/cache/fill_test_util.h"

namespace orchard::cache {
namespace {

using namespace orchard::cache::fill_test;

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

// A varying answer is filled under the URI's key but stored under its
// variant's: the evictor must see the variant's hash as busy too.
TEST_F(FillTest, BusySeesTheVariantAFillWrites) {
  FillTable table(store_.get());
  const CacheKey variant = CacheKey::fromText(kA.text + "\x1f" "accept-language=de");
  FillTable::Acquired a = table.acquire(kA);
  EXPECT_TRUE(table.busy(kA.hash));
  EXPECT_FALSE(table.busy(variant.hash));
  ASSERT_TRUE(a.fill->begin(headFor(kA), true, 10, variant).ok());
  EXPECT_TRUE(table.busy(variant.hash));
  a.fill->fail(Error{Errc::Closed});
  EXPECT_FALSE(table.busy(kA.hash));
  EXPECT_FALSE(table.busy(variant.hash));
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

}  // namespace
}  // namespace orchard::cache
