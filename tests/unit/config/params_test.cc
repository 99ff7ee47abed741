// Tests for config/params.h: the table's own invariants, and the size and
// duration parsers and formatters.
#include "config/params.h"

#include <gtest/gtest.h>

#include <set>

namespace orchard::config {
namespace {

constexpr int64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024, kTiB = kGiB * 1024;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(ParamTable, NamesAreUniqueAndInKnownSectionsInOrder) {
  std::set<std::string_view> names;
  size_t sectionIndex = 0;
  for (const Param& p : params()) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
    ASSERT_NE(p.name.find('.'), std::string_view::npos) << p.name;
    EXPECT_EQ(p.name.find('.'), p.name.rfind('.')) << p.name;
    const Section* s = findSection(p.section());
    ASSERT_NE(s, nullptr) << p.name;
    // Rows are grouped by section, sections in sections() order.
    while (sectionIndex < sections().size() && sections()[sectionIndex].name != p.section()) ++sectionIndex;
    EXPECT_LT(sectionIndex, sections().size()) << p.name << " is out of section order";
    EXPECT_EQ(findParam(p.name), &p);
  }
  EXPECT_EQ(findParam("server.nope"), nullptr);
  EXPECT_EQ(findSection("nope"), nullptr);
  for (const Section& s : sections()) {
    bool any = false;
    for (const Param& p : params()) any = any || p.section() == s.name;
    EXPECT_TRUE(any) << "empty section " << s.name;
  }
}

TEST(ParamTable, RowsAreComplete) {
  for (const Param& p : params()) {
    EXPECT_FALSE(p.doc.empty()) << p.name;
    EXPECT_EQ(p.doc.find('\n'), std::string_view::npos) << p.name;
    EXPECT_FALSE(p.defaultToml.empty()) << p.name;
    EXPECT_NE(p.set, nullptr) << p.name;
    EXPECT_NE(p.same, nullptr) << p.name;
    bool numeric = p.type == ParamType::Size || p.type == ParamType::Duration || p.type == ParamType::Integer;
    if (numeric) {
      EXPECT_LE(p.min, p.max) << p.name;
      EXPECT_GE(p.min, 0) << p.name;
    } else {
      EXPECT_EQ(p.min, 0) << p.name;
      EXPECT_EQ(p.max, 0) << p.name;
    }
    EXPECT_EQ(p.type == ParamType::Choice, !p.choices.empty()) << p.name;
    EXPECT_STRNE(paramTypeName(p.type), "?");
  }
}

TEST(ParamTable, KnownKeysAndBounds) {
  const Param* workers = findParam("server.workers");
  ASSERT_NE(workers, nullptr);
  EXPECT_EQ(workers->min, 0);
  EXPECT_EQ(workers->max, 256);
  EXPECT_FALSE(workers->reloadable);
  const Param* limit = findParam("storage.cache_limit");
  ASSERT_NE(limit, nullptr);
  EXPECT_EQ(limit->type, ParamType::Size);
  EXPECT_EQ(limit->min, kMiB);
  EXPECT_TRUE(limit->reloadable);
  const Param* drain = findParam("server.drain_timeout");
  ASSERT_NE(drain, nullptr);
  EXPECT_EQ(drain->max, 3600 * 1000);
  EXPECT_EQ(std::string_view(findParam("upstream.resolve")->section()), "upstream");
  EXPECT_EQ(std::string_view(findParam("upstream.resolve")->key()), "resolve");
}

TEST(ChangedParams, ReportsExactlyWhatDiffers) {
  Config a = defaults();
  EXPECT_TRUE(changedParams(a, a).empty());
  Config b = a;
  b.cacheLimit = 2 * kMiB;
  b.listen.push_back(*ListenAddress::parse("[::1]:8080"));
  std::vector<const Param*> changed = changedParams(a, b);
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0]->name, "server.listen");
  EXPECT_FALSE(changed[0]->reloadable);
  EXPECT_EQ(changed[1]->name, "storage.cache_limit");
  EXPECT_TRUE(changed[1]->reloadable);
}

TEST(ParseSize, Accepts) {
  struct Case {
    const char* text;
    int64_t bytes;
  } cases[] = {
      {"0", 0},
      {"1", 1},
      {"1048576", kMiB},
      {"0B", 0},
      {"1B", 1},
      {"1KiB", kKiB},
      {"1MiB", kMiB},
      {"200GiB", 200 * kGiB},
      {"200 GiB", 200 * kGiB},
      {"3TiB", 3 * kTiB},
      {"8388607TiB", 8388607 * kTiB},
      {"9223372036854775807", kMax},
      {"9223372036854775807B", kMax},
      {"007KiB", 7 * kKiB},
  };
  for (const Case& c : cases) {
    Result<int64_t> r = parseSize(c.text);
    ASSERT_TRUE(r.ok()) << c.text;
    EXPECT_EQ(*r, c.bytes) << c.text;
  }
}

TEST(ParseSize, Rejects) {
  struct Case {
    const char* text;
    const char* context;  // nullptr: any
  } cases[] = {
      {"", "expected a size like \"200GiB\""},
      {"lots", "expected a size like \"200GiB\""},
      {"-1", "expected a size like \"200GiB\""},
      {"+1", nullptr},
      {"1.5GiB", nullptr},
      {"10GB", "expected a size like \"200GiB\" (units are B, KiB, MiB, GiB, TiB)"},
      {"10KB", nullptr},
      {"10M", nullptr},
      {"10gib", nullptr},
      {"10 gib", nullptr},
      {"GiB", nullptr},
      {" 1GiB", nullptr},
      {"1GiB ", nullptr},
      {"1 2GiB", nullptr},
      {"1PiB", nullptr},
      {"8388608TiB", "size too large"},
      {"9223372036854775808", "size too large"},
      {"99999999999999999999999", "size too large"},
  };
  for (const Case& c : cases) {
    Result<int64_t> r = parseSize(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code, Errc::Invalid);
    if (c.context) {
      EXPECT_STREQ(r.error().context, c.context) << c.text;
    }
  }
}

TEST(ParseDuration, Accepts) {
  struct Case {
    const char* text;
    int64_t ms;
  } cases[] = {
      {"0", 0},          {"30", 30'000},       {"0s", 0},           {"30s", 30'000},
      {"5m", 300'000},   {"500ms", 500},       {"1h", 3'600'000},   {"1h30m", 5'400'000},
      {"1m30s", 90'000}, {"2s500ms", 2'500},   {"90s", 90'000},     {"1h0m0s", 3'600'000},
      {"7d", 604'800'000}, {"1d12h", 129'600'000},
  };
  for (const Case& c : cases) {
    Result<int64_t> r = parseDuration(c.text);
    ASSERT_TRUE(r.ok()) << c.text;
    EXPECT_EQ(*r, c.ms) << c.text;
  }
}

TEST(ParseDuration, Rejects) {
  const char* bad[] = {"",   "s",   "-1s",   "+1s", "1.5s", "1w",  "1m30",  "30 s", " 30s", "30s ",
                       "1hh", "1sm", "10 ", "ms",   "1M",   "1S",  "9223372036854775807s",
                       "99999999999999999999"};
  for (const char* s : bad) {
    Result<int64_t> r = parseDuration(s);
    EXPECT_FALSE(r.ok()) << s;
  }
  EXPECT_STREQ(parseDuration("lots").error().context, "expected a duration like \"30s\" or \"500ms\"");
  EXPECT_STREQ(parseDuration("9223372036854775807s").error().context, "duration too long");
}

TEST(Format, SizesAndDurations) {
  struct SizeCase {
    int64_t bytes;
    const char* text;
  } sizes[] = {{0, "0B"},        {1, "1B"},          {1536, "1536B"},      {kKiB, "1KiB"},
               {kMiB, "1MiB"},   {200 * kGiB, "200GiB"}, {3 * kTiB, "3TiB"}, {kTiB + kGiB, "1025GiB"}};
  for (const SizeCase& c : sizes) {
    EXPECT_EQ(formatSize(c.bytes), c.text);
    EXPECT_EQ(*parseSize(formatSize(c.bytes)), c.bytes);
  }
  struct DurationCase {
    int64_t ms;
    const char* text;
  } durations[] = {{0, "0s"}, {500, "500ms"}, {1500, "1500ms"}, {30'000, "30s"}, {90'000, "90s"},
                   {300'000, "5m"}, {5'400'000, "90m"}, {3'600'000, "1h"}};
  for (const DurationCase& c : durations) {
    EXPECT_EQ(formatDuration(c.ms), c.text);
    EXPECT_EQ(*parseDuration(formatDuration(c.ms)), c.ms);
  }
}

}  // namespace
}  // namespace orchard::config
