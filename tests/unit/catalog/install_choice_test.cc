// Tests for catalog/rollout, part 2: chooseVersion, the installs answer for
// one device. The done-when over a simulated fleet of 10,000 Macs
// (rings canary = group it -> early 20 % -> broad 100 %, promotion after 2
// days): the counts on days 0, 2 and 4, the staged share, no device losing
// the new version as its rollout advances; pause on day 1 and resume on day
// 3; rollback handing 1.0 back with downgrade_needed for exactly the devices
// that may have 2.0; halt; pins; the one-ring case; and the why of an empty
// answer as a table (the targeting table of the issue, with the rule
// verdicts given as checkRule would give them). The hard part is counting
// what the ring rule implies independently of the code under test: the
// expected sets are computed from group membership and stageBucket alone.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "catalog/rollout.h"
#include "tests/unit/catalog/rollout_fixture.h"

namespace orchard::catalog {
namespace {

using K = RolloutEventKind;
constexpr std::string_view kPkg = "Firefox";

bool isIt(const Device& d) { return !d.groups.empty() && d.groups[0] == "it"; }
bool early(const Device& d) { return stageBucket(d.serial, kPkg) < 2000; }

VersionCandidate version(std::string v, std::vector<RolloutEvent> events, bool isPkg = true) {
  VersionCandidate c;
  c.version = std::move(v);
  c.events = std::move(events);
  c.isPkg = isPkg;
  return c;
}
RolloutEvent at(double days, K k, std::string reason = {}) {
  return {kT0 + static_cast<int64_t>(days * kDay), k, std::move(reason)};
}

// 1.0 released long ago (at broad by now), 2.0 published at kT0.
std::vector<VersionCandidate> twoVersions(std::vector<RolloutEvent> newer) {
  return {version("1.0", {at(-30, K::Start)}), version("2.0", std::move(newer))};
}

// How many of the fleet get `want` on `day`.
size_t count(const std::vector<VersionCandidate>& vs, double day, const std::string& want,
             const std::optional<Pin>& pin = std::nullopt) {
  size_t n = 0;
  for (const auto& d : fleet()) {
    InstallChoice c = chooseVersion(d, kPkg, vs, threeRings(), pin,
                                    kT0 + static_cast<int64_t>(day * kDay), 2 * kDay);
    if (c.version == want) ++n;
  }
  return n;
}

// A device outside every ring but the last, offered only `v` on `day`,
// gets nothing with this code and a detail containing `detailPart`.
void expectNothing(const VersionCandidate& v, double day, const char* code, const char* detailPart) {
  Device late = deviceWithBucket(kPkg, 2000, 9999, {});
  auto c = chooseVersion(late, kPkg, std::vector<VersionCandidate>{v}, threeRings(), std::nullopt,
                         kT0 + static_cast<int64_t>(day * kDay), 2 * kDay);
  EXPECT_FALSE(c.version.has_value());
  EXPECT_EQ(c.whyCode, code);
  EXPECT_NE(c.whyDetail.find(detailPart), std::string::npos) << c.whyDetail;
}

TEST(InstallChoice, FleetSeesTheRingCountsOnDays0_2_4) {
  const auto vs = twoVersions({at(0, K::Start)});
  size_t it = 0, rest = 0, restEarly = 0;
  for (const auto& d : fleet()) {
    if (isIt(d)) {
      ++it;
      continue;
    }
    ++rest;
    if (early(d)) ++restEarly;
  }
  ASSERT_EQ(it, 500u);
  EXPECT_NEAR(100.0 * static_cast<double>(restEarly) / static_cast<double>(rest), 20.0, 1.5);
  EXPECT_EQ(count(vs, 0, "2.0"), it);
  EXPECT_EQ(count(vs, 1.99, "2.0"), it);
  EXPECT_EQ(count(vs, 2, "2.0"), it + restEarly);
  EXPECT_EQ(count(vs, 3.99, "2.0"), it + restEarly);
  EXPECT_EQ(count(vs, 4, "2.0"), fleet().size());
  // Everyone else keeps 1.0 meanwhile: nobody is left with nothing.
  EXPECT_EQ(count(vs, 2, "1.0"), fleet().size() - it - restEarly);
}

TEST(InstallChoice, NoDeviceLosesTheNewVersionAsTheRolloutAdvances) {
  const auto vs = twoVersions({at(0, K::Start)});
  for (const auto& d : fleet()) {
    bool had = false;
    for (double day : {0.0, 2.0, 4.0, 9.0}) {
      auto c = chooseVersion(d, kPkg, vs, threeRings(), std::nullopt,
                             kT0 + static_cast<int64_t>(day * kDay), 2 * kDay);
      bool has = c.version == "2.0";
      ASSERT_TRUE(has || !had) << d.serial << " day " << day;
      if (has) {
        EXPECT_EQ(c.whyCode, "ring");
        EXPECT_EQ(c.ring, day < 2 ? "canary" : day < 4 ? "early" : "broad");
      }
      had = has;
    }
  }
}

TEST(InstallChoice, PauseStopsPromotionAndResumeKeepsRingTime) {
  const auto vs = twoVersions({at(0, K::Start), at(1, K::Pause, "help desk calls"), at(3, K::Resume)});
  const size_t it = count(vs, 0, "2.0");
  EXPECT_EQ(count(vs, 2, "2.0"), it);    // still canary
  EXPECT_EQ(count(vs, 3.5, "2.0"), it);  // 1 day spent + 0.5 after resume
  const size_t ring1 = count(vs, 4, "2.0");
  EXPECT_GT(ring1, it);                  // due on day 4: 2 days of running ring time
  EXPECT_EQ(count(vs, 5.99, "2.0"), ring1);
  EXPECT_EQ(count(vs, 6, "2.0"), fleet().size());

  // While paused, a device outside the ring with no older version hears why.
  expectNothing(vs[1], 2, "paused", "help desk calls");
}

TEST(InstallChoice, RollbackHandsTheOldVersionBackAndFlagsDowngrade) {
  const auto vs = twoVersions({at(0, K::Start), at(3, K::Rollback, "crashes on launch")});
  EXPECT_EQ(count(vs, 5, "1.0"), fleet().size());
  for (const auto& d : fleet()) {
    auto c = chooseVersion(d, kPkg, vs, threeRings(), std::nullopt, kT0 + 5 * kDay, 2 * kDay);
    // Rolled back in ring early: the it and early devices may have the 2.0 .pkg.
    bool mayHave = isIt(d) || early(d);
    ASSERT_EQ(c.downgradeNeeded, mayHave) << d.serial;
    if (mayHave) {
      EXPECT_EQ(c.rolledBackVersion, "2.0");
    }
  }
  // Not a .pkg (a .dmg app can be replaced): no downgrade flag.
  auto dmg = twoVersions({});
  dmg[1] = version("2.0", {at(0, K::Start), at(3, K::Rollback)}, /*isPkg=*/false);
  auto c = chooseVersion(fleet()[0], kPkg, dmg, threeRings(), std::nullopt, kT0 + 5 * kDay, 2 * kDay);
  EXPECT_EQ(c.version, "1.0");
  EXPECT_FALSE(c.downgradeNeeded);
  EXPECT_NE(c.whyDetail.find("2.0 was rolled back"), std::string::npos) << c.whyDetail;
  // Only the rolled-back version: nothing, and the why says so.
  c = chooseVersion(fleet()[0], kPkg, std::vector<VersionCandidate>{vs[1]}, threeRings(), std::nullopt, kT0 + 5 * kDay, 2 * kDay);
  EXPECT_FALSE(c.version.has_value());
  EXPECT_EQ(c.whyCode, "no_version");
  EXPECT_TRUE(c.downgradeNeeded);
}

TEST(InstallChoice, HaltAddsNoNewDevices) {
  const auto vs = twoVersions({at(0, K::Start), at(1, K::Halt, "failures 30 % > 20 %")});
  const size_t it = count(vs, 0, "2.0");
  EXPECT_EQ(count(vs, 4, "2.0"), it);  // frozen at canary: members keep it
  EXPECT_EQ(count(vs, 4, "1.0"), fleet().size() - it);
  expectNothing(vs[1], 4, "halted", "failures 30 %");
}

TEST(InstallChoice, PinsCapAndChoose) {
  const auto vs = twoVersions({at(0, K::Start)});
  Device itMac = fleet()[0];  // in it: 2.0 from day 0
  ASSERT_TRUE(isIt(itMac));
  Pin toOne{"1.0", {"it"}, {}};
  auto c = chooseVersion(itMac, kPkg, vs, threeRings(), toOne, kT0 + 5 * kDay, 2 * kDay);
  EXPECT_EQ(c.version, "1.0");
  EXPECT_EQ(c.whyCode, "pin");
  EXPECT_EQ(count(vs, 5, "1.0", toOne), 500u);  // the whole group, nobody else
  // A pin by serial to 2.0 gives it ahead of the device's ring.
  Device late = deviceWithBucket(kPkg, 2000, 9999, {});
  c = chooseVersion(late, kPkg, vs, threeRings(), Pin{"2.0", {}, {late.serial}}, kT0, 2 * kDay);
  EXPECT_EQ(c.version, "2.0");
  EXPECT_EQ(c.whyCode, "pin");
  // A pin between versions caps: the newest at or below it, chosen by its ring.
  c = chooseVersion(itMac, kPkg, vs, threeRings(), Pin{"1.5", {"it"}, {}}, kT0 + 5 * kDay, 2 * kDay);
  EXPECT_EQ(c.version, "1.0");
  EXPECT_EQ(c.whyCode, "ring");
  // Below everything: nothing, and the pin is named.
  c = chooseVersion(itMac, kPkg, vs, threeRings(), Pin{"0.9", {"it"}, {}}, kT0 + 5 * kDay, 2 * kDay);
  EXPECT_FALSE(c.version.has_value());
  EXPECT_EQ(c.whyCode, "no_version");
  EXPECT_NE(c.whyDetail.find("pinned to 0.9"), std::string::npos) << c.whyDetail;
  // A pin naming someone else does not apply.
  c = chooseVersion(itMac, kPkg, vs, threeRings(), Pin{"1.0", {"sales"}, {"C02X999999"}}, kT0, 2 * kDay);
  EXPECT_EQ(c.version, "2.0");
}

TEST(InstallChoice, OneRingCaseUsesTheRulePercentage) {
  VersionCandidate v = version("2.0", {at(0, K::Start)});
  v.rule.rolloutPercent = 20.0;
  v.rule.install = "required";
  v.rule.deadline = kT0 + 7 * kDay;
  size_t in = 0;
  for (const auto& d : fleet()) {
    auto c = chooseVersion(d, kPkg, std::vector<VersionCandidate>{v}, {}, std::nullopt, kT0 + 30 * kDay, 2 * kDay);
    ASSERT_EQ(c.version.has_value(), early(d)) << d.serial;
    if (c.version) {
      ++in;
      EXPECT_EQ(c.whyCode, "rule");
      EXPECT_EQ(c.ring, "");
      EXPECT_EQ(c.install, "required");
      EXPECT_EQ(c.deadline, kT0 + 7 * kDay);
    } else {
      EXPECT_EQ(c.whyCode, "not_yet_in_ring");
    }
  }
  EXPECT_NEAR(100.0 * static_cast<double>(in) / static_cast<double>(fleet().size()), 20.0, 1.5);
}

using Verdict = std::optional<std::pair<WhyNot, std::string>>;

struct WhyCase {
  const char* name;
  Verdict v128, v129;  // what checkRule said for each version
  std::optional<std::string> version;
  const char* code;
};

class WhyTest : public ::testing::TestWithParam<WhyCase> {};

// The targeting table: 128.0 for group finance, macOS >= 14, arm64,
// stable; 129.0 on channel beta. No rings, no percentage.
TEST_P(WhyTest, TargetingTable) {
  const WhyCase& w = GetParam();
  VersionCandidate a = version("128.0", {at(0, K::Start)}), b = version("129.0", {at(0, K::Start)});
  a.ruleVerdict = w.v128;
  b.ruleVerdict = w.v129;
  auto c = chooseVersion(fleet()[1], "Chrome", std::vector<VersionCandidate>{a, b}, {}, std::nullopt, kT0, 2 * kDay);
  EXPECT_EQ(c.version, w.version);
  EXPECT_EQ(c.whyCode, w.code) << c.whyDetail;
}

const std::pair<WhyNot, std::string> kBeta{WhyNot::Channel, "channel beta only"};
const std::pair<WhyNot, std::string> kStable{WhyNot::Channel, "channel stable only"};

INSTANTIATE_TEST_SUITE_P(
    Cases, WhyTest,
    ::testing::Values(
        WhyCase{"FinanceArm14_5Stable", {}, kBeta, "128.0", "rule"},
        WhyCase{"SalesMac", std::pair{WhyNot::NotInGroup, std::string("group finance only")}, kBeta, {}, "not_in_group"},
        WhyCase{"FinanceOn13_6", std::pair{WhyNot::OsTooOld, std::string("needs macOS 14")}, kBeta, {}, "os_too_old"},
        WhyCase{"FinanceOnBeta", kStable, {}, "129.0", "rule"},
        WhyCase{"OnlyChannelReasons", kStable, kBeta, {}, "channel"},
        WhyCase{"IntelMac", std::pair{WhyNot::Arch, std::string("arm64 only")}, kBeta, {}, "arch"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(InstallChoice, WhyRanksTimingOverRuleAndNamesUnreleased) {
  auto c = chooseVersion(fleet()[1], kPkg, std::vector<VersionCandidate>{}, threeRings(), std::nullopt, kT0, 2 * kDay);
  EXPECT_EQ(c.whyCode, "no_version");
  VersionCandidate unreleased = version("3.0", {});
  c = chooseVersion(fleet()[1], kPkg, std::vector<VersionCandidate>{unreleased}, threeRings(), std::nullopt, kT0, 2 * kDay);
  EXPECT_EQ(c.whyCode, "not_yet_in_ring");
  EXPECT_NE(c.whyDetail.find("not released"), std::string::npos) << c.whyDetail;
  // 2.0 waits for a later ring, 1.0 excludes the device: the wait is the news.
  Device late = deviceWithBucket(kPkg, 2000, 9999, {});
  VersionCandidate old = version("1.0", {at(-30, K::Start)});
  old.ruleVerdict = std::pair{WhyNot::ExcludedGroup, std::string("group contractors excluded")};
  c = chooseVersion(late, kPkg, std::vector<VersionCandidate>{old, version("2.0", {at(0, K::Start)})}, threeRings(), std::nullopt,
                    kT0 + kDay, 2 * kDay);
  EXPECT_FALSE(c.version.has_value());
  EXPECT_EQ(c.whyCode, "not_yet_in_ring");
  EXPECT_NE(c.whyDetail.find("next promotion at " + std::to_string(kT0 + 2 * kDay)), std::string::npos)
      << c.whyDetail;
}

}  // namespace
}  // namespace orchard::catalog
