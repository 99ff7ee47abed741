// Tests for cache/fill when the store cannot keep the body: a FailingStore
// (a real store whose file creation, writes or index records fail as a
// broken disk makes them fail) must leave the fill relaying the body to its
// readers while storing nothing, and the relay must wait for the slowest
// reader's cursor instead of dropping bytes. Fixture: fill_test_util.h.
#include "cache/fill.h"

#include <fcntl.h>

#include <cerrno>
#include <functional>
#include <string>

#include "tests/unit/cache/fill_test_util.h"

namespace orchard::cache {
namespace {

using namespace orchard::cache::fill_test;

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
  Result<std::vector<std::string>> keysWhere(const std::function<bool(std::string_view)>& m) const override {
    return inner_->keysWhere(m);
  }
  void setBusyCheck(std::function<bool(const Hash128&)> b) override { inner_->setBusyCheck(std::move(b)); }
  void setUnlinkListener(UnlinkListener l) override { inner_->setUnlinkListener(std::move(l)); }
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

}  // namespace
}  // namespace orchard::cache
