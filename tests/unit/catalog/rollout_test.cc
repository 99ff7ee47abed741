// Tests for catalog/rollout, part 1: the staged bucket (range, determinism,
// the scope's role, the rounding rule), the monotonicity of inStage over a
// 10,000-device fleet with the share near target, ring membership as a
// table, and the rollout event log replayed by viewAt as a table (automatic
// promotion, pause stopping the clock, resume keeping ring time, promote,
// halt, rollback, ignored and out-of-order events). The hard part is the
// clock table: each row pins one rule of rollout.h's state table with its
// exact second, so an off-by-one in the ring clock shows as a wrong row.
#include "catalog/rollout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "tests/unit/catalog/rollout_fixture.h"

namespace orchard::catalog {
namespace {

using K = RolloutEventKind;

TEST(StageBucket, DeterministicInRangeAndScoped) {
  EXPECT_EQ(stageBucket("C02ABC1234", "Firefox"), stageBucket("C02ABC1234", "Firefox"));
  int differ = 0;
  for (const auto& d : fleet()) {
    uint32_t b = stageBucket(d.serial, "Firefox");
    ASSERT_LT(b, kStageBuckets);
    if (b != stageBucket(d.serial, "Zoom")) ++differ;
  }
  EXPECT_GT(differ, 9900);  // another package is another, independent draw
  // scope + '\0' + serial: moving a byte across the separator changes the draw.
  EXPECT_NE(stageBucket("BC", "A"), stageBucket("C", "AB"));
}

TEST(StageBucket, InStageIsBucketBelowRoundedLimit) {
  const struct { double percent; uint32_t limit; } rows[] = {
      {0, 0}, {0.004, 0}, {0.005, 1}, {5, 500}, {20, 2000}, {20.004, 2000},
      {33.335, 3334}, {99.99, 9999}, {100, 10000}, {150, 10000}, {-3, 0},
  };
  for (const auto& r : rows) {
    for (size_t i = 0; i < 2000; ++i) {
      const auto& s = fleet()[i].serial;
      EXPECT_EQ(inStage(s, "Firefox", r.percent), stageBucket(s, "Firefox") < r.limit)
          << r.percent << " " << s;
    }
  }
  EXPECT_FALSE(inStage("C02ABC1234", "Firefox", std::numeric_limits<double>::quiet_NaN()));
}

TEST(StageBucket, RaisingThePercentageOnlyAddsDevicesAndHitsTheShare) {
  const double steps[] = {5, 10, 20, 50, 100};
  std::vector<bool> before(fleet().size(), false);
  for (double p : steps) {
    size_t in = 0;
    for (size_t i = 0; i < fleet().size(); ++i) {
      bool now = inStage(fleet()[i].serial, "Firefox", p);
      if (before[i]) {
        ASSERT_TRUE(now) << "device " << i << " left the stage at " << p << " %";
      }
      before[i] = now;
      in += now;
    }
    double share = 100.0 * static_cast<double>(in) / static_cast<double>(fleet().size());
    EXPECT_NEAR(share, p, 1.5) << "at " << p << " %";
  }
}

TEST(Rings, MembershipTable) {
  const std::vector<Ring> rings = threeRings();
  Device it = deviceWithBucket("Firefox", 2000, 9999, {"it"});  // in it, high bucket
  Device early = deviceWithBucket("Firefox", 0, 1999, {});   // bucket < 2000
  Device late = deviceWithBucket("Firefox", 2000, 9999, {});  // bucket >= 2000
  const struct { const Device* d; size_t ring; bool in; } rows[] = {
      {&it, 0, true},     {&it, 1, true},     {&it, 2, true},     {&it, 99, true},
      {&early, 0, false}, {&early, 1, true},  {&early, 2, true},
      {&late, 0, false},  {&late, 1, false},  {&late, 2, true},   {&late, 7, true},
  };
  for (const auto& r : rows)
    EXPECT_EQ(inRing(*r.d, rings, r.ring, "Firefox"), r.in) << r.d->serial << " ring " << r.ring;
  EXPECT_EQ(ringOf(it, rings, "Firefox"), 0u);
  EXPECT_EQ(ringOf(early, rings, "Firefox"), 1u);
  EXPECT_EQ(ringOf(late, rings, "Firefox"), 2u);
  EXPECT_TRUE(inRing(late, {}, 0, "Firefox"));  // no rings: everyone
  // A ring with groups and a percentage holds either; an empty one, everyone.
  std::vector<Ring> both{{"mixed", {"it"}, 20.0, {}}};
  EXPECT_TRUE(inRing(it, both, 0, "Firefox"));
  EXPECT_TRUE(inRing(early, both, 0, "Firefox"));
  EXPECT_FALSE(inRing(late, both, 0, "Firefox"));
  EXPECT_FALSE(ringOf(late, both, "Firefox").has_value());
  EXPECT_TRUE(inRing(late, {{"all", {}, {}, {}}}, 0, "Firefox"));
}

struct ViewCase {
  const char* name;
  std::vector<RolloutEvent> events;
  int64_t now;  // seconds after kT0
  bool started;
  size_t ring;
  bool paused, halted, rolledBack;
  int64_t enteredRingAt;                   // after kT0
  std::optional<int64_t> nextPromotionAt;  // after kT0
};

RolloutEvent ev(double days, K k, std::string reason = {}) {
  return {kT0 + static_cast<int64_t>(days * kDay), k, std::move(reason)};
}
int64_t d(double days) { return static_cast<int64_t>(days * kDay); }

class ViewTest : public ::testing::TestWithParam<ViewCase> {};

TEST_P(ViewTest, Table) {
  const ViewCase& c = GetParam();
  RolloutView v = viewAt(threeRings(), c.events, kT0 + c.now, 2 * kDay);
  EXPECT_EQ(v.started, c.started);
  EXPECT_EQ(v.ring, c.ring);
  EXPECT_EQ(v.paused, c.paused);
  EXPECT_EQ(v.halted, c.halted);
  EXPECT_EQ(v.rolledBack, c.rolledBack);
  if (c.started) {
    EXPECT_EQ(v.enteredRingAt, kT0 + c.enteredRingAt);
  }
  std::optional<int64_t> want;
  if (c.nextPromotionAt) want = kT0 + *c.nextPromotionAt;
  EXPECT_EQ(v.nextPromotionAt, want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ViewTest,
    ::testing::Values(
        ViewCase{"NoEvents", {}, d(5), false, 0, false, false, false, 0, {}},
        ViewCase{"PauseBeforeStartIgnored", {ev(0, K::Pause), ev(1, K::Start)}, d(1), true, 0, false, false, false, d(1), d(3)},
        ViewCase{"Day0", {ev(0, K::Start)}, 0, true, 0, false, false, false, 0, d(2)},
        ViewCase{"JustBeforeDue", {ev(0, K::Start)}, d(2) - 1, true, 0, false, false, false, 0, d(2)},
        ViewCase{"Day2", {ev(0, K::Start)}, d(2), true, 1, false, false, false, d(2), d(4)},
        ViewCase{"Day4", {ev(0, K::Start)}, d(4), true, 2, false, false, false, d(4), {}},
        ViewCase{"LastRingKept", {ev(0, K::Start)}, d(30), true, 2, false, false, false, d(4), {}},
        ViewCase{"PausedDay1SeenDay2", {ev(0, K::Start), ev(1, K::Pause)}, d(2), true, 0, true, false, false, 0, {}},
        // Resume keeps the ring time already spent: 1 day before the pause, so due 1 day after resume.
        ViewCase{"ResumedDay3", {ev(0, K::Start), ev(1, K::Pause), ev(3, K::Resume)}, d(3), true, 0, false, false, false, 0, d(4)},
        ViewCase{"ResumedDay3SeenDay4", {ev(0, K::Start), ev(1, K::Pause), ev(3, K::Resume)}, d(4), true, 1, false, false, false, d(4), d(6)},
        ViewCase{"PromoteNow", {ev(0, K::Start), ev(0.5, K::Promote)}, d(1), true, 1, false, false, false, d(0.5), d(2.5)},
        ViewCase{"PromoteWhilePausedKeepsPause", {ev(0, K::Start), ev(0.5, K::Pause), ev(1, K::Promote)}, d(9), true, 1, true, false, false, d(1), {}},
        ViewCase{"PromotePastLastIgnored", {ev(0, K::Start), ev(0, K::Promote), ev(0, K::Promote), ev(0, K::Promote)}, d(1), true, 2, false, false, false, 0, {}},
        ViewCase{"HaltFreezes", {ev(0, K::Start), ev(1, K::Halt, "failures")}, d(9), true, 0, false, true, false, 0, {}},
        ViewCase{"PromoteWhileHaltedIgnored", {ev(0, K::Start), ev(1, K::Halt), ev(2, K::Promote)}, d(9), true, 0, false, true, false, 0, {}},
        ViewCase{"HaltThenResume", {ev(0, K::Start), ev(1, K::Halt), ev(2, K::Resume)}, d(3), true, 1, false, false, false, d(3), d(5)},
        ViewCase{"RollbackKeepsRing", {ev(0, K::Start), ev(3, K::Rollback)}, d(9), true, 1, false, false, true, d(2), {}},
        ViewCase{"ResumeAfterRollbackIgnored", {ev(0, K::Start), ev(3, K::Rollback), ev(4, K::Resume)}, d(9), true, 1, false, false, true, d(2), {}},
        ViewCase{"FutureEventsIgnored", {ev(0, K::Start), ev(5, K::Pause)}, d(3), true, 1, false, false, false, d(2), d(4)},
        ViewCase{"UnsortedEvents", {ev(1, K::Pause), ev(0, K::Start)}, d(2), true, 0, true, false, false, 0, {}},
        ViewCase{"SecondStartIgnored", {ev(0, K::Start), ev(1, K::Start)}, d(2), true, 1, false, false, false, d(2), d(4)}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(View, PerRingPromoteAfterAndPromotionLog) {
  std::vector<Ring> rings = threeRings();
  rings[0].promoteAfterSecs = kDay / 2;
  RolloutView v = viewAt(rings, {ev(0, K::Start)}, kT0 + d(3), 2 * kDay);
  EXPECT_EQ(v.ring, 2u);
  const std::vector<std::pair<int64_t, size_t>> want{{kT0 + d(0.5), 1}, {kT0 + d(2.5), 2}};
  EXPECT_EQ(v.promotions, want);
  EXPECT_EQ(v.ringTimeSecs, d(0.5));
}

TEST(View, NoAutomaticPromotionWithoutAClockAndReasonKept) {
  RolloutView v = viewAt(threeRings(), {ev(0, K::Start)}, kT0 + d(30), 0);
  EXPECT_EQ(v.ring, 0u);
  EXPECT_FALSE(v.nextPromotionAt.has_value());
  v = viewAt(threeRings(), {ev(0, K::Start), ev(1, K::Halt, "failures 30 % > 20 %")}, kT0 + d(2), 2 * kDay);
  EXPECT_EQ(v.reason, "failures 30 % > 20 %");
  EXPECT_EQ(v.ringTimeSecs, d(1));
  EXPECT_STREQ(rolloutEventName(K::Rollback), "rollback");
}

TEST(View, NoRingsIsOneRingForever) {
  RolloutView v = viewAt({}, {ev(0, K::Start)}, kT0 + d(30), 2 * kDay);
  EXPECT_TRUE(v.started);
  EXPECT_EQ(v.ring, 0u);
  EXPECT_FALSE(v.nextPromotionAt.has_value());
}

}  // namespace
}  // namespace orchard::catalog
