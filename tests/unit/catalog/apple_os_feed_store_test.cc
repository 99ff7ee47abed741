// Tests for catalog/apple/os_feed_store.h over a real database: nothing
// stored at first, a saved copy read back verbatim (after a reopen too), a
// later save replacing it, and records that are unreadable or half there
// reported as Corrupt rather than served.
#include "catalog/apple/os_feed_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace orchard::catalog::apple {
namespace {

class OsFeedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-osfeed-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::shared_ptr<db::Database> open() {
    auto d = db::Database::open(dir_ + "/db", osFeedFamilies());
    EXPECT_TRUE(d.ok()) << d.error().message();
    return d ? std::shared_ptr<db::Database>(std::move(d).value()) : nullptr;
  }
  std::string dir_;
};

TEST_F(OsFeedStoreTest, SavesLoadsAndSurvivesAReopen) {
  const StoredOsFeed first{R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.1"}]}})", 1'732'000'000,
                           "https://gdmf.apple.com/v2/pmv"};
  const StoredOsFeed second{R"({"AssetSets": {"macOS": [{"ProductVersion": "15.2"}]}})", 1'733'000'000,
                            "https://mirror.example/pmv"};
  {
    auto db = open();
    ASSERT_TRUE(db);
    OsFeedStore store(db);
    auto none = store.load();
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none.value());
    ASSERT_TRUE(store.save(first));
    auto got = store.load();
    ASSERT_TRUE(got.ok());
    ASSERT_TRUE(got.value());
    EXPECT_EQ(*got.value(), first);
    ASSERT_TRUE(store.save(second));
  }
  auto db = open();
  ASSERT_TRUE(db);
  OsFeedStore store(db);
  auto got = store.load();
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got.value());
  EXPECT_EQ(*got.value(), second);
}

TEST_F(OsFeedStoreTest, UnreadableRecordsAreCorrupt) {
  auto db = open();
  ASSERT_TRUE(db);
  OsFeedStore store(db);
  const db::Family f = db->family(kOsFeedFamily);
  ASSERT_TRUE(db->put(f, "raw", "{}"));
  auto half = store.load();
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.error().code, Errc::Corrupt);
  for (const char* meta : {"not json", R"({"fetched_at": "yesterday", "source": "x"})", R"({"fetched_at": 1})", "[]"}) {
    SCOPED_TRACE(meta);
    ASSERT_TRUE(db->put(f, "meta", meta));
    auto bad = store.load();
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, Errc::Corrupt);
  }
}

}  // namespace
}  // namespace orchard::catalog::apple
