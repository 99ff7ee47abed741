// Tests for db/: column families (created when missing, kept across a
// reopen that names fewer), a batch across two families applied all or
// nothing, get/put/del, forEach from a consistent snapshot, repair, and the
// WriteQueue's order, flush and drain at destruction. Each test works in
// its own mkdtemp directory.
#include "db/database.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "db/write_queue.h"

namespace orchard::db {
namespace {

int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-db-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/db";
  }
  void TearDown() override { ::nftw(dir_.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS); }

  std::unique_ptr<Database> open(const std::vector<std::string>& families) {
    auto d = Database::open(path_, families);
    EXPECT_TRUE(d.ok()) << d.error().message();
    return d ? std::move(d).value() : nullptr;
  }
  static std::string get(const Database& d, Family f, const std::string& key) {
    auto v = d.get(f, key);
    EXPECT_TRUE(v.ok());
    return v.ok() && v->has_value() ? **v : "<none>";
  }

  std::string dir_, path_;
};

TEST_F(DatabaseTest, FamiliesAreCreatedAndSeparate) {
  auto d = open({"cache", "catalog.packages"});
  ASSERT_NE(d, nullptr);
  Family cache = d->family("cache"), pkgs = d->family("catalog.packages");
  ASSERT_TRUE(cache.valid());
  ASSERT_TRUE(pkgs.valid());
  EXPECT_FALSE(d->family("nope").valid());
  EXPECT_EQ(d->familyNames(), (std::vector<std::string>{"default", "cache", "catalog.packages"}));
  ASSERT_TRUE(d->put(cache, "k", "in cache").ok());
  ASSERT_TRUE(d->put(pkgs, "k", "in packages").ok());
  EXPECT_EQ(get(*d, cache, "k"), "in cache");
  EXPECT_EQ(get(*d, pkgs, "k"), "in packages");
  ASSERT_TRUE(d->del(cache, "k").ok());
  EXPECT_EQ(get(*d, cache, "k"), "<none>");
  EXPECT_EQ(get(*d, pkgs, "k"), "in packages");
  EXPECT_FALSE(d->put(Family{}, "k", "v").ok());
}

TEST_F(DatabaseTest, BadFamilyNamesAreRefused) {
  EXPECT_EQ(Database::open(path_, {"default"}).error().code, Errc::Invalid);
  EXPECT_EQ(Database::open(path_, {"a", "a"}).error().code, Errc::Invalid);
  EXPECT_EQ(Database::open(path_, {""}).error().code, Errc::Invalid);
}

TEST_F(DatabaseTest, ReopenKeepsFamiliesEvenWhenNotNamed) {
  {
    auto d = open({"cache", "catalog.packages"});
    ASSERT_TRUE(d->put(d->family("catalog.packages"), "pkg", "1.0").ok());
    ASSERT_TRUE(d->put(d->family("cache"), "obj", "meta").ok());
  }
  {
    auto d = open({"cache"});  // an older binary that knows only the cache
    ASSERT_NE(d, nullptr);
    ASSERT_TRUE(d->family("catalog.packages").valid());
    EXPECT_EQ(get(*d, d->family("catalog.packages"), "pkg"), "1.0");
    EXPECT_EQ(get(*d, d->family("cache"), "obj"), "meta");
  }
  auto d = open({"cache", "catalog.devices"});  // and one that adds a family
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->familyNames().size(), 4u);
  EXPECT_EQ(get(*d, d->family("catalog.packages"), "pkg"), "1.0");
}

TEST_F(DatabaseTest, BatchAcrossTwoFamiliesIsAllOrNothing) {
  auto d = open({"cache", "catalog.packages"});
  Family cache = d->family("cache"), pkgs = d->family("catalog.packages");
  ASSERT_TRUE(d->put(cache, "old", "x").ok());
  Batch b;
  b.put(cache, "obj", "meta");
  b.put(pkgs, "pkg", "1.0");
  b.del(cache, "old");
  EXPECT_EQ(b.count(), 3u);
  ASSERT_TRUE(d->write(std::move(b)).ok());
  EXPECT_EQ(get(*d, cache, "obj"), "meta");
  EXPECT_EQ(get(*d, pkgs, "pkg"), "1.0");
  EXPECT_EQ(get(*d, cache, "old"), "<none>");

  // One bad op: nothing of the batch is applied.
  Batch bad;
  bad.put(cache, "obj", "changed");
  bad.put(pkgs, "pkg", "2.0");
  bad.put(Family{99}, "x", "y");
  EXPECT_FALSE(d->write(std::move(bad)).ok());
  EXPECT_EQ(get(*d, cache, "obj"), "meta");
  EXPECT_EQ(get(*d, pkgs, "pkg"), "1.0");
}

TEST_F(DatabaseTest, ForEachIsOrderedAndReadsASnapshot) {
  auto d = open({"cache"});
  Family f = d->family("cache");
  for (const char* k : {"c", "a", "b"}) ASSERT_TRUE(d->put(f, k, std::string("v") + k).ok());
  std::vector<std::string> keys;
  ASSERT_TRUE(d->forEach(f, [&](std::string_view k, std::string_view v) {
    keys.emplace_back(k);
    EXPECT_EQ(v, "v" + std::string(k));
    // Writes during the scan are not seen by it.
    ASSERT_TRUE(d->put(f, "z" + std::string(k), "new").ok());
  }).ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c"}));
  int after = 0;
  ASSERT_TRUE(d->forEach(f, [&](std::string_view, std::string_view) { ++after; }).ok());
  EXPECT_EQ(after, 6);
}

TEST_F(DatabaseTest, RepairBringsBackAGarbledCurrent) {
  {
    auto d = open({"cache", "catalog.packages"});
    ASSERT_TRUE(d->put(d->family("cache"), "k", "v").ok());
    ASSERT_TRUE(d->put(d->family("catalog.packages"), "p", "1").ok());
  }
  int fd = ::open((path_ + "/CURRENT").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "garbage\n", 8), 8);
  ::close(fd);
  EXPECT_FALSE(Database::open(path_, {"cache"}).ok());
  ASSERT_TRUE(repair(path_, {"cache"}).ok());
  auto d = open({"cache"});
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(get(*d, d->family("cache"), "k"), "v");
  EXPECT_EQ(get(*d, d->family("catalog.packages"), "p"), "1");
  EXPECT_EQ(repair(dir_ + "/none", {"cache"}).error().code, Errc::NotFound);
}

TEST_F(DatabaseTest, WriteQueueAppliesInOrderAndDrainsAtDestruction) {
  auto d = open({"cache"});
  Family f = d->family("cache");
  std::atomic<int> failures{0};
  {
    WriteQueue q(*d);
    for (int i = 0; i < 200; ++i) {
      Batch b;
      b.put(f, "k", std::to_string(i));  // the last one posted must win
      q.post(std::move(b));
    }
    Batch bad;
    bad.put(Family{99}, "x", "y");
    q.post(std::move(bad), [&](const Result<void>& r) { failures += r.ok() ? 0 : 1; });
    q.flush();
    EXPECT_EQ(q.applied(), 201u);
    EXPECT_EQ(failures.load(), 1);
    EXPECT_EQ(get(*d, f, "k"), "199");
    Batch sync;
    sync.put(f, "s", "1");
    EXPECT_TRUE(q.write(std::move(sync)).ok());
    EXPECT_EQ(get(*d, f, "s"), "1");
    for (int i = 0; i < 50; ++i) {
      Batch b;
      b.put(f, "late", std::to_string(i));
      q.post(std::move(b));
    }
  }  // the destructor applies the 50 posts before it joins
  EXPECT_EQ(get(*d, f, "late"), "49");
}

}  // namespace
}  // namespace orchard::db

namespace orchard::db {
namespace {

TEST_F(DatabaseTest, ScanFromPagesInKeyOrderAndLastKeyIsTheGreatest) {
  auto d = open({"catalog.audit"});
  Family f = d->family("catalog.audit");
  EXPECT_FALSE(d->lastKey(f).value().has_value());
  Batch b;
  for (const char* k : {"b", "a", "d", "c"}) b.put(f, k, std::string("v") + k);
  ASSERT_TRUE(d->write(std::move(b), /*durable=*/true).ok());
  std::string seen;
  ASSERT_TRUE(d->scanFrom(f, "b", [&](std::string_view k, std::string_view v) {
                  seen += std::string(k) + "=" + std::string(v) + " ";
                  return k != "c";  // stop after c
                }).ok());
  EXPECT_EQ(seen, "b=vb c=vc ");
  EXPECT_EQ(d->lastKey(f).value().value_or(""), "d");
  EXPECT_FALSE(d->scanFrom(Family{}, "", [](std::string_view, std::string_view) { return true; }).ok());
}

}  // namespace
}  // namespace orchard::db
