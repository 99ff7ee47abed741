// Tests for catalog/version: a table of pairs covering every rule in
// version.h (numeric runs by value and of any length, trailing zeros,
// pre-release words and their order, case, separators, build metadata),
// each checked both ways round; then the order's laws over a shuffled
// list: sorting recovers the expected order, the comparison is transitive
// over every triple, and versionLess never finds two distinct strings
// equivalent. The hard part is the transitivity check: it has to run over
// values that mix all run kinds at the same position, or it proves little.
#include "catalog/version.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace orchard::catalog {
namespace {

struct PairCase {
  const char* a;
  const char* b;
  int want;  // sign of compareVersions(a, b)
};

void PrintTo(const PairCase& c, std::ostream* os) { *os << '"' << c.a << "\" vs \"" << c.b << '"'; }

class CompareVersionsTest : public ::testing::TestWithParam<PairCase> {};

TEST_P(CompareVersionsTest, BothWaysRound) {
  const PairCase& c = GetParam();
  EXPECT_EQ(compareVersions(c.a, c.b), c.want);
  EXPECT_EQ(compareVersions(c.b, c.a), -c.want);
  EXPECT_EQ(compareVersions(c.a, c.a), 0);
  if (c.want != 0) {
    EXPECT_EQ(versionLess(c.a, c.b), c.want < 0);
    EXPECT_EQ(versionLess(c.b, c.a), c.want > 0);
  } else if (std::string_view(c.a) != c.b) {
    // Equal by rule, distinct strings: the raw bytes decide, one way only.
    EXPECT_NE(versionLess(c.a, c.b), versionLess(c.b, c.a));
    EXPECT_EQ(versionLess(c.a, c.b), std::string_view(c.a) < c.b);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Pairs, CompareVersionsTest,
    ::testing::Values(
        // Numbers by value.
        PairCase{"1.10", "1.9", 1}, PairCase{"1.2", "1.10", -1}, PairCase{"10.0", "9.99", 1},
        PairCase{"128.0.6613.120", "128.0.6613.99", 1}, PairCase{"128.0.6613.120", "128.0.6613.120", 0},
        PairCase{"1.01", "1.1", 0}, PairCase{"1.007", "1.7", 0}, PairCase{"0.0", "0", 0},
        PairCase{"2", "10", -1},
        // Beyond any integer type.
        PairCase{"1.99999999999999999999999", "1.100000000000000000000000", -1},
        PairCase{"18446744073709551616", "18446744073709551615", 1},
        PairCase{"000000000000000000000000000001", "1", 0},
        // Trailing zeros and extra components.
        PairCase{"128.0.1", "128.0", 1}, PairCase{"1.0", "1.0.0", 0}, PairCase{"1", "1.0.0.0", 0},
        PairCase{"1.0.0.1", "1.0", 1}, PairCase{"16.89", "16.89.24090815", -1},
        // Pre-releases sort before the release.
        PairCase{"2.0b3", "2.0", -1}, PairCase{"2.0-rc1", "2.0", -1}, PairCase{"2.0a1", "2.0b1", -1},
        PairCase{"2.0b1", "2.0rc1", -1}, PairCase{"2.0rc1", "2.0", -1}, PairCase{"2.0a1", "2.0rc1", -1},
        PairCase{"2.0b3", "2.0.1", -1}, PairCase{"2.0b3", "2.0.0", -1}, PairCase{"1.0.0b1", "1.0", -1},
        PairCase{"2.0b3", "1.9", 1}, PairCase{"2.0rc10", "2.0rc9", 1}, PairCase{"2.0b", "2.0b1", -1},
        PairCase{"2.0 Beta 2", "2.0b2", 0}, PairCase{"1.2.3-beta", "1.2.3", -1},
        // Known words, spellings and case.
        PairCase{"2.0alpha1", "2.0a1", 0}, PairCase{"2.0beta1", "2.0b1", 0}, PairCase{"2.0pre1", "2.0preview1", 0},
        PairCase{"2.0alpha9", "2.0beta1", -1}, PairCase{"2.0beta9", "2.0pre1", -1}, PairCase{"2.0preview9", "2.0rc1", -1},
        PairCase{"2.0RC1", "2.0rc1", 0}, PairCase{"2.0Beta2", "2.0b2", 0}, PairCase{"2.0ALPHA", "2.0a", 0},
        PairCase{"2.0dev1", "2.0b9", 1}, PairCase{"2.0dev1", "2.0pre1", -1},
        // Other words, case-insensitively.
        PairCase{"1.0x", "1.0Y", -1}, PairCase{"1.0abc", "1.0ABC", 0}, PairCase{"1.0ab", "1.0alpha", -1},
        // Separators are interchangeable.
        PairCase{"1-2_3~4 5", "1.2.3.4.5", 0}, PairCase{"1..2", "1.2", 0}, PairCase{"(1.2)", "1.2", 0},
        PairCase{"16.89 (24090815)", "16.89.24090815", 0},
        // Build metadata is ignored; a leading v too.
        PairCase{"1.2.3+45", "1.2.3", 0}, PairCase{"1.2.3-beta+45", "1.2.3-beta+46", 0},
        PairCase{"1.2.3+45", "1.2.4", -1}, PairCase{"1.0+build.9", "1.0.0", 0}, PairCase{"1.2.3-beta+45", "1.2.3", -1},
        PairCase{"v2.1", "2.1", 0}, PairCase{"V2.1", "2.0", 1},
        // Odd inputs.
        PairCase{"", "", 0}, PairCase{"", "0", 0}, PairCase{"", "1", -1}, PairCase{"...", "", 0},
        PairCase{"beta", "1", -1}, PairCase{"caf\xC3\xA9", "cafe", 1}));

// The expected order, oldest first; adjacent entries are strictly ordered
// by rule except where the comment says otherwise.
const std::vector<std::string> kOrdered = {
    "",            "0.9",        "1.0a1",   "1.0b1",        "1.0rc1",      "1.0",         "1.0.1",
    "1.9",         "1.10",       "2.0a1",   "2.0alpha2",    "2.0b1",       "2.0beta2",    "2.0dev",
    "2.0pre1",     "2.0rc1",     "2.0rc2",  "2.0rc10",      "2.0",         "2.0.0.1",     "2.0.1b1",
    "2.0.1",       "10.0",       "128.0",   "128.0.1",      "128.0.6613.99", "128.0.6613.120", "99999999999999999999",
    "100000000000000000000",
};

TEST(VersionOrderTest, SortingAShuffledListRecoversTheOrder) {
  std::vector<std::string> v = kOrdered;
  std::mt19937 rng(20240611);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(v.begin(), v.end(), rng);
    std::sort(v.begin(), v.end(), [](const std::string& a, const std::string& b) { return versionLess(a, b); });
    EXPECT_EQ(v, kOrdered);
  }
}

TEST(VersionOrderTest, TransitiveOverEveryTriple) {
  std::vector<std::string> v = kOrdered;
  // Add values equal by rule to others and mixed run kinds at one position.
  for (const char* extra : {"1", "1.0.0", "1.00", "2.0.0", "2.0+9", "2.0B1", "2.0ALPHA2", "v2.0", "2.0x", "2.0.x",
                            "2.x", "2-0-1", "beta", "rc", "0", "0.0.0a"})
    v.push_back(extra);
  std::mt19937 rng(7);
  std::shuffle(v.begin(), v.end(), rng);
  for (const auto& a : v)
    for (const auto& b : v) {
      const int ab = compareVersions(a, b);
      ASSERT_EQ(ab, -compareVersions(b, a)) << a << " vs " << b;
      ASSERT_EQ(versionLess(a, b) || versionLess(b, a), a != b) << a << " vs " << b;
      for (const auto& c : v) {
        const int bc = compareVersions(b, c), ac = compareVersions(a, c);
        const std::string triple = a + " | " + b + " | " + c;
        EXPECT_TRUE(!(ab <= 0 && bc <= 0) || ac <= 0) << triple;
        EXPECT_TRUE(!(ab == 0 && bc == 0) || ac == 0) << triple;
        EXPECT_TRUE(!(versionLess(a, b) && versionLess(b, c)) || versionLess(a, c)) << triple;
      }
    }
}

}  // namespace
}  // namespace orchard::catalog
