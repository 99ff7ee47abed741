// Tests for cache/store (and the index underneath): commit/lookup, hash
// collisions, size checks, persistence across reopen, temp file cleanup,
// damaged objects and records, replacement stats and removal. Each test
// works in its own mkdtemp directory under /tmp, removed afterwards.
#include "cache/store.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "cache/index.h"

namespace orchard::cache {
namespace {

int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    reopen();
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) ::nftw(dir_.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  }

  void reopen() {
    store_.reset();
    Result<std::unique_ptr<Store>> s = Store::open(StoreOptions{dir_, 0});
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(s).value();
  }

  static ObjectMeta metaFor(const CacheKey& key, uint64_t size) {
    ObjectMeta m;
    m.key = key.text;
    m.size = size;
    m.headers = {{"Content-Type", "application/octet-stream"}};
    m.etag = "\"v1\"";
    m.responseTime = 1'700'000'000;
    return m;
  }

  // Fills a temp file with `body` and commits it.
  Result<void> put(const CacheKey& key, const std::string& body, uint64_t declaredSize) {
    Result<TempFile> t = store_->createTemp(key);
    if (!t) return t.error();
    EXPECT_EQ(::write(t->fd(), body.data(), body.size()), static_cast<ssize_t>(body.size()));
    TempFile file = std::move(t).value();
    Result<void> r = store_->commit(key, std::move(file), metaFor(key, declaredSize));
    if (!r) store_->abandon(std::move(file));
    return r;
  }
  Result<void> put(const CacheKey& key, const std::string& body) { return put(key, body, body.size()); }

  std::string readAll(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

  // The file of the key's current complete object (generation from its record).
  std::string objectPath(const CacheKey& key) const {
    std::string hex = key.hash.hex();
    auto meta = store_ ? store_->lookup(key) : nullptr;
    uint64_t gen = meta ? meta->gen : lastGen_;
    return dir_ + "/objects/" + hex.substr(0, 2) + "/" + hex.substr(2, 2) + "/" + hex + "." + std::to_string(gen);
  }
  mutable uint64_t lastGen_ = 0;

  size_t countFiles(const std::string& sub) const {
    static size_t count;
    count = 0;
    ::nftw((dir_ + "/" + sub).c_str(),
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

TEST_F(StoreTest, OpenCreatesLayout) {
  struct stat st;
  EXPECT_EQ(::stat((dir_ + "/index").c_str(), &st), 0);
  EXPECT_EQ(::stat((dir_ + "/objects").c_str(), &st), 0);
  EXPECT_EQ(::stat((dir_ + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(store_->stats().objects, 0u);
}

TEST_F(StoreTest, InvisibleUntilCommitThenHit) {
  Result<TempFile> t = store_->createTemp(kA);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->path().rfind(dir_ + "/tmp/" + kA.hash.hex() + ".", 0), 0u);
  ASSERT_EQ(::write(t->fd(), "hello", 5), 5);
  EXPECT_EQ(store_->lookup(kA), nullptr);

  ASSERT_TRUE(store_->commit(kA, std::move(t).value(), metaFor(kA, 5)).ok());
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
  EXPECT_EQ(countFiles("tmp"), 0u);
  EXPECT_EQ(store_->stats().objects, 1u);
  EXPECT_EQ(store_->stats().bytes, 5u);
}

TEST_F(StoreTest, CommitFillsEmptyMetaKey) {
  Result<TempFile> t = store_->createTemp(kA);
  ASSERT_TRUE(t.ok());
  ObjectMeta m = metaFor(kA, 0);
  m.key.clear();
  ASSERT_TRUE(store_->commit(kA, std::move(t).value(), m).ok());
  ASSERT_NE(store_->lookup(kA), nullptr);
  EXPECT_EQ(store_->lookup(kA)->key, kA.text);
}

TEST_F(StoreTest, HashCollisionWithDifferentTextMisses) {
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

TEST_F(StoreTest, SizeMismatchAtCommitIsRejected) {
  Result<TempFile> t = store_->createTemp(kA);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(::write(t->fd(), "abc", 3), 3);
  TempFile file = std::move(t).value();
  std::string tempPath = file.path();
  Result<void> r = store_->commit(kA, std::move(file), metaFor(kA, 4));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Corrupt);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_TRUE(file.valid());  // still the caller's to abandon
  EXPECT_EQ(::access(tempPath.c_str(), F_OK), 0);
  store_->abandon(std::move(file));
  EXPECT_EQ(::access(tempPath.c_str(), F_OK), -1);
  EXPECT_EQ(store_->stats().objects, 0u);
  EXPECT_EQ(countFiles("objects"), 0u);
}

TEST_F(StoreTest, CommitRejectsTempFileOfAnotherKey) {
  Result<TempFile> t = store_->createTemp(kB);
  ASSERT_TRUE(t.ok());
  TempFile file = std::move(t).value();
  Result<void> r = store_->commit(kA, std::move(file), metaFor(kA, 0));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Invalid);
  store_->abandon(std::move(file));
}

TEST_F(StoreTest, ReopenKeepsObjects) {
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

TEST_F(StoreTest, OpenRemovesTempFiles) {
  Result<TempFile> t = store_->createTemp(kA);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(::write(t->fd(), "partial", 7), 7);
  std::string path = t->path();
  { TempFile leaked = std::move(t).value(); }  // closed, not unlinked: a crashed fill
  ASSERT_EQ(::mkdir((dir_ + "/tmp/stray-dir").c_str(), 0755), 0);
  int stray = ::open((dir_ + "/tmp/stray-dir/x").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(stray, 0);
  ::close(stray);
  EXPECT_EQ(countFiles("tmp"), 2u);
  reopen();
  EXPECT_EQ(countFiles("tmp"), 0u);
  EXPECT_EQ(::access((dir_ + "/tmp/stray-dir").c_str(), F_OK), -1);
  EXPECT_EQ(::access(path.c_str(), F_OK), -1);
  EXPECT_EQ(store_->lookup(kA), nullptr);
}

TEST_F(StoreTest, TempFileNamesAreUnique) {
  Result<TempFile> t1 = store_->createTemp(kA);
  Result<TempFile> t2 = store_->createTemp(kA);
  ASSERT_TRUE(t1.ok());
  ASSERT_TRUE(t2.ok());
  EXPECT_NE(t1->path(), t2->path());
  store_->abandon(std::move(t1).value());
  store_->abandon(std::move(t2).value());
  EXPECT_EQ(countFiles("tmp"), 0u);
}

TEST_F(StoreTest, OpenObjectDetectsTruncatedFileAndDropsEntry) {
  ASSERT_TRUE(put(kA, "0123456789").ok());
  std::shared_ptr<const ObjectMeta> m = store_->lookup(kA);
  ASSERT_NE(m, nullptr);
  const std::string path = objectPath(kA);
  ASSERT_EQ(::truncate(path.c_str(), 4), 0);
  Result<int> fd = store_->openObject(kA, *m);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code, Errc::Corrupt);
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_EQ(::access(path.c_str(), F_OK), -1);
  EXPECT_EQ(store_->stats().objects, 0u);
  EXPECT_EQ(store_->stats().bytes, 0u);
  reopen();  // the index record went too
  EXPECT_EQ(store_->lookup(kA), nullptr);
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

TEST_F(StoreTest, OpenObjectWithStaleMetaKeepsNewerObject) {
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

TEST_F(StoreTest, ReplaceUpdatesStatsAndContent) {
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
  EXPECT_EQ(countFiles("objects"), 2u);
  reopen();
  EXPECT_EQ(store_->stats().objects, 2u);
  EXPECT_EQ(store_->stats().bytes, 12u);
}

TEST_F(StoreTest, ReaderKeepsOldBytesAcrossReplacement) {
  ASSERT_TRUE(put(kA, "old-bytes").ok());
  std::shared_ptr<const ObjectMeta> m = store_->lookup(kA);
  Result<int> fd = store_->openObject(kA, *m);
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(put(kA, "new").ok());
  EXPECT_EQ(readAll(*fd), "old-bytes");  // rename replaced the name, not the inode
  ::close(*fd);
  EXPECT_EQ(m->size, 9u);  // the caller's snapshot of the old meta stays valid
}

TEST_F(StoreTest, RemoveDeletesFileRecordAndEntry) {
  ASSERT_TRUE(put(kA, "aaaa").ok());
  ASSERT_TRUE(put(kB, "bb").ok());
  const std::string path = objectPath(kA);
  ASSERT_EQ(::access(path.c_str(), F_OK), 0);
  ASSERT_TRUE(store_->remove(kA).ok());
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_EQ(::access(path.c_str(), F_OK), -1);
  EXPECT_EQ(store_->stats().objects, 1u);
  EXPECT_EQ(store_->stats().bytes, 2u);
  Result<void> again = store_->remove(kA);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::NotFound);
  reopen();
  EXPECT_EQ(store_->lookup(kA), nullptr);
  EXPECT_NE(store_->lookup(kB), nullptr);
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
  { TempFile gone = std::move(c); }
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);      // closed by the destructor
  EXPECT_EQ(::access(path.c_str(), F_OK), 0);  // but not unlinked
}

TEST_F(StoreTest, ConcurrentCommitsAndLookupsStayConsistent) {
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
  reopen();
  EXPECT_EQ(store_->stats().objects, st.objects);
  EXPECT_EQ(store_->stats().bytes, st.bytes);
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

}  // namespace
}  // namespace orchard::cache
