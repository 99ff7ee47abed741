// The Store contract, one suite over every implementation (STYLE.md
// pattern 5, the way Envoy's cache implementations share one test suite):
// the file store (cache/file_store.h) and the in-memory store
// (cache/memory_store.h). Each parameter says what its store promises
// beyond the common contract:
//   durable   the store survives its destruction: a reopen finds what it
//             held (only the file store)
//   onDisk    objects are files under the store's directory, which the
//             test may count and name
// A case that checks a durable promise runs its reopen part only where the
// parameter has it, so the suite tells the two contracts apart. File
// store only behaviour (temp files on disk, eviction, reconciliation,
// repair) is in store_test.cc.
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cache/memory_store.h"
#include "cache/store.h"
#include "tests/unit/cache/store_test_util.h"

namespace orchard::cache {
namespace {

using namespace orchard::cache::testing;

struct StoreKind {
  const char* name;
  bool durable;
  bool onDisk;
  std::function<std::unique_ptr<Store>(const std::string& dir)> open;
};

int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

class StoreContract : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-store-contract-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) ::nftw(dir_.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  }
  bool durable() const { return GetParam().durable; }
  bool onDisk() const { return GetParam().onDisk; }
  // Only for durable stores (the callers check durable() first).
  void reopen() {
    store_.reset();
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }
  Result<void> put(const CacheKey& key, const std::string& body, uint64_t declaredSize) {
    return putObject(*store_, key, body, metaFor(key, declaredSize), declaredSize);
  }
  Result<void> put(const CacheKey& key, const std::string& body) { return put(key, body, body.size()); }
  // Object files under objects/ (onDisk stores only).
  size_t countObjectFiles() const {
    static size_t count;
    count = 0;
    ::nftw((dir_ + "/objects").c_str(),
           [](const char*, const struct stat*, int type, struct FTW*) {
             if (type == FTW_F) ++count;
             return 0;
           },
           16, FTW_PHYS);
    return count;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

const CacheKey kA = CacheKey::fromText("http://swcdn.apple.com/a.pkg");
const CacheKey kB = CacheKey::fromText("http://swcdn.apple.com/b.pkg");

TEST_P(StoreContract, InvisibleUntilCommitThenHit) {
  Result<ObjectFile> f = store_->createObject(kA);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(::pwrite(f->fd, "hello", 5, 0), 5);
  ::close(f->fd);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  ObjectMeta meta = metaFor(kA, 5);
  meta.gen = f->gen;
  ASSERT_TRUE(store_->commitObject(kA, meta).ok());
  std::shared_ptr<const ObjectMeta> m = store_->lookup(kA);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->key, kA.text);
  EXPECT_EQ(m->size, 5u);
  EXPECT_EQ(m->header("content-type"), "application/octet-stream");
  EXPECT_EQ(store_->lookup(kB), nullptr);

  Result<int> fd = store_->openObject(kA, *m);
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  EXPECT_EQ(readAll(*fd), "hello");
  ::close(*fd);
  EXPECT_EQ(store_->stats().objects, 1u);
  EXPECT_EQ(store_->stats().bytes, 5u);
}

TEST_P(StoreContract, CommitFillsEmptyMetaKey) {
  ObjectMeta m = metaFor(kA, 0);
  m.key.clear();
  ASSERT_TRUE(putObject(*store_, kA, "", m, 0).ok());
  ASSERT_NE(store_->lookup(kA), nullptr);
  EXPECT_EQ(store_->lookup(kA)->key, kA.text);
}

TEST_P(StoreContract, HashCollisionWithDifferentTextMisses) {
  ASSERT_TRUE(put(kA, "aaaa").ok());
  // Same hash, different text: what a real XXH3-128 collision would look like.
  CacheKey impostor{"http://evil.example/a.pkg", kA.hash};
  EXPECT_EQ(store_->lookup(impostor), nullptr);
  EXPECT_NE(store_->lookup(kA), nullptr);
  Result<void> r = store_->remove(impostor);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NotFound);
  EXPECT_NE(store_->lookup(kA), nullptr);  // the real owner is untouched
}

TEST_P(StoreContract, SizeMismatchAtCommitIsRejected) {
  Result<ObjectFile> f = store_->createObject(kA);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(::pwrite(f->fd, "abc", 3, 0), 3);
  ::close(f->fd);
  ObjectMeta meta = metaFor(kA, 4);
  meta.gen = f->gen;
  Result<void> r = store_->commitObject(kA, meta);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Corrupt);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  if (onDisk()) {
    EXPECT_EQ(countObjectFiles(), 1u);  // still the caller's to drop
  }
  store_->dropObject(kA, f->gen);
  EXPECT_EQ(store_->stats().objects, 0u);
  if (onDisk()) {
    EXPECT_EQ(countObjectFiles(), 0u);
  }
}

TEST_P(StoreContract, CommitRejectsObjectFileOfAnotherKey) {
  Result<ObjectFile> f = store_->createObject(kB);
  ASSERT_TRUE(f.ok());
  ::close(f->fd);
  ObjectMeta meta = metaFor(kA, 0);
  meta.gen = f->gen;
  Result<void> r = store_->commitObject(kA, meta);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Invalid);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  store_->dropObject(kB, f->gen);
}

TEST_P(StoreContract, ReopenKeepsObjects) {
  if (!durable()) return;
  ASSERT_TRUE(put(kA, "aaaa").ok());
  ASSERT_TRUE(put(kB, "bbbbbb").ok());
  reopen();
  std::shared_ptr<const ObjectMeta> a = store_->lookup(kA);
  std::shared_ptr<const ObjectMeta> b = store_->lookup(kB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->etag, "\"v1\"");
  EXPECT_EQ(b->size, 6u);
  EXPECT_EQ(store_->stats().objects, 2u);
  EXPECT_EQ(store_->stats().bytes, 10u);
  Result<int> fd = store_->openObject(kB, *b);
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(readAll(*fd), "bbbbbb");
  ::close(*fd);
}

TEST_P(StoreContract, OpenObjectDetectsTruncatedFileAndDropsEntry) {
  ASSERT_TRUE(put(kA, "0123456789").ok());
  std::shared_ptr<const ObjectMeta> m = store_->lookup(kA);
  ASSERT_NE(m, nullptr);
  truncateStored(*store_, kA, 4);
  Result<int> fd = store_->openObject(kA, *m);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code, Errc::Corrupt);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  if (onDisk()) {
    EXPECT_EQ(countObjectFiles(), 0u);
  }
  EXPECT_EQ(store_->stats().objects, 0u);
  EXPECT_EQ(store_->stats().bytes, 0u);
  if (!durable()) return;
  reopen();  // the index record went too
  EXPECT_EQ(store_->lookup(kA), nullptr);
}

TEST_P(StoreContract, OpenObjectWithStaleMetaKeepsNewerObject) {
  ASSERT_TRUE(put(kA, "old").ok());
  std::shared_ptr<const ObjectMeta> stale = store_->lookup(kA);
  ASSERT_TRUE(put(kA, "newer!").ok());
  Result<int> fd = store_->openObject(kA, *stale);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code, Errc::NotFound);
  std::shared_ptr<const ObjectMeta> fresh = store_->lookup(kA);
  ASSERT_NE(fresh, nullptr);  // the newer object was not dropped
  EXPECT_EQ(fresh->size, 6u);
  Result<int> fd2 = store_->openObject(kA, *fresh);
  ASSERT_TRUE(fd2.ok());
  EXPECT_EQ(readAll(*fd2), "newer!");
  ::close(*fd2);
}

TEST_P(StoreContract, ReplaceUpdatesStatsAndContent) {
  ASSERT_TRUE(put(kA, "aaaa").ok());
  ASSERT_TRUE(put(kB, "bb").ok());
  EXPECT_EQ(store_->stats().objects, 2u);
  EXPECT_EQ(store_->stats().bytes, 6u);
  ASSERT_TRUE(put(kA, "AAAAAAAAAA").ok());
  EXPECT_EQ(store_->stats().objects, 2u);
  EXPECT_EQ(store_->stats().bytes, 12u);
  std::shared_ptr<const ObjectMeta> m = store_->lookup(kA);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->size, 10u);
  Result<int> fd = store_->openObject(kA, *m);
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(readAll(*fd), "AAAAAAAAAA");
  ::close(*fd);
  if (onDisk()) {
    EXPECT_EQ(countObjectFiles(), 2u);
  }
  if (!durable()) return;
  reopen();
  EXPECT_EQ(store_->stats().objects, 2u);
  EXPECT_EQ(store_->stats().bytes, 12u);
}

TEST_P(StoreContract, ReaderKeepsOldBytesAcrossReplacement) {
  ASSERT_TRUE(put(kA, "old-bytes").ok());
  std::shared_ptr<const ObjectMeta> m = store_->lookup(kA);
  Result<int> fd = store_->openObject(kA, *m);
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(put(kA, "new").ok());
  EXPECT_EQ(readAll(*fd), "old-bytes");  // the new generation is another file
  ::close(*fd);
  EXPECT_EQ(m->size, 9u);  // the caller's snapshot of the old meta stays valid
}

TEST_P(StoreContract, RemoveDeletesFileRecordAndEntry) {
  ASSERT_TRUE(put(kA, "aaaa").ok());
  ASSERT_TRUE(put(kB, "bb").ok());
  if (onDisk()) {
    ASSERT_EQ(countObjectFiles(), 2u);
  }
  ASSERT_TRUE(store_->remove(kA).ok());
  EXPECT_EQ(store_->lookup(kA), nullptr);
  if (onDisk()) {
    EXPECT_EQ(countObjectFiles(), 1u);
  }
  EXPECT_EQ(store_->stats().objects, 1u);
  EXPECT_EQ(store_->stats().bytes, 2u);
  Result<void> again = store_->remove(kA);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::NotFound);
  if (!durable()) return;
  reopen();
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_NE(store_->lookup(kB), nullptr);
}

TEST_P(StoreContract, ConcurrentCommitsAndLookupsStayConsistent) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Distinct keys per thread, plus one key every thread keeps replacing.
        CacheKey own = CacheKey::fromText("http://h/" + std::to_string(t) + "/" + std::to_string(i));
        EXPECT_TRUE(put(own, std::string(static_cast<size_t>(i), 'x')).ok());
        CacheKey shared = CacheKey::fromText("http://h/shared");
        EXPECT_TRUE(put(shared, std::string(static_cast<size_t>(t + 1), 's')).ok());
        if (auto m = store_->lookup(shared)) {
          Result<int> fd = store_->openObject(shared, *m);
          if (fd.ok()) ::close(*fd);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  StoreStats st = store_->stats();
  EXPECT_EQ(st.objects, static_cast<uint64_t>(kThreads * kPerThread + 1));
  std::shared_ptr<const ObjectMeta> shared = store_->lookup(CacheKey::fromText("http://h/shared"));
  ASSERT_NE(shared, nullptr);
  Result<int> fd = store_->openObject(CacheKey::fromText("http://h/shared"), *shared);
  ASSERT_TRUE(fd.ok());  // record and file agree after the race
  EXPECT_EQ(readAll(*fd), std::string(shared->size, 's'));
  ::close(*fd);
  uint64_t expectBytes = shared->size + kThreads * (kPerThread * (kPerThread - 1) / 2);
  EXPECT_EQ(st.bytes, expectBytes);
  if (!durable()) return;
  reopen();
  EXPECT_EQ(store_->stats().objects, st.objects);
  EXPECT_EQ(store_->stats().bytes, st.bytes);
}

// ---- partial objects, stubs, refresh ----

TEST_P(StoreContract, PartialIsInvisibleToLookupUntilCommitted) {
  Result<ObjectFile> f = store_->createObject(kA);
  ASSERT_TRUE(f.ok());
  std::string body(2048, 'p');
  ASSERT_EQ(::pwrite(f->fd, body.data(), 1024, 0), 1024);
  ObjectMeta m = metaFor(kA, body.size());
  m.kind = ObjectMeta::Kind::Partial;
  m.gen = f->gen;
  m.blockSize = 1024;
  m.blocks.assign(1, '\x01');
  ASSERT_TRUE(store_->recordPartial(kA, m).ok());
  EXPECT_EQ(store_->lookup(kA), nullptr);
  ASSERT_NE(store_->lookupPartial(kA), nullptr);
  EXPECT_EQ(store_->stats().partials, 1u);
  EXPECT_EQ(store_->stats().partialBytes, 1024u);
  Result<int> again = store_->reopenPartial(kA, *store_->lookupPartial(kA));
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(::pwrite(*again, body.data() + 1024, 1024, 1024), 1024);
  ::close(*again);
  ::close(f->fd);
  ObjectMeta done = metaFor(kA, body.size());
  done.gen = f->gen;
  ASSERT_TRUE(store_->commitObject(kA, done).ok());
  EXPECT_EQ(store_->lookupPartial(kA), nullptr);
  auto c = store_->lookup(kA);
  ASSERT_NE(c, nullptr);
  Result<int> fd = store_->openObject(kA, *c);
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(readAll(*fd), body);
  ::close(*fd);
  EXPECT_EQ(store_->stats().partials, 0u);
  EXPECT_EQ(store_->stats().objects, 1u);
}

TEST_P(StoreContract, DropObjectRemovesAPartialButNeverTheCompleteFile) {
  ASSERT_TRUE(put(kA, "complete").ok());
  auto c = store_->lookup(kA);
  ASSERT_NE(c, nullptr);
  store_->dropObject(kA, c->gen);  // a fill's late drop of a generation now complete
  Result<int> fd = store_->openObject(kA, *c);
  ASSERT_TRUE(fd.ok());
  ::close(*fd);
  Result<ObjectFile> f = store_->createObject(kB);
  ASSERT_TRUE(f.ok());
  ::close(f->fd);
  ObjectMeta p = metaFor(kB, 10);
  p.kind = ObjectMeta::Kind::Partial;
  p.gen = f->gen;
  p.blockSize = 1024;
  ASSERT_TRUE(store_->recordPartial(kB, p).ok());
  store_->dropObject(kB, f->gen);
  EXPECT_EQ(store_->lookupPartial(kB), nullptr);
  EXPECT_EQ(store_->reopenPartial(kB, p).error().code, Errc::NotFound);
}

// keysWhere(): what a purge by host or of everything finds: complete
// objects, stubs and partial records, by their key text, and nothing
// removed (before and, where durable, after a reopen).
TEST_P(StoreContract, KeysWhereListsObjectsStubsAndPartials) {
  const CacheKey other = CacheKey::fromText("http://updates.cdn-apple.com/c.pkg");
  const CacheKey stub = CacheKey::fromText("http://swcdn.apple.com/varies");
  ASSERT_TRUE(put(kA, "aaaa").ok());
  ASSERT_TRUE(put(kB, "bb").ok());
  ASSERT_TRUE(put(other, "cc").ok());
  ObjectMeta s;
  s.kind = ObjectMeta::Kind::VaryStub;
  s.vary = "accept-encoding";
  ASSERT_TRUE(store_->putStub(stub, s).ok());
  Result<ObjectFile> f = store_->createObject(CacheKey::fromText("http://swcdn.apple.com/partial"));
  ASSERT_TRUE(f.ok());
  ::close(f->fd);
  const CacheKey partial = CacheKey::fromText("http://swcdn.apple.com/partial");
  ObjectMeta p = metaFor(partial, 10);
  p.kind = ObjectMeta::Kind::Partial;
  p.gen = f->gen;
  p.blockSize = 1024;
  p.blocks = std::string(1, '\0');  // one block of 1024 covers the 10 bytes; none durable yet
  ASSERT_TRUE(store_->recordPartial(partial, p).ok());
  ASSERT_TRUE(store_->remove(kB).ok());

  // Records of a stub and of a removal are not waited for (the loops call
  // those): the index may trail them by a moment.
  auto apple = [&] {
    auto r = store_->keysWhere([](std::string_view k) { return keyHost(k) == "swcdn.apple.com"; });
    EXPECT_TRUE(r.ok());
    std::vector<std::string> got = r.ok() ? *r : std::vector<std::string>{};
    std::sort(got.begin(), got.end());
    return got;
  };
  const std::vector<std::string> want = {kA.text, partial.text, stub.text};
  auto check = [&] {
    EXPECT_TRUE(waitUntil([&] { return apple() == want; })) << ::testing::PrintToString(apple());
    auto none = store_->keysWhere([](std::string_view) { return false; });
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
    auto all = store_->keysWhere([](std::string_view) { return true; });
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->size(), 4u);
  };
  check();
  if (!durable()) return;
  reopen();
  check();
}

TEST_P(StoreContract, VaryStubIsServedByLookupAndReplacesAnObject) {
  ASSERT_TRUE(put(kA, "plain").ok());
  ObjectMeta stub;
  stub.kind = ObjectMeta::Kind::VaryStub;
  stub.vary = "accept-encoding";
  ASSERT_TRUE(store_->putStub(kA, stub).ok());
  auto m = store_->lookup(kA);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->kind, ObjectMeta::Kind::VaryStub);
  EXPECT_EQ(m->vary, "accept-encoding");
  EXPECT_EQ(store_->stats().objects, 0u);
  ObjectMeta notStub = metaFor(kB, 0);
  EXPECT_EQ(store_->putStub(kB, notStub).error().code, Errc::Invalid);
  if (!durable()) return;
  reopen();
  ASSERT_NE(store_->lookup(kA), nullptr);
  EXPECT_EQ(store_->lookup(kA)->kind, ObjectMeta::Kind::VaryStub);
}

TEST_P(StoreContract, RefreshReplacesHeadersOfTheSameGenerationOnly) {
  ASSERT_TRUE(put(kA, "body").ok());
  auto m = store_->lookup(kA);
  ObjectMeta updated = *m;
  updated.etag = "\"v2\"";
  ASSERT_TRUE(store_->refresh(kA, updated).ok());
  EXPECT_EQ(store_->lookup(kA)->etag, "\"v2\"");
  ASSERT_TRUE(put(kA, "other").ok());  // a new generation meanwhile
  EXPECT_EQ(store_->refresh(kA, updated).error().code, Errc::NotFound);
  if (!durable()) return;
  reopen();
  EXPECT_EQ(store_->lookup(kA)->size, 5u);
}

// ---- block checksums ----

TEST_P(StoreContract, CommitRecordsAChecksumPerBlockThatSurvivesReopen) {
  const uint64_t size = 2 * kChecksumBlockSize + 12345;
  std::string body = patterned(size);
  ASSERT_TRUE(put(kA, body).ok());
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  ASSERT_EQ(meta->blockSize, kChecksumBlockSize);
  ASSERT_EQ(meta->sums.size(), 3u);
  for (uint64_t b = 0; b < 3; ++b) {
    uint64_t off = b * kChecksumBlockSize;
    EXPECT_EQ(meta->sums[b], blockChecksum(body.data() + off, std::min<uint64_t>(kChecksumBlockSize, size - off)));
  }
  ASSERT_NE(meta->verified, nullptr);
  if (!durable()) return;
  std::vector<uint64_t> sums = meta->sums;
  meta.reset();
  reopen();
  meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(meta->sums, sums);
  ASSERT_NE(meta->verified, nullptr);
  EXPECT_FALSE(meta->verified->allVerified());  // a new process verifies again
}

TEST_P(StoreContract, VerificationDetectsAFlippedByteAndDropsTheObject) {
  const uint64_t size = 3 * kChecksumBlockSize;
  ASSERT_TRUE(put(kA, patterned(size)).ok());
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  flipStoredByte(*store_, kA, kChecksumBlockSize + 7);  // block 1
  Result<int> fd = store_->openObject(kA, *meta);
  ASSERT_TRUE(fd.ok());  // same size: the open cannot tell
  // Block 0 is fine; a range inside block 0 passes.
  EXPECT_TRUE(store_->ensureVerified(kA, *meta, *fd, 0, 100).ok());
  EXPECT_TRUE(meta->verified->test(0));
  Result<void> v = store_->ensureVerified(kA, *meta, *fd, 0, size);
  ::close(*fd);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, Errc::Corrupt);
  EXPECT_FALSE(meta->verified->test(1));
  EXPECT_EQ(store_->lookup(kA), nullptr);
  if (onDisk()) {
    EXPECT_EQ(countObjectFiles(), 0u);
  }
  EXPECT_EQ(store_->stats().corruptObjects, 1u);
  EXPECT_EQ(store_->stats().objects, 0u);
  if (!durable()) return;
  reopen();
  EXPECT_EQ(store_->lookup(kA), nullptr) << "the record is gone too";
}

TEST_P(StoreContract, VerifiedBlocksAreRememberedPerGeneration) {
  std::string body = patterned(kChecksumBlockSize + 10);
  ASSERT_TRUE(put(kA, body).ok());
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  Result<int> fd = store_->openObject(kA, *meta);
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(store_->ensureVerified(kA, *meta, *fd, 0, body.size()).ok());
  EXPECT_TRUE(meta->verified->allVerified());
  // Later sends are not re-read: a change now goes unseen by hits...
  flipStoredByte(*store_, kA, 3);
  EXPECT_TRUE(store_->ensureVerified(kA, *meta, *fd, 0, body.size()).ok());
  EXPECT_TRUE(store_->lookup(kA)->verified->allVerified()) << "every lookup shares the marks";
  ::close(*fd);
  // ...until the scrub, or a new generation, or a restart.
  if (durable()) {
    reopen();
    meta = store_->lookup(kA);
    ASSERT_NE(meta, nullptr);
    fd = store_->openObject(kA, *meta);
    ASSERT_TRUE(fd.ok());
    EXPECT_FALSE(store_->ensureVerified(kA, *meta, *fd, 0, 1).ok());
    ::close(*fd);
    EXPECT_EQ(store_->lookup(kA), nullptr);
  }
  // A new generation starts unverified.
  ASSERT_TRUE(put(kA, body).ok());
  meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  EXPECT_FALSE(meta->verified->test(0));
}

TEST_P(StoreContract, RefreshKeepsChecksumsAndVerifiedBlocks) {
  ASSERT_TRUE(put(kA, patterned(1000)).ok());
  auto meta = store_->lookup(kA);
  Result<int> fd = store_->openObject(kA, *meta);
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(store_->ensureVerified(kA, *meta, *fd, 0, 1000).ok());
  ::close(*fd);
  ObjectMeta updated = *meta;
  updated.sums.clear();  // a caller's copy without them must not lose them
  updated.verified.reset();
  updated.responseTime += 60;
  ASSERT_TRUE(store_->refresh(kA, updated).ok());
  auto after = store_->lookup(kA);
  EXPECT_EQ(after->sums, meta->sums);
  EXPECT_EQ(after->verified, meta->verified);
}

TEST_P(StoreContract, ScrubFindsCorruptionAndDropsOnlyThatObject) {
  ASSERT_TRUE(put(kA, patterned(2 * kChecksumBlockSize)).ok());
  ASSERT_TRUE(put(kB, patterned(5000)).ok());
  flipStoredByte(*store_, kA, 2 * kChecksumBlockSize - 1);  // the last byte of block 1
  EXPECT_EQ(store_->scrubNow(), 1u);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  if (onDisk()) {
    EXPECT_EQ(countObjectFiles(), 1u);
  }
  auto b = store_->lookup(kB);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b->verified->allVerified()) << "a scrub that passes marks the blocks";
  StoreStats st = store_->stats();
  EXPECT_EQ(st.corruptObjects, 1u);
  EXPECT_EQ(st.scrubPasses, 1u);
  EXPECT_EQ(store_->scrubNow(), 0u);
  EXPECT_EQ(store_->stats().corruptObjects, 1u);
}

TEST_P(StoreContract, PrivateTempFilesAreUsableAndLeaveNoObject) {
  Result<TempFile> t = store_->createTemp(kA);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(::write(t->fd(), "xyz", 3), 3);
  store_->abandon(std::move(t).value());
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_EQ(store_->stats().objects, 0u);
}

std::unique_ptr<Store> openFileStore(const std::string& dir) {
  auto s = Store::open(StoreOptions{dir, 0});
  EXPECT_TRUE(s.ok()) << s.error().message();
  return s ? std::move(s).value() : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract,
                         ::testing::Values(StoreKind{"FileStore", true, true, openFileStore},
                                           StoreKind{"MemoryStore", false, false,
                                                     [](const std::string&) { return makeMemoryStore(); }}),
                         [](const ::testing::TestParamInfo<StoreKind>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace orchard::cache
