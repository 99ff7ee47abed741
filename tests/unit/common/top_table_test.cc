// Tests for common/top_table.h: exact counts while the keys fit, the
// space-saving guarantee past kCapacity keys (every key heavier than
// total/kCapacity stays, and its bytes - error is a lower bound of its
// real count), the index surviving many replacements (checked against a
// model), text cut at kTextMax, and merging several loops' tables.
#include "common/top_table.h"

#include <map>
#include <random>

#include <gtest/gtest.h>

namespace orchard {
namespace {

uint64_t h(int i) { return 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1); }

std::map<std::string, TopTable::Item> byText(const TopTable& t) {
  std::map<std::string, TopTable::Item> out;
  for (auto& it : t.items()) out[it.text] = it;
  return out;
}

TEST(TopTable, ExactWhileTheKeysFit) {
  TopTable t;
  t.add(h(1), "http://a/1", 100);
  t.add(h(2), "http://a/2", 50);
  t.add(h(1), "http://a/1", 100);
  t.add(h(3), "http://a/3", 0);  // a 304 or HEAD: a request, no bytes
  EXPECT_EQ(t.size(), 3u);
  auto m = byText(t);
  EXPECT_EQ(m["http://a/1"].bytes, 200u);
  EXPECT_EQ(m["http://a/1"].requests, 2u);
  EXPECT_EQ(m["http://a/2"].bytes, 50u);
  EXPECT_EQ(m["http://a/3"].requests, 1u);
  auto top = TopTable::merge({t.items()}, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].text, "http://a/1");
  EXPECT_EQ(top[1].text, "http://a/2");
}

TEST(TopTable, HeavyKeysSurviveAStreamOfManyKeys) {
  TopTable t;
  std::mt19937_64 rng(7);
  std::map<int, uint64_t> truth;
  uint64_t total = 0;
  // Five heavy keys among 5,000 light ones, interleaved.
  for (int round = 0; round < 20000; ++round) {
    int key;
    uint64_t bytes;
    if (round % 4 == 0) {
      key = round / 4 % 5;
      bytes = 10000;
    } else {
      key = 100 + static_cast<int>(rng() % 5000);
      bytes = 1 + rng() % 500;
    }
    truth[key] += bytes;
    total += bytes;
    t.add(h(key), "k" + std::to_string(key), bytes);
  }
  EXPECT_EQ(t.size(), TopTable::kCapacity);
  auto m = byText(t);
  for (const auto& [key, real] : truth) {
    auto it = m.find("k" + std::to_string(key));
    if (real > total / TopTable::kCapacity) ASSERT_NE(it, m.end()) << "heavy key " << key << " was dropped";
    if (it != m.end()) EXPECT_LE(it->second.bytes, real) << key;  // a lower bound
  }
  auto top = TopTable::merge({t.items()}, 5);
  ASSERT_EQ(top.size(), 5u);
  for (const auto& it : top) EXPECT_EQ(it.text.substr(0, 1), "k");
  for (const auto& it : top) EXPECT_LT(std::stoi(it.text.substr(1)), 5) << it.text;
}

TEST(TopTable, IndexFindsEveryKeyAfterManyReplacements) {
  // Every key present must be found again (a repeat adds to it, never
  // makes a second entry): checked by adding each live key once more.
  TopTable t;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100000; ++i) {
    const int key = static_cast<int>(rng() % 2000);
    // Hashes that collide in the low bits, to exercise the probe runs.
    const uint64_t hash = (static_cast<uint64_t>(key) << 20) | (key % 7);
    t.add(hash, "k" + std::to_string(key), 1 + rng() % 100);
  }
  auto before = t.items();
  ASSERT_EQ(before.size(), TopTable::kCapacity);
  std::map<uint64_t, int> seen;
  for (const auto& it : before) ++seen[it.hash];
  for (const auto& [hash, n] : seen) EXPECT_EQ(n, 1) << hash;
  for (const auto& it : before) t.add(it.hash, it.text, 1);
  auto after = t.items();
  EXPECT_EQ(after.size(), TopTable::kCapacity);
  std::map<uint64_t, uint64_t> requests;
  for (const auto& it : before) requests[it.hash] = it.requests;
  for (const auto& it : after) EXPECT_EQ(it.requests, requests[it.hash] + 1) << it.text;
}

TEST(TopTable, LongKeysAreCut) {
  TopTable t;
  const std::string longKey = "http://example.com/" + std::string(500, 'x');
  t.add(1, longKey, 5);
  auto items = t.items();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].text, longKey.substr(0, TopTable::kTextMax));
}

TEST(TopTable, MergeSumsLoopsAndOrders) {
  TopTable a, b;
  a.add(1, "one", 10);
  a.add(2, "two", 30);
  b.add(1, "one", 25);
  b.add(3, "three", 30);
  b.add(3, "three", 0);
  auto top = TopTable::merge({a.items(), b.items()}, 10);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].text, "one");  // 35 over the two loops
  EXPECT_EQ(top[0].bytes, 35u);
  EXPECT_EQ(top[0].requests, 2u);
  EXPECT_EQ(top[1].text, "three");  // 30, two requests, before "two" (30, one)
  EXPECT_EQ(top[2].text, "two");
  EXPECT_EQ(TopTable::merge({a.items(), b.items()}, 1).size(), 1u);
  EXPECT_TRUE(TopTable::merge({}, 5).empty());
}

}  // namespace
}  // namespace orchard
