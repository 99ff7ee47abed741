// Tests for common/history.h: the record's key and value encoding (round
// trips, order, refusals), counter deltas across a restart, aggregation of
// minutes into step buckets (sums, the last cache_used, sparse buckets),
// time parsing (Unix seconds and RFC 3339 forms) and the query's defaults
// and refusals, each naming its parameter.
#include "common/history.h"

#include <gtest/gtest.h>

namespace orchard::history {
namespace {

TEST(HistoryEncoding, KeyIsBigEndianMinuteAndSortsByTime) {
  EXPECT_EQ(encodeKey(0x0102030405060708), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(decodeKey(encodeKey(29413440)), 29413440);
  // Byte order is time order (what a scan from a key and a range delete need).
  const int64_t minutes[] = {0, 1, 255, 256, 65535, 65536, 29413440, 29413441, int64_t{1} << 40};
  for (size_t i = 1; i < std::size(minutes); ++i) EXPECT_LT(encodeKey(minutes[i - 1]), encodeKey(minutes[i])) << i;
  EXPECT_EQ(decodeKey("short"), std::nullopt);
  EXPECT_EQ(decodeKey(std::string(9, 'x')), std::nullopt);
}

TEST(HistoryEncoding, ValueRoundTripsAndRefusesOtherLayouts) {
  const Sample s{1, 2, 3, 4, 5};
  const std::string v = encodeValue(s);
  ASSERT_EQ(v.size(), kValueSize);
  EXPECT_EQ(static_cast<uint8_t>(v[0]), kValueVersion);
  EXPECT_EQ(v.substr(1, 8), std::string("\x01\0\0\0\0\0\0\0", 8));  // little-endian fields
  EXPECT_EQ(decodeValue(v), s);
  const Sample big{UINT64_MAX, UINT64_MAX - 1, 1ull << 63, 0, 123456789012345};
  EXPECT_EQ(decodeValue(encodeValue(big)), big);
  EXPECT_EQ(decodeValue(v.substr(0, 40)), std::nullopt);
  EXPECT_EQ(decodeValue(v + "x"), std::nullopt);
  std::string other = v;
  other[0] = 2;
  EXPECT_EQ(decodeValue(other), std::nullopt);
}

TEST(HistoryDelta, CountsGrowthAndRestartsFromZero) {
  EXPECT_EQ(counterDelta(10, 25), 15u);
  EXPECT_EQ(counterDelta(25, 25), 0u);
  EXPECT_EQ(counterDelta(100, 7), 7u);  // went down: a restart, 7 since it
  Sample a{1, 2, 3, 4, 100};
  accumulate(a, Sample{10, 20, 30, 40, 50});
  EXPECT_EQ(a, (Sample{11, 22, 33, 44, 50}));
}

TEST(HistoryAggregate, BucketsSumCountsAndKeepTheLastCacheUsed) {
  // Minute m starts at 60 * m seconds. Step 300: minutes 0..4 are one bucket.
  const std::vector<MinuteSample> minutes = {
      {0, {1, 10, 2, 1, 1000}}, {1, {2, 20, 3, 2, 1100}}, {4, {3, 30, 4, 3, 1200}},
      {5, {4, 40, 5, 4, 1300}}, {12, {5, 50, 6, 5, 900}},
  };
  struct Row {
    int64_t step;
    std::vector<Point> want;
  } rows[] = {
      {60, {{0, {1, 10, 2, 1, 1000}}, {60, {2, 20, 3, 2, 1100}}, {240, {3, 30, 4, 3, 1200}},
            {300, {4, 40, 5, 4, 1300}}, {720, {5, 50, 6, 5, 900}}}},
      {300, {{0, {6, 60, 9, 6, 1200}}, {300, {4, 40, 5, 4, 1300}}, {600, {5, 50, 6, 5, 900}}}},
      {600, {{0, {10, 100, 14, 10, 1300}}, {600, {5, 50, 6, 5, 900}}}},
      {3600, {{0, {15, 150, 20, 15, 900}}}},
  };
  for (const Row& r : rows) EXPECT_EQ(aggregate(minutes, r.step), r.want) << "step " << r.step;
  EXPECT_TRUE(aggregate({}, 60).empty());
  // Buckets are aligned to multiples of the step, not to the first minute.
  EXPECT_EQ(aggregate({{29413443, {1, 1, 1, 1, 1}}}, 3600), (std::vector<Point>{{29413443 / 60 * 3600, {1, 1, 1, 1, 1}}}));
}

TEST(HistoryTime, UnixSecondsAndRfc3339) {
  struct Row {
    const char* text;
    std::optional<int64_t> want;
  } rows[] = {
      {"0", 0},
      {"1764806400", 1764806400},
      {"1970-01-01T00:00:00Z", 0},
      {"2025-12-04T00:00:00Z", 1764806400},
      {"2025-12-04t00:00:00z", 1764806400},
      {"2025-12-04 00:00:00Z", 1764806400},
      {"2025-12-04T01:00:00+01:00", 1764806400},
      {"2025-12-03T19:30:00-04:30", 1764806400},
      {"2025-12-04T00:00:00.999Z", 1764806400},
      {"2024-02-29T12:00:00Z", 1709208000},
      {"2000-03-01T00:00:00Z", 951868800},
      {"", std::nullopt},
      {"-5", std::nullopt},
      {"12x", std::nullopt},
      {"99999999999999999999", std::nullopt},
      {"2025-12-04", std::nullopt},
      {"2025-12-04T00:00:00", std::nullopt},       // no offset
      {"2025-12-04T00:00:00+0100", std::nullopt},  // offset without colon
      {"2025-13-01T00:00:00Z", std::nullopt},
      {"2025-02-29T00:00:00Z", std::nullopt},      // not a leap year
      {"2025-04-31T00:00:00Z", std::nullopt},
      {"2025-12-04T24:00:00Z", std::nullopt},
      {"2025-12-04T00:60:00Z", std::nullopt},
      {"2025-12-04T00:00:00.Z", std::nullopt},
      {"2025-12-04T00:00:00Zjunk", std::nullopt},
      {"yesterday", std::nullopt},
  };
  for (const Row& r : rows) EXPECT_EQ(parseTime(r.text), r.want) << r.text;
}

TEST(HistoryQuery, DefaultsAreTheLastDayUnderMaxPoints) {
  const int64_t now = 1764806400;
  QueryResult q = parseQuery(std::nullopt, std::nullopt, std::nullopt, now);
  ASSERT_TRUE(q.query);
  EXPECT_EQ(q.query->to, now);
  EXPECT_EQ(q.query->from, now - 86400);
  EXPECT_EQ(q.query->step, 60);  // 1440 minutes fit in 1500 points
  EXPECT_EQ(defaultStep(86400), 60);
  EXPECT_EQ(defaultStep(7 * 86400), 420);     // 10080 min / 1500 -> 6.72 -> 7 min
  EXPECT_EQ(defaultStep(30 * 86400), 1740);   // 1728 s rounded up to whole minutes
  EXPECT_EQ(defaultStep(0), 60);
  for (int64_t range : {3600LL, 86400LL, 7 * 86400LL, 30 * 86400LL, 400 * 86400LL})
    EXPECT_LE(range / defaultStep(range), kMaxPoints) << range;
  q = parseQuery(std::string("2025-12-03T00:00:00Z"), std::string("1764806400"), std::string("3600"), now);
  ASSERT_TRUE(q.query);
  EXPECT_EQ(q.query->from, 1764720000);
  EXPECT_EQ(q.query->to, 1764806400);
  EXPECT_EQ(q.query->step, 3600);
  // to alone: from is a day before it.
  q = parseQuery(std::nullopt, std::string("1000000"), std::nullopt, now);
  ASSERT_TRUE(q.query);
  EXPECT_EQ(q.query->from, 1000000 - 86400);
}

TEST(HistoryQuery, RefusalsNameTheParameter) {
  const int64_t now = 1764806400;
  using O = std::optional<std::string>;
  struct Row {
    O from, to, step;
    const char* param;
  } rows[] = {
      {O("soon"), {}, {}, "from"},
      {{}, O("2025-13-01T00:00:00Z"), {}, "to"},
      {O("1764806401"), O("1764806400"), {}, "from"},        // after to
      {O("0"), O("1764806400"), {}, "from"},                 // over 400 days
      {{}, {}, O("30"), "step"},                             // under 60
      {{}, {}, O("90"), "step"},                             // not a multiple of 60
      {{}, {}, O("abc"), "step"},
      {{}, {}, O(""), "step"},
      {{}, {}, O("-60"), "step"},
      {O(std::to_string(now - 390 * 86400)), {}, O("60"), "step"},  // 561,600 buckets
  };
  for (const Row& r : rows) {
    QueryResult q = parseQuery(r.from, r.to, r.step, now);
    EXPECT_FALSE(q.query) << r.param;
    EXPECT_EQ(q.error.param, r.param);
    EXPECT_EQ(q.error.detail.rfind(std::string(r.param) + ": ", 0), 0u) << q.error.detail;
  }
  // The edge: exactly 400 days is allowed.
  EXPECT_TRUE(parseQuery(std::to_string(now - kMaxRange), std::nullopt, std::nullopt, now).query);
}

}  // namespace
}  // namespace orchard::history
