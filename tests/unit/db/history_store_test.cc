// Tests for db/history_store.h over a real database: put and get of a
// minute, range() in time order and bounded at both ends, records that do
// not decode skipped, dropBefore() deleting only older minutes, and the
// records surviving a reopen.
#include "db/history_store.h"

#include <ftw.h>
#include <stdlib.h>

#include <gtest/gtest.h>

namespace orchard::db {
namespace {

int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

class HistoryStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-history-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ::nftw(dir_.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS); }
  std::shared_ptr<Database> open() {
    auto d = Database::open(dir_ + "/db", historyFamilies());
    EXPECT_TRUE(d.ok()) << d.error().message();
    return d ? std::shared_ptr<Database>(std::move(d).value()) : nullptr;
  }
  std::string dir_;
};

std::vector<int64_t> minutesOf(const std::vector<history::MinuteSample>& v) {
  std::vector<int64_t> out;
  for (const auto& m : v) out.push_back(m.minute);
  return out;
}

TEST_F(HistoryStoreTest, PutGetRangeAndRetention) {
  auto db = open();
  ASSERT_TRUE(db);
  HistoryStore store(db);
  for (int64_t m : {1000, 1001, 1003, 256, 70000}) ASSERT_TRUE(store.put(m, history::Sample{uint64_t(m), 0, 1, 1, 5}));
  auto one = store.get(1001);
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(one.value());
  EXPECT_EQ(one.value()->bytesFromCache, 1001u);
  EXPECT_FALSE(store.get(1002).value());
  auto r = store.range(1000, 1003);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(minutesOf(*r), (std::vector<int64_t>{1000, 1001, 1003}));
  EXPECT_EQ(minutesOf(*store.range(0, 100000)), (std::vector<int64_t>{256, 1000, 1001, 1003, 70000}));
  EXPECT_EQ(minutesOf(*store.range(-50, 300)), (std::vector<int64_t>{256}));
  EXPECT_TRUE(store.range(2000, 1000)->empty());
  // A record of another layout (a later version) is skipped, not an error.
  ASSERT_TRUE(db->put(db->family(kHistoryFamily), history::encodeKey(1002), "junk"));
  EXPECT_EQ(minutesOf(*store.range(1000, 1003)), (std::vector<int64_t>{1000, 1001, 1003}));
  ASSERT_TRUE(store.dropBefore(1001));
  EXPECT_EQ(minutesOf(*store.range(0, 100000)), (std::vector<int64_t>{1001, 1003, 70000}));
}

TEST_F(HistoryStoreTest, SurvivesAReopen) {
  {
    auto db = open();
    HistoryStore store(db);
    ASSERT_TRUE(store.put(42, history::Sample{1, 2, 3, 4, 5}));
  }
  auto db = open();
  HistoryStore store(db);
  auto s = store.get(42);
  ASSERT_TRUE(s.ok() && s.value());
  EXPECT_EQ(*s.value(), (history::Sample{1, 2, 3, 4, 5}));
}

}  // namespace
}  // namespace orchard::db
