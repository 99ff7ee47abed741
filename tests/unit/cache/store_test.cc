// Tests of the file store alone (the contract every Store keeps is in
// store_conformance_test.cc; eviction and start-up reconciliation are in
// store_eviction_test.cc and store_reconcile_test.cc): the directory
// layout, temp files on disk, records damaged on disk, object files gone
// missing, the shared database and the record writer; block checksums
// (verification on the hit path, cached per generation, the scrub, records
// from before checksums) and start-up errors (a damaged index, its repair).
// Each test works in its own mkdtemp directory under /tmp, removed
// afterwards (the StoreTest fixture is in store_test_util.h). Background
// work is awaited by polling with a deadline, never by sleeping a fixed time.
#include "cache/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cache/file_util.h"
#include "cache/index.h"
#include "tests/unit/cache/meta_v2.h"
#include "tests/unit/cache/store_test_util.h"

namespace orchard::cache {
namespace {

using namespace orchard::cache::testing;
using namespace orchard::cache::store_test;

TEST_F(StoreTest, OpenCreatesLayout) {
  struct stat st;
  EXPECT_EQ(::stat((dir_ + "/index").c_str(), &st), 0);
  EXPECT_EQ(::stat((dir_ + "/objects").c_str(), &st), 0);
  EXPECT_EQ(::stat((dir_ + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(store_->stats().objects, 0u);
}




TEST_F(StoreTest, RecordWhoseKeyDoesNotHashToItsIndexKeyIsDroppedAtOpen) {
  ASSERT_TRUE(put(kA, "aaaa").ok());
  store_.reset();
  {
    Result<std::unique_ptr<Index>> idx = Index::open(dir_ + "/index");
    ASSERT_TRUE(idx.ok()) << idx.error().message();
    // A record under kB's hash that claims to be kA: a forged or damaged record.
    ASSERT_TRUE((*idx)->put(kB.hash, encodeMeta(metaFor(kA, 4))).ok());
    // A record that does not decode.
    Hash128 junk{1, 2};
    ASSERT_TRUE((*idx)->put(junk, "\x01garbage").ok());
  }
  reopen();
  EXPECT_NE(store_->lookup(kA), nullptr);
  EXPECT_EQ(store_->lookup(kB), nullptr);
  EXPECT_EQ(store_->lookup(CacheKey{kA.text, kB.hash}), nullptr);
  EXPECT_EQ(store_->stats().objects, 1u);
  store_.reset();
  {
    Result<std::unique_ptr<Index>> idx = Index::open(dir_ + "/index");
    ASSERT_TRUE(idx.ok());
    int records = 0;
    ASSERT_TRUE((*idx)->forEach([&](const Hash128& h, std::string_view) {
      EXPECT_EQ(h, kA.hash);
      ++records;
    }).ok());
    EXPECT_EQ(records, 1);  // the bad records were deleted, not just skipped
  }
  reopen();
}

TEST_F(StoreTest, OpenRemovesTempFiles) {
  // The temp file may be one of the store's spares (tmp/spare.N, made in
  // the background) or a file of its own, whichever the race gives. The
  // reopened store may make a new spare under the same name (its counter
  // starts again), so the leaked file is told by its bytes: a file at that
  // path afterwards must be an empty spare.
  Result<TempFile> t = store_->createTemp(kA);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(::write(t->fd(), "partial", 7), 7);
  std::string path = t->path();
  { TempFile leaked = std::move(t).value(); }  // closed, not unlinked: a crashed fill
  ASSERT_EQ(::mkdir((dir_ + "/tmp/stray-dir").c_str(), 0755), 0);
  int stray = ::open((dir_ + "/tmp/stray-dir/x").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(stray, 0);
  ::close(stray);
  ASSERT_EQ(::access(path.c_str(), F_OK), 0);
  reopen();
  EXPECT_EQ(countFiles("tmp"), 0u);
  EXPECT_EQ(::access((dir_ + "/tmp/stray-dir").c_str(), F_OK), -1);
  struct stat now {};
  if (::stat(path.c_str(), &now) == 0) EXPECT_EQ(now.st_size, 0) << path << " survived the reopen";
  EXPECT_EQ(store_->lookup(kA), nullptr);
}

TEST_F(StoreTest, TempFileNamesAreUnique) {
  Result<TempFile> t1 = store_->createTemp(kA);
  Result<TempFile> t2 = store_->createTemp(kA);
  ASSERT_TRUE(t1.ok());
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(t1->path().rfind(dir_ + "/tmp/", 0), 0u);
  EXPECT_NE(t1->path(), t2->path());
  store_->abandon(std::move(t1).value());
  store_->abandon(std::move(t2).value());
  EXPECT_EQ(countFiles("tmp"), 0u);
}


TEST_F(StoreTest, OpenObjectDetectsMissingFileAndDropsEntry) {
  ASSERT_TRUE(put(kA, "0123456789").ok());
  std::shared_ptr<const ObjectMeta> m = store_->lookup(kA);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(::unlink(objectPath(kA).c_str()), 0);
  Result<int> fd = store_->openObject(kA, *m);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code, Errc::NotFound);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  reopen();
  EXPECT_EQ(store_->lookup(kA), nullptr);
}


TEST_F(StoreTest, AbandonLeavesNothing) {
  Result<TempFile> t = store_->createTemp(kA);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(::write(t->fd(), "xyz", 3), 3);
  store_->abandon(std::move(t).value());
  EXPECT_EQ(countFiles("tmp"), 0u);
  EXPECT_EQ(countFiles("objects"), 0u);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_EQ(store_->stats().objects, 0u);
}




TEST_F(StoreTest, TempFileMoveTransfersOwnership) {
  Result<TempFile> t = store_->createTemp(kA);
  ASSERT_TRUE(t.ok());
  TempFile a = std::move(t).value();
  int fd = a.fd();
  TempFile b(std::move(a));
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.fd(), fd);
  TempFile c;
  c = std::move(b);
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(c.fd(), fd);
  EXPECT_EQ(::fcntl(fd, F_GETFD), FD_CLOEXEC);
  std::string path = c.path();
  struct stat before;
  ASSERT_EQ(::fstat(fd, &before), 0);
  { TempFile gone = std::move(c); }
  // Closed by the destructor. The store's thread may reopen the number at
  // once (it makes spare files), so compare what it names, not its validity.
  struct stat after;
  EXPECT_TRUE(::fstat(fd, &after) != 0 || after.st_ino != before.st_ino || after.st_dev != before.st_dev);
  EXPECT_EQ(::access(path.c_str(), F_OK), 0);  // but not unlinked
}

// ---- the box's database and the record writer ----

TEST(StoreOpen, SharesTheBoxDatabaseAndKeepsItsLayout) {
  char tmpl[] = "/tmp/orchard-store-db-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const CacheKey key = CacheKey::fromText("http://swcdn.apple.com/shared.pkg");
  {
    auto database = openStoreDatabase(dir);
    ASSERT_TRUE(database.ok()) << database.error().message();
    auto s = Store::open(StoreOptions{dir, 0}, *database);
    ASSERT_TRUE(s.ok()) << s.error().message();
    ASSERT_TRUE(putObject(**s, key, "shared", metaFor(key, 6), 6).ok());
    s->reset();
    EXPECT_EQ((*database).use_count(), 1) << "the store let go of the database";
  }
  {
    // A later open with more families (a catalog) keeps the cache's.
    auto database = db::Database::open(dir + "/index", {"catalog.packages", kCacheFamily});
    ASSERT_TRUE(database.ok());
    EXPECT_TRUE((*database)->family("catalog.packages").valid());
    ASSERT_TRUE((*database)->put((*database)->family("catalog.packages"), "pkg", "v1").ok());
  }
  // Store::open() without a database opens it itself, with every family.
  auto s = Store::open(StoreOptions{dir, 0});
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_NE((*s)->lookup(key), nullptr);
  s->reset();
  ::nftw(dir.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
}

TEST_F(StoreTest, WritesTheLoopsMakeReachTheIndexByClose) {
  // putStub(), refresh() and remove() do not wait for RocksDB; the store's
  // destruction applies what they queued.
  ASSERT_TRUE(put(kA, "aaaa").ok());
  ASSERT_TRUE(put(kB, "bbbb").ok());
  ObjectMeta updated = *store_->lookup(kA);
  updated.etag = "\"v2\"";
  ASSERT_TRUE(store_->refresh(kA, updated).ok());
  ASSERT_TRUE(store_->remove(kB).ok());
  ObjectMeta stub;
  stub.kind = ObjectMeta::Kind::VaryStub;
  stub.vary = "accept-encoding";
  const CacheKey kC = CacheKey::fromText("http://swcdn.apple.com/c.pkg");
  ASSERT_TRUE(store_->putStub(kC, stub).ok());
  store_.reset();
  {
    Result<std::unique_ptr<Index>> idx = Index::open(dir_ + "/index");
    ASSERT_TRUE(idx.ok());
    std::vector<Hash128> seen;
    ASSERT_TRUE((*idx)->forEach([&](const Hash128& h, std::string_view bytes) {
      seen.push_back(h);
      auto m = decodeMeta(bytes);
      ASSERT_TRUE(m.ok());
      if (h == kA.hash) {
        EXPECT_EQ(m->etag, "\"v2\"");
      }
      if (h == kC.hash) {
        EXPECT_EQ(m->kind, ObjectMeta::Kind::VaryStub);
      }
    }).ok());
    EXPECT_EQ(seen.size(), 2u);
    EXPECT_EQ(std::count(seen.begin(), seen.end(), kB.hash), 0);
  }
  reopen();
  EXPECT_EQ(store_->lookup(kA)->etag, "\"v2\"");
  EXPECT_EQ(store_->lookup(kB), nullptr);
}

TEST(IndexTest, HashKeyEncodingIsBigEndianHiThenLo) {
  Hash128 h{0x0102030405060708ull, 0x090a0b0c0d0e0f10ull};
  std::string k = encodeHashKey(h);
  ASSERT_EQ(k.size(), 16u);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(static_cast<uint8_t>(k[i]), i + 1);
  Hash128 back;
  ASSERT_TRUE(decodeHashKey(k, &back));
  EXPECT_EQ(back, h);
  EXPECT_FALSE(decodeHashKey("short", &back));
}

TEST(StoreOpen, FailsCleanlyWhenDirIsAFile) {
  char tmpl[] = "/tmp/orchard-store-file-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  Result<std::unique_ptr<Store>> s = Store::open(StoreOptions{tmpl, 0});
  EXPECT_FALSE(s.ok());
  ::unlink(tmpl);
}

// ---- block checksums ----

// Overwrites one byte of a file in place (same size, other bytes).
void flipByte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  char c;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
  c = static_cast<char>(c ^ 0x40);
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}






TEST_F(StoreTest, BackgroundScrubRunsEveryInterval) {
  store_.reset();
  StoreOptions o{dir_, 0};
  o.scrubIntervalMs = 1000;
  o.scrubBytesPerSecond = 0;
  auto s = Store::open(o);
  ASSERT_TRUE(s.ok());
  store_ = std::move(s).value();
  ASSERT_TRUE(put(kA, patterned(4096)).ok());
  flipByte(objectPath(kA), 100);
  EXPECT_TRUE(waitUntil([&] { return store_->stats().corruptObjects == 1; }, 10));
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_TRUE(waitUntil([&] { return store_->stats().scrubPasses >= 2; }, 10)) << "and again";
}

TEST_F(StoreTest, RecordFromBeforeChecksumsOpensAndServesUnverified) {
  // A store written by the previous release: a version 2 record (no
  // checksums) over its object file.
  store_.reset();
  const std::string body = patterned(kChecksumBlockSize + 99);
  const uint64_t gen = 42;
  {
    std::string hex = kA.hash.hex();
    int fd = ::open(pathOf(kA.hash, gen).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, body.data(), body.size()), static_cast<ssize_t>(body.size()));
    ::close(fd);
    ObjectMeta m = metaFor(kA, body.size());
    m.gen = gen;
    std::string record = oldformat::encodeMetaV2(m);
    ASSERT_EQ(record[0], 2);
    auto index = Index::open(dir_ + "/index");
    ASSERT_TRUE(index.ok());
    ASSERT_TRUE((*index)->put(kA.hash, record).ok());
  }
  reopen();
  ASSERT_TRUE(waitUntil([&] { return store_->reconciled(); }));
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr) << "an old record must survive the upgrade";
  EXPECT_EQ(meta->gen, gen);
  EXPECT_TRUE(meta->sums.empty());
  EXPECT_EQ(meta->verified, nullptr);
  Result<OpenObject> o = store_->openForRead(kA, *meta);
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(store_->ensureVerified(kA, *meta, o->fd, 0, body.size()).ok());
  EXPECT_EQ(readAll(o->fd), body);
  ::close(o->fd);
  EXPECT_EQ(store_->scrubNow(), 0u) << "nothing to check it against";
  EXPECT_NE(store_->lookup(kA), nullptr);
}

TEST_F(StoreTest, StoreWrittenByTheReleaseBeforeSummariesIsMigratedAndServes) {
  // main before issue 9: records in the "cache" family only (v3 with
  // checksums, v2 without), no "cache.summary" family at all.
  store_.reset();
  const std::string body = patterned(2 * kChecksumBlockSize + 5);
  const CacheKey keys[] = {kA, kB};
  for (int i = 0; i < 2; ++i) {
    const uint64_t gen = 40 + i;
    int fd = ::open(pathOf(keys[i].hash, gen).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, body.data(), body.size()), static_cast<ssize_t>(body.size()));
    ::close(fd);
  }
  ::nftw((dir_ + "/index").c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  {
    auto database = db::Database::open(dir_ + "/index", {kCacheFamily});
    ASSERT_TRUE(database.ok());
    ObjectMeta a = metaFor(kA, body.size());
    a.gen = 40;
    a.blockSize = kChecksumBlockSize;
    for (uint64_t off = 0; off < body.size(); off += kChecksumBlockSize)
      a.sums.push_back(blockChecksum(body.data() + off, std::min<uint64_t>(kChecksumBlockSize, body.size() - off)));
    ObjectMeta b = metaFor(kB, body.size());
    b.gen = 41;
    db::Family f = (*database)->family(kCacheFamily);
    ASSERT_TRUE((*database)->put(f, encodeHashKey(kA.hash), encodeMeta(a)).ok());
    ASSERT_TRUE((*database)->put(f, encodeHashKey(kB.hash), oldformat::encodeMetaV2(b)).ok());
    EXPECT_FALSE((*database)->family(kSummaryFamily).valid());
  }
  reopen();
  EXPECT_EQ(store_->stats().objects, 2u);
  for (const CacheKey& k : keys) {
    auto meta = store_->lookup(k);
    ASSERT_NE(meta, nullptr) << "a record of the previous release must open";
    Result<OpenObject> o = store_->openForRead(k, *meta);
    ASSERT_TRUE(o.ok());
    EXPECT_TRUE(store_->ensureVerified(k, *meta, o->fd, 0, body.size()).ok());
    EXPECT_EQ(readAll(o->fd), body);
    ::close(o->fd);
  }
  EXPECT_FALSE(store_->lookup(kA)->sums.empty());
  EXPECT_TRUE(store_->lookup(kB)->sums.empty());
  // Migrated once: the summaries are there now and serve the next start.
  store_.reset();
  {
    auto index = Index::open(dir_ + "/index");
    ASSERT_TRUE(index.ok());
    EXPECT_TRUE((*index)->hasSummaries());
    int n = 0;
    ASSERT_TRUE((*index)->forEachSummary([&](const Hash128&, const IndexSummary& s) { n += s.valid; }).ok());
    EXPECT_EQ(n, 2);
  }
  reopen();
  ASSERT_TRUE(waitUntil([&] { return store_->reconciled(); }));
  EXPECT_NE(store_->lookup(kA), nullptr);
  EXPECT_NE(store_->lookup(kB), nullptr);
}

TEST_F(StoreTest, HitAfterRestartReadsTheRecordAndCountsItsPins) {
  // Nothing but the compact entry is in memory after open: the first hit
  // reads the record from RocksDB, later ones come from the record cache.
  const std::string body = patterned(5000);
  ASSERT_TRUE(put(kA, body).ok());
  reopen();
  auto first = store_->lookup(kA);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->key, kA.text);
  EXPECT_EQ(first->size, body.size());
  EXPECT_EQ(store_->lookup(kA).get(), first.get()) << "the second hit is served from the record cache";
  EXPECT_EQ(store_->lookup(CacheKey{kB.text, kA.hash}), nullptr) << "the full text still decides";
  Result<OpenObject> o = store_->openForRead(kA, *first);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(readAll(o->fd), body);
  ::close(o->fd);
  // A pin may outlive the store (it holds the index, not the store).
  store_.reset();
  o->pin.reset();
}

// ---- start-up errors ----

TEST_F(StoreTest, GarbledIndexFailsToOpenThenRepairBringsItBack) {
  ASSERT_TRUE(put(kA, patterned(3000)).ok());
  store_.reset();
  {
    int fd = ::open((dir_ + "/index/CURRENT").c_str(), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "garbage\n", 8), 8);
    ::close(fd);
  }
  auto s = Store::open(StoreOptions{dir_, 0});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.error().context).find("--repair-index"), std::string::npos) << s.error().message();
  ASSERT_TRUE(repairStoreIndex(dir_).ok());
  reopen();
  EXPECT_NE(store_->lookup(kA), nullptr) << "the repair salvaged the record";
}

TEST_F(StoreTest, LostManifestIsRepairedFromTheTableFiles) {
  ASSERT_TRUE(put(kA, patterned(3000)).ok());
  store_.reset();  // closing flushes the records into a table file
  DIR* d = ::opendir((dir_ + "/index").c_str());
  ASSERT_NE(d, nullptr);
  while (struct dirent* e = ::readdir(d))
    if (std::strncmp(e->d_name, "MANIFEST-", 9) == 0) ::unlink((dir_ + "/index/" + e->d_name).c_str());
  ::closedir(d);
  ASSERT_FALSE(Store::open(StoreOptions{dir_, 0}).ok());
  ASSERT_TRUE(repairStoreIndex(dir_).ok());
  reopen();
  EXPECT_NE(store_->lookup(kA), nullptr) << "RocksDB's repair salvaged the record";
}

TEST(StoreOpen, RepairWithoutAnIndexIsNotFound) {
  Result<void> r = repairStoreIndex("/nonexistent/orchard-store");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NotFound);
}

TEST(StoreOpen, MakeDirsNamesThePathItCouldNotMake) {
  char tmpl[] = "/tmp/orchard-store-file-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::string failed;
  Result<void> r = makeDirs(std::string(tmpl) + "/sub/deeper", &failed);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(failed, std::string(tmpl) + "/sub");
  EXPECT_FALSE(Store::open(StoreOptions{std::string(tmpl) + "/sub", 0}).ok());
  ::unlink(tmpl);
}

}  // namespace
}  // namespace orchard::cache
