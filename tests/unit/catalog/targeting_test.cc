// Tests for catalog/targeting: the issue's targeting table (128.0 for
// finance on macOS 14+ arm64 stable, 129.0 on beta, four Macs), a row for
// every reason checkRule can give with its helpdesk detail, the order of
// the checks when several fail, the RFC 3339 reader and writer by table,
// and the rule's JSON form (round trip and each refusal naming its key).
// The hard part is the calendar: leap days, offsets that cross a day, and
// the bounds of every field must all be pinned by rows, not by one date.
#include "catalog/targeting.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/unit/catalog/device_fixture.h"

namespace orchard::catalog {
namespace {

TargetRule rule(const char* json) {
  auto r = ruleFromJson(nlohmann::json::parse(json));
  if (auto* p = std::get_if<std::string>(&r)) ADD_FAILURE() << *p;
  return std::get<TargetRule>(r);
}

Device mac(std::vector<std::string> groups, std::string os, std::string arch = "arm64", std::string channel = "stable",
           std::string model = "Mac14,2") {
  Device d = fixture::sampleDevice();
  d.groups = std::move(groups);
  d.osVersion = std::move(os);
  d.arch = std::move(arch);
  d.channel = std::move(channel);
  d.model = std::move(model);
  return d;
}

// ---- the issue's table ----------------------------------------------------

struct TableCase {
  const char* name;
  Device device;
  std::optional<WhyNot> for128;  // nullopt: eligible
  std::optional<WhyNot> for129;
};

void PrintTo(const TableCase& c, std::ostream* os) { *os << c.name; }

class IssueTableTest : public ::testing::TestWithParam<TableCase> {};

TEST_P(IssueTableTest, Eligibility) {
  const TargetRule v128 = rule(R"({"groups":["finance"],"min_os":"14","arch":["arm64"],"channels":["stable"]})");
  const TargetRule v129 = rule(R"({"channels":["beta"]})");
  const TableCase& c = GetParam();
  const auto a = checkRule(v128, c.device), b = checkRule(v129, c.device);
  EXPECT_EQ(a ? std::optional(a->first) : std::nullopt, c.for128) << (a ? a->second : "eligible");
  EXPECT_EQ(b ? std::optional(b->first) : std::nullopt, c.for129) << (b ? b->second : "eligible");
  if (a) {
    EXPECT_FALSE(a->second.empty());
  }
  if (b) {
    EXPECT_FALSE(b->second.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Issue11, IssueTableTest,
    ::testing::Values(TableCase{"finance_arm64_14_5_stable", mac({"finance"}, "14.5"), std::nullopt, WhyNot::Channel},
                      TableCase{"sales", mac({"sales"}, "14.5"), WhyNot::NotInGroup, WhyNot::Channel},
                      TableCase{"finance_on_13_6", mac({"finance"}, "13.6"), WhyNot::OsTooOld, WhyNot::Channel},
                      TableCase{"finance_on_beta", mac({"finance"}, "14.5", "arm64", "beta"), WhyNot::Channel,
                                std::nullopt}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- every reason, with its detail ----------------------------------------

struct WhyCase {
  const char* name;
  const char* rule;
  Device device;
  std::optional<WhyNot> want;
  const char* detail;  // exact
};

void PrintTo(const WhyCase& c, std::ostream* os) { *os << c.name; }

class CheckRuleTest : public ::testing::TestWithParam<WhyCase> {};

TEST_P(CheckRuleTest, Reason) {
  const WhyCase& c = GetParam();
  const auto got = checkRule(rule(c.rule), c.device);
  if (!c.want) {
    EXPECT_FALSE(got) << got->second;
    return;
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first, *c.want) << whyNotCode(got->first);
  EXPECT_EQ(got->second, c.detail);
}

INSTANTIATE_TEST_SUITE_P(
    Table, CheckRuleTest,
    ::testing::Values(
        WhyCase{"unrestricted", "{}", mac({}, ""), std::nullopt, ""},
        WhyCase{"channel", R"({"channels":["beta"]})", mac({}, "14.5"), WhyNot::Channel,
                "offered on channel beta; this Mac follows stable"},
        WhyCase{"channels", R"({"channels":["beta","dev"]})", mac({}, "14.5"), WhyNot::Channel,
                "offered on channels beta, dev; this Mac follows stable"},
        WhyCase{"excluded", R"({"exclude_groups":["kiosk"]})", mac({"it", "kiosk"}, "14.5"), WhyNot::ExcludedGroup,
                "not for group kiosk; this Mac is in kiosk"},
        WhyCase{"excluded_beats_member", R"({"groups":["it"],"exclude_groups":["kiosk"]})", mac({"it", "kiosk"}, "14.5"),
                WhyNot::ExcludedGroup, "not for group kiosk; this Mac is in kiosk"},
        WhyCase{"member_of_one", R"({"groups":["finance","it"]})", mac({"sales", "it"}, "14.5"), std::nullopt, ""},
        WhyCase{"not_in_group", R"({"groups":["finance"]})", mac({"sales"}, "14.5"), WhyNot::NotInGroup,
                "for group finance only; this Mac is in sales"},
        WhyCase{"in_no_group", R"({"groups":["finance","hr"]})", mac({}, "14.5"), WhyNot::NotInGroup,
                "for groups finance, hr only; this Mac is in no group"},
        WhyCase{"many_groups_shortened", R"({"groups":["finance"]})", mac({"a", "b", "c", "d", "e", "f", "g"}, "14.5"),
                WhyNot::NotInGroup, "for group finance only; this Mac is in a, b, c, d, e and 2 more"},
        WhyCase{"arch", R"({"arch":["arm64"]})", mac({}, "14.5", "x86_64"), WhyNot::Arch,
                "built for arm64; this Mac is x86_64"},
        WhyCase{"arch_unknown", R"({"arch":["arm64"]})", mac({}, "14.5", ""), WhyNot::Arch,
                "built for arm64; this Mac's architecture is not known"},
        WhyCase{"arch_either", R"({"arch":["arm64","x86_64"]})", mac({}, "14.5", "x86_64"), std::nullopt, ""},
        WhyCase{"model", R"({"models":["Mac15,3"]})", mac({}, "14.5"), WhyNot::Model,
                "for model Mac15,3; this Mac is a Mac14,2"},
        WhyCase{"model_unknown", R"({"models":["Mac15,3","Mac15,6"]})", mac({}, "14.5", "arm64", "stable", ""),
                WhyNot::Model, "for models Mac15,3, Mac15,6; this Mac's model is not known"},
        WhyCase{"os_too_old", R"({"min_os":"14.0"})", mac({}, "13.6"), WhyNot::OsTooOld,
                "needs macOS 14.0 or later; this Mac runs 13.6"},
        WhyCase{"os_min_inclusive", R"({"min_os":"14.0"})", mac({}, "14"), std::nullopt, ""},
        WhyCase{"os_numeric_not_text", R"({"min_os":"9.0"})", mac({}, "10.15.7"), std::nullopt, ""},
        WhyCase{"os_unknown_too_old", R"({"min_os":"14.0"})", mac({}, ""), WhyNot::OsTooOld,
                "needs macOS 14.0 or later; this Mac's macOS version is not known"},
        WhyCase{"os_too_new", R"({"max_os":"15.99"})", mac({}, "26.1"), WhyNot::OsTooNew,
                "needs macOS 15.99 or earlier; this Mac runs 26.1"},
        WhyCase{"os_max_inclusive", R"({"max_os":"15.99"})", mac({}, "15.99.0"), std::nullopt, ""},
        WhyCase{"os_unknown_too_new", R"({"max_os":"15"})", mac({}, ""), WhyNot::OsTooNew,
                "needs macOS 15 or earlier; this Mac's macOS version is not known"},
        // The order: every check fails here; each row removes the first failure.
        WhyCase{"order_channel_first", R"({"channels":["beta"],"exclude_groups":["x"],"groups":["y"],"arch":["x86_64"],
                  "models":["M"],"min_os":"26"})",
                mac({"x"}, "14.5"), WhyNot::Channel, "offered on channel beta; this Mac follows stable"},
        WhyCase{"order_excluded_second", R"({"exclude_groups":["x"],"groups":["y"],"arch":["x86_64"],"models":["M"],
                  "min_os":"26"})",
                mac({"x"}, "14.5"), WhyNot::ExcludedGroup, "not for group x; this Mac is in x"},
        WhyCase{"order_group_third", R"({"groups":["y"],"arch":["x86_64"],"models":["M"],"min_os":"26"})",
                mac({"x"}, "14.5"), WhyNot::NotInGroup, "for group y only; this Mac is in x"},
        WhyCase{"order_arch_fourth", R"({"arch":["x86_64"],"models":["M"],"min_os":"26"})", mac({"x"}, "14.5"),
                WhyNot::Arch, "built for x86_64; this Mac is arm64"},
        WhyCase{"order_model_fifth", R"({"models":["M"],"min_os":"26"})", mac({"x"}, "14.5"), WhyNot::Model,
                "for model M; this Mac is a Mac14,2"},
        WhyCase{"rollout_not_checked", R"({"rollout_percent":0,"install":"required"})", mac({}, "14.5"), std::nullopt,
                ""}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(WhyNotCode, EveryCode) {
  const std::pair<WhyNot, const char*> codes[] = {
      {WhyNot::NotInGroup, "not_in_group"}, {WhyNot::ExcludedGroup, "excluded_group"},
      {WhyNot::OsTooOld, "os_too_old"},     {WhyNot::OsTooNew, "os_too_new"},
      {WhyNot::Arch, "arch"},               {WhyNot::Model, "model"},
      {WhyNot::Channel, "channel"},         {WhyNot::NotYetInRing, "not_yet_in_ring"},
      {WhyNot::Halted, "halted"},           {WhyNot::Paused, "paused"},
      {WhyNot::NoVersion, "no_version"}};
  for (const auto& [w, code] : codes) EXPECT_STREQ(whyNotCode(w), code);
}

// ---- RFC 3339 -------------------------------------------------------------

struct TimeCase {
  const char* text;
  std::optional<int64_t> unix;
};

void PrintTo(const TimeCase& c, std::ostream* os) { *os << '"' << c.text << '"'; }

class Rfc3339Test : public ::testing::TestWithParam<TimeCase> {};

TEST_P(Rfc3339Test, Parse) { EXPECT_EQ(parseRfc3339(GetParam().text), GetParam().unix); }

INSTANTIATE_TEST_SUITE_P(
    Table, Rfc3339Test,
    ::testing::Values(
        TimeCase{"1970-01-01T00:00:00Z", 0}, TimeCase{"2026-05-01T09:00:00Z", 1777626000},
        TimeCase{"2000-02-29T12:00:00Z", 951825600},            // divisible by 400: leap
        TimeCase{"2024-02-29T00:00:00Z", 1709164800},           // leap
        TimeCase{"1969-12-31T23:59:59Z", -1},                   // before the epoch
        TimeCase{"0000-01-01T00:00:00Z", -62167219200},         // the first year
        TimeCase{"9999-12-31T23:59:59Z", 253402300799},         // the last
        TimeCase{"2026-05-01T11:00:00+02:00", 1777626000},      // offsets
        TimeCase{"2026-05-01T04:30:00-04:30", 1777626000},
        TimeCase{"2026-05-01T09:00:00-00:00", 1777626000},      // unknown local offset
        TimeCase{"2026-05-02T00:30:00+15:30", 1777626000},      // crosses the day
        TimeCase{"2026-05-01T09:00:00.999Z", 1777626000},       // fraction truncated
        TimeCase{"1969-12-31T23:59:59.5Z", -1},                 // toward the past
        TimeCase{"2026-05-01t09:00:00z", 1777626000},           // lower case allowed
        TimeCase{"2016-12-31T23:59:60Z", 1483228800},           // leap second
        TimeCase{"1900-02-29T00:00:00Z", std::nullopt},         // divisible by 100: not leap
        TimeCase{"2025-02-29T00:00:00Z", std::nullopt}, TimeCase{"2026-04-31T00:00:00Z", std::nullopt},
        TimeCase{"2026-13-01T00:00:00Z", std::nullopt}, TimeCase{"2026-00-01T00:00:00Z", std::nullopt},
        TimeCase{"2026-01-00T00:00:00Z", std::nullopt}, TimeCase{"2026-01-01T24:00:00Z", std::nullopt},
        TimeCase{"2026-01-01T00:60:00Z", std::nullopt}, TimeCase{"2026-01-01T00:00:61Z", std::nullopt},
        TimeCase{"2026-01-01T00:00:00+24:00", std::nullopt}, TimeCase{"2026-01-01T00:00:00+01:60", std::nullopt},
        TimeCase{"2026-01-01T00:00:00+0100", std::nullopt}, TimeCase{"2026-01-01T00:00:00+01", std::nullopt},
        TimeCase{"2026-01-01T00:00:00", std::nullopt},       // no offset
        TimeCase{"2026-01-01 00:00:00Z", std::nullopt},      // space for T
        TimeCase{"2026-01-01T00:00Z", std::nullopt},         // no seconds
        TimeCase{"2026-01-01T00:00:00.Z", std::nullopt},     // empty fraction
        TimeCase{"2026-1-01T00:00:00Z", std::nullopt},       // widths are fixed
        TimeCase{"+2026-01-01T00:00:00Z", std::nullopt}, TimeCase{"2026-01-01T00:00:00ZZ", std::nullopt},
        TimeCase{"2026-01-01T00:00:00Z ", std::nullopt}, TimeCase{"2026-01-01", std::nullopt},
        TimeCase{"", std::nullopt}));

TEST(Rfc3339, FormatRoundTrips) {
  for (int64_t t : {int64_t{0}, int64_t{-1}, int64_t{951825600}, int64_t{1777626000}, int64_t{-62167219200},
                    int64_t{253402300799}, int64_t{4107542399}}) {
    const auto s = formatRfc3339(t);
    ASSERT_TRUE(s) << t;
    EXPECT_EQ(parseRfc3339(*s), t) << *s;
  }
  EXPECT_EQ(formatRfc3339(1777626000), "2026-05-01T09:00:00Z");
  EXPECT_EQ(formatRfc3339(951825600), "2000-02-29T12:00:00Z");
  EXPECT_EQ(formatRfc3339(-62167219201), std::nullopt);
  EXPECT_EQ(formatRfc3339(253402300800), std::nullopt);
  // Every day of a leap and a common year, both ways.
  for (int64_t day = 0; day < 731; ++day) {
    const int64_t t = 1704067200 + day * 86400 + 3723;  // from 2024-01-01, at 01:02:03
    const auto s = formatRfc3339(t);
    ASSERT_TRUE(s);
    EXPECT_EQ(parseRfc3339(*s), t) << *s;
  }
}

// ---- the rule's JSON ------------------------------------------------------

TEST(RuleJson, RoundTrip) {
  const char* body = R"({"channels":["stable"],"groups":["finance"],"exclude_groups":["kiosk"],"min_os":"14.0",
    "max_os":"15.99","arch":["arm64"],"models":["Mac14,2"],"rollout_percent":25.5,"install":"required",
    "deadline":"2026-05-01T11:00:00+02:00"})";
  const TargetRule r = rule(body);
  EXPECT_EQ(r.deadline, 1777626000);
  EXPECT_EQ(r.rolloutPercent, 25.5);
  nlohmann::json j;
  toJson(j, r);
  EXPECT_EQ(j["deadline"], "2026-05-01T09:00:00Z");
  EXPECT_EQ(j["arch"], nlohmann::json::array({"arm64"}));
  EXPECT_EQ(rule(j.dump().c_str()), r);
}

TEST(RuleJson, EmptyIsUnrestricted) {
  const TargetRule r = rule(R"({"groups":null})");
  EXPECT_EQ(r, TargetRule{});
  nlohmann::json j;
  toJson(j, r);
  EXPECT_EQ(j, nlohmann::json({{"install", "optional"}}));
}

struct BadRule {
  const char* body;
  const char* problemPrefix;
};

void PrintTo(const BadRule& c, std::ostream* os) { *os << c.body; }

class RuleRefusedTest : public ::testing::TestWithParam<BadRule> {};

TEST_P(RuleRefusedTest, NamesTheKey) {
  const auto r = ruleFromJson(nlohmann::json::parse(GetParam().body));
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_EQ(std::get<std::string>(r).rfind(GetParam().problemPrefix, 0), 0u) << std::get<std::string>(r);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RuleRefusedTest,
    ::testing::Values(BadRule{"[]", "targeting: "}, BadRule{R"({"colour":1})", "colour: unknown targeting field"},
                      BadRule{R"({"groups":"finance"})", "groups: must be an array"},
                      BadRule{R"({"groups":[""]})", "groups: an item is empty"},
                      BadRule{R"({"groups":["a","a"]})", "groups: repeats a"},
                      BadRule{R"({"exclude_groups":[1]})", "exclude_groups: "},
                      BadRule{R"({"channels":["be\nta"]})", "channels: "},
                      BadRule{R"({"models":[null]})", "models: "},
                      BadRule{R"({"arch":["ppc"]})", "arch: ppc is not arm64 or x86_64"},
                      BadRule{R"({"arch":"arm64"})", "arch: must be an array"},
                      BadRule{R"({"min_os":"14.x"})", "min_os: "}, BadRule{R"({"max_os":14})", "max_os: "},
                      BadRule{R"({"min_os":""})", "min_os: is empty"},
                      BadRule{R"({"min_os":"15","max_os":"14.9"})", "min_os: 15 is above max_os 14.9"},
                      BadRule{R"({"rollout_percent":101})", "rollout_percent: "},
                      BadRule{R"({"rollout_percent":-1})", "rollout_percent: "},
                      BadRule{R"({"rollout_percent":"50"})", "rollout_percent: "},
                      BadRule{R"({"rollout_percent":true})", "rollout_percent: "},
                      BadRule{R"({"install":"forced"})", "install: "},
                      BadRule{R"({"deadline":"2026-05-01"})", "deadline: is not an RFC 3339"},
                      BadRule{R"({"deadline":1777626000})", "deadline: must be an RFC 3339 string"}));

}  // namespace
}  // namespace orchard::catalog
