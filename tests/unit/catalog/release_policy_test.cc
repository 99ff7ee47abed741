// Tests for the release policy per package (catalog/fleet_store.h, PUT
// /api/v1/rings/{name}): the policy's JSON as a table (every field
// optional, unknown fields and bad values refused naming the field, the
// ring list parsed by the same code as the global plan's), the merge of a
// policy over the global plan as a table (effectivePlan, and planFor over
// the store, also after a reopen), and what `release` does to the installs
// answer: a manual package's new version is offered to no one until
// releaseVersion, a second release is refused, switching on_publish ->
// manual keeps the versions already out, switching back (or deleting the
// policy) releases the held ones at that moment; a package with rings = []
// uses its versions' rollout_percent while the global plan has rings; the
// package's promote_after_days beats the global default and loses to a
// ring's own; each change is one audit entry. The installs answers go
// through the cached release index, so each case also pins that the index
// follows a policy change and a release.
#include "catalog/fleet_store.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "catalog/installs.h"
#include "unit/catalog/fleet_store_fixture.h"

namespace orchard::catalog {
namespace {

using nlohmann::json;
constexpr int64_t kDay = 86400;
constexpr int64_t kT0 = 1'700'000'000;

// --- the policy's JSON ---

struct ParseCase {
  const char* name;
  const char* body;
  const char* error;  // a part of the message, or nullptr when it parses
  ReleasePolicy want;
};

class PolicyParseTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(PolicyParseTest, Table) {
  const ParseCase& c = GetParam();
  auto got = releasePolicyFromJson(json::parse(c.body));
  if (c.error) {
    ASSERT_TRUE(std::holds_alternative<std::string>(got)) << c.body;
    EXPECT_NE(std::get<std::string>(got).find(c.error), std::string::npos) << std::get<std::string>(got);
    return;
  }
  ASSERT_TRUE(std::holds_alternative<ReleasePolicy>(got)) << std::get<std::string>(got);
  EXPECT_EQ(std::get<ReleasePolicy>(got), c.want);
  // The stored form reads back as the same policy.
  auto again = releasePolicyFromJson(releasePolicyJson(std::get<ReleasePolicy>(got)));
  ASSERT_TRUE(std::holds_alternative<ReleasePolicy>(again));
  EXPECT_EQ(std::get<ReleasePolicy>(again), c.want);
}

const std::vector<Ring> kTwoRings{{"canary", {"it"}, std::nullopt, kDay / 2}, {"broad", {}, 100.0, std::nullopt}};

INSTANTIATE_TEST_SUITE_P(
    Cases, PolicyParseTest,
    ::testing::Values(
        ParseCase{"Empty", "{}", nullptr, {}},
        ParseCase{"Days", R"({"promote_after_days": 1})", nullptr, {std::nullopt, kDay, std::nullopt}},
        ParseCase{"HalfDay", R"({"promote_after_days": 0.5})", nullptr, {std::nullopt, kDay / 2, std::nullopt}},
        ParseCase{"NoRings", R"({"rings": []})", nullptr, {std::vector<Ring>{}, std::nullopt, std::nullopt}},
        ParseCase{"OwnRings",
                  R"({"rings": [{"name": "canary", "groups": ["it"], "promote_after_days": 0.5},
                                {"name": "broad", "percent": 100}]})",
                  nullptr, {kTwoRings, std::nullopt, std::nullopt}},
        ParseCase{"Manual", R"({"release": "manual"})", nullptr, {std::nullopt, std::nullopt, ReleaseMode::Manual}},
        ParseCase{"OnPublish", R"({"release": "on_publish"})", nullptr,
                  {std::nullopt, std::nullopt, ReleaseMode::OnPublish}},
        ParseCase{"All", R"({"release": "manual", "promote_after_days": 3, "rings": []})", nullptr,
                  {std::vector<Ring>{}, 3 * kDay, ReleaseMode::Manual}},
        ParseCase{"NotAnObject", "[]", "JSON object", {}},
        ParseCase{"UnknownField", R"({"promote_after_dayz": 1})", "unknown field promote_after_dayz", {}},
        ParseCase{"DaysNotANumber", R"({"promote_after_days": "1"})", "promote_after_days: a number of days", {}},
        ParseCase{"DaysNegative", R"({"promote_after_days": -1})", "promote_after_days: a number of days", {}},
        ParseCase{"DaysTooMany", R"({"promote_after_days": 4000})", "promote_after_days: a number of days", {}},
        ParseCase{"ReleaseWord", R"({"release": "later"})", "release: \"on_publish\" or \"manual\"", {}},
        ParseCase{"ReleaseNotAString", R"({"release": true})", "release: \"on_publish\" or \"manual\"", {}},
        ParseCase{"RingsNotAList", R"({"rings": {}})", "rings: a list", {}},
        ParseCase{"RingWithoutName", R"({"rings": [{"percent": 5}]})", "rings: each ring needs a name", {}},
        ParseCase{"RingUnknownField", R"({"rings": [{"name": "a", "colour": 1}]})", "rings.a: unknown field colour", {}},
        ParseCase{"RingPercentLower", R"({"rings": [{"name": "a", "percent": 50}, {"name": "b", "percent": 20}]})",
                  "rings.b.percent: percentages are cumulative", {}},
        ParseCase{"RingDays", R"({"rings": [{"name": "a", "promote_after_days": -2}]})",
                  "rings.a.promote_after_days: a number of days", {}},
        ParseCase{"TwoRingsOneName", R"({"rings": [{"name": "a"}, {"name": "a"}]})", "two rings named a", {}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(RingPlanJson, GlobalPlanParsesAsBeforeAndRefusesRelease) {
  // The global plan shares the ring parser; it has no release field.
  auto plan = ringPlanFromJson(json::parse(R"({"rings": [{"name": "all", "percent": 100}], "promote_after_days": 1})"));
  ASSERT_TRUE(std::holds_alternative<RingPlan>(plan));
  EXPECT_EQ(std::get<RingPlan>(plan).rings.size(), 1u);
  EXPECT_EQ(std::get<RingPlan>(plan).promoteAfterSecs, kDay);
  EXPECT_EQ(std::get<RingPlan>(plan).release, ReleaseMode::OnPublish);
  auto bad = ringPlanFromJson(json::parse(R"({"rings": [], "release": "manual"})"));
  ASSERT_TRUE(std::holds_alternative<std::string>(bad));
  EXPECT_EQ(std::get<std::string>(bad), "rings: unknown field release");
  bad = ringPlanFromJson(json::parse(R"({"promote_after_days": 1})"));
  ASSERT_TRUE(std::holds_alternative<std::string>(bad));
  EXPECT_EQ(std::get<std::string>(bad), "rings: a list of at most 16 rings");
}

// --- the merge ---

struct MergeCase {
  const char* name;
  ReleasePolicy policy;
  size_t rings;  // how many rings the effective plan has
  const char* firstRing;
  int64_t promoteAfterSecs;
  ReleaseMode release;
};

class MergeTest : public ::testing::TestWithParam<MergeCase> {};

RingPlan globalPlan() {
  RingPlan g;
  g.rings = {{"canary", {"it"}, std::nullopt, std::nullopt},
             {"early", {}, 20.0, std::nullopt},
             {"broad", {}, 100.0, std::nullopt}};
  g.promoteAfterSecs = 2 * kDay;
  return g;
}

TEST_P(MergeTest, Table) {
  const MergeCase& c = GetParam();
  RingPlan p = effectivePlan(globalPlan(), c.policy);
  ASSERT_EQ(p.rings.size(), c.rings);
  if (c.rings) {
    EXPECT_EQ(p.rings[0].name, c.firstRing);
  }
  EXPECT_EQ(p.promoteAfterSecs, c.promoteAfterSecs);
  EXPECT_EQ(p.release, c.release);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MergeTest,
    ::testing::Values(
        MergeCase{"NothingSet", {}, 3, "canary", 2 * kDay, ReleaseMode::OnPublish},
        MergeCase{"Days", {std::nullopt, kDay, std::nullopt}, 3, "canary", kDay, ReleaseMode::OnPublish},
        MergeCase{"NoRings", {std::vector<Ring>{}, std::nullopt, std::nullopt}, 0, "", 2 * kDay, ReleaseMode::OnPublish},
        MergeCase{"OwnRings", {kTwoRings, std::nullopt, std::nullopt}, 2, "canary", 2 * kDay, ReleaseMode::OnPublish},
        MergeCase{"Manual", {std::nullopt, std::nullopt, ReleaseMode::Manual}, 3, "canary", 2 * kDay, ReleaseMode::Manual},
        MergeCase{"All", {kTwoRings, 0, ReleaseMode::Manual}, 2, "canary", 0, ReleaseMode::Manual}),
    [](const auto& info) { return std::string(info.param.name); });

// --- over the store ---

class ReleasePolicyTest : public fixture::FleetStoreFixture {
 protected:
  void SetUp() override {
    fixture::FleetStoreFixture::SetUp();
    ASSERT_FALSE(fleet_->putRings(globalPlan(), actor_, kT0 - 100 * kDay));
  }
  static Device device(std::string serial, std::vector<std::string> groups) {
    Device d;
    d.serial = std::move(serial);
    d.groups = std::move(groups);
    d.osVersion = "14.5";
    d.arch = "arm64";
    return d;
  }
  // The installs answer of `d` for package `name` at `now`.
  InstallChoice choice(const Device& d, const std::string& name, int64_t now) {
    for (auto& a : installsFor(d, *cat_, *fleet_, now))
      if (a.name == name) return a.choice;
    ADD_FAILURE() << "no answer for " << name;
    return {};
  }
  // The audit entries for `object` (actions starting with `prefix`).
  std::vector<AuditEntry> auditFor(const std::string& object, const std::string& prefix = "") {
    auto all = cat_->audit(0, 1000);
    EXPECT_TRUE(all.ok());
    std::vector<AuditEntry> out;
    for (auto& e : all.value())
      if (e.object == object && e.action.starts_with(prefix)) out.push_back(e);
    return out;
  }
  const Device it_ = device("C02AAAAAAA01", {"it"});
};

TEST_F(ReleasePolicyTest, PlanForMergesThePolicyOverTheGlobalPlanAndSurvivesAReopen) {
  EXPECT_EQ(fleet_->planFor("Tool").rings.size(), 3u);  // no policy: the global plan
  std::optional<ReleasePolicy> stored = ReleasePolicy{};
  fleet_->planFor("Tool", &stored);
  EXPECT_FALSE(stored.has_value());
  ASSERT_FALSE(fleet_->putPolicy("Tool", {std::nullopt, kDay, ReleaseMode::Manual}, actor_, kT0, nullptr));
  ASSERT_FALSE(fleet_->putPolicy("Flat", {std::vector<Ring>{}, std::nullopt, std::nullopt}, actor_, kT0, nullptr));
  RingPlan tool = fleet_->planFor("Tool", &stored);
  EXPECT_EQ(tool.rings.size(), 3u);
  EXPECT_EQ(tool.promoteAfterSecs, kDay);
  EXPECT_EQ(tool.release, ReleaseMode::Manual);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->promoteAfterSecs, kDay);
  EXPECT_TRUE(fleet_->planFor("Flat").rings.empty());
  EXPECT_EQ(fleet_->planFor("Toolbox").rings.size(), 3u);  // another name, no policy
  EXPECT_EQ(fleet_->rings().rings.size(), 3u);             // the global plan is untouched
  // The GET form says where each field comes from.
  json j = effectivePlanJson("Tool", tool, stored);
  EXPECT_EQ(j["release"], "manual");
  EXPECT_EQ(j["promote_after_days"], 1.0);
  EXPECT_EQ(j["from"], json({{"rings", "global"}, {"promote_after_days", "package"}, {"release", "package"}}));
  EXPECT_EQ(j["policy"], json({{"promote_after_days", 1.0}, {"release", "manual"}}));
  EXPECT_TRUE(effectivePlanJson("X", fleet_->planFor("X"), std::nullopt)["policy"].is_null());

  // Loaded at open.
  fleet_.reset();
  auto f = FleetStore::open(db_, cat_.get());
  ASSERT_TRUE(f.ok());
  fleet_ = std::move(f).value();
  EXPECT_EQ(fleet_->policy("Tool"), (ReleasePolicy{std::nullopt, kDay, ReleaseMode::Manual}));
  EXPECT_TRUE(fleet_->planFor("Flat").rings.empty());
  EXPECT_EQ(fleet_->planFor("Tool").release, ReleaseMode::Manual);
  EXPECT_EQ(fleet_->rings().rings.size(), 3u);

  ASSERT_FALSE(fleet_->removePolicy("Flat", actor_, kT0, nullptr));
  EXPECT_EQ(fleet_->planFor("Flat").rings.size(), 3u);
  auto p = fleet_->removePolicy("Flat", actor_, kT0, nullptr);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->code, Errc::NotFound);
  EXPECT_EQ(auditFor("rings/Flat").size(), 2u);  // ring-policy, ring-policy-delete
  EXPECT_EQ(auditFor("rings/Flat")[1].action, "ring-policy-delete");
}

TEST_F(ReleasePolicyTest, ManualVersionWaitsForItsRelease) {
  ASSERT_FALSE(fleet_->putPolicy("Tool", {std::nullopt, std::nullopt, ReleaseMode::Manual}, actor_, kT0, nullptr));
  publish("Tool", "1.0", kT0);
  // candidatesFor adds no implicit Start under manual, one under on_publish.
  const auto versions = cat_->versions("Tool");
  EXPECT_TRUE(candidatesFor(it_, versions, *fleet_, ReleaseMode::Manual)[0].events.empty());
  ASSERT_EQ(candidatesFor(it_, versions, *fleet_, ReleaseMode::OnPublish)[0].events.size(), 1u);

  InstallChoice c = choice(it_, "Tool", kT0 + 10 * kDay);  // days later: still nothing
  EXPECT_FALSE(c.version.has_value());
  EXPECT_EQ(c.whyCode, "not_yet_in_ring");
  EXPECT_NE(c.whyDetail.find("not released yet"), std::string::npos) << c.whyDetail;

  const int64_t released = kT0 + 10 * kDay;
  ASSERT_FALSE(fleet_->releaseVersion("Tool", "1.0", kT0, {released, RolloutEventKind::Start, "go"}, actor_));
  c = choice(it_, "Tool", released);
  EXPECT_EQ(c.version, "1.0");
  EXPECT_EQ(c.ring, "canary");  // entered the first ring at the release, not at publish
  EXPECT_FALSE(choice(device("C02AAAAAAA02", {"staff"}), "Tool", released + kDay).version.has_value());
  EXPECT_EQ(choice(device("C02AAAAAAA02", {"staff"}), "Tool", released + 4 * kDay).version, "1.0");  // broad by day 4

  auto again = fleet_->releaseVersion("Tool", "1.0", kT0, {released + 1, RolloutEventKind::Start, ""}, actor_);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->code, Errc::Exists);
  EXPECT_NE(again->detail.find("already released (started at " + std::to_string(released) + ")"), std::string::npos)
      << again->detail;
  const auto audit = auditFor("Tool/1.0", "rollout-");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].action, "rollout-release");
  EXPECT_EQ(audit[0].detail, "go");

  // An on_publish package's version is released at publish: refused too.
  publish("Other", "1.0", kT0);
  auto onPublish = fleet_->releaseVersion("Other", "1.0", kT0, {kT0 + 1, RolloutEventKind::Start, ""}, actor_);
  ASSERT_TRUE(onPublish.has_value());
  EXPECT_EQ(onPublish->code, Errc::Exists);
  EXPECT_NE(onPublish->detail.find("on_publish"), std::string::npos) << onPublish->detail;
  EXPECT_TRUE(fleet_->events("Other", "1.0").empty());
}

TEST_F(ReleasePolicyTest, SwitchingModeKeepsWhatIsOutAndReleasesWhatWasHeld) {
  publish("Tool", "1.0", kT0 - 30 * kDay);  // out to everyone (broad)
  publish("Tool", "2.0", kT0 - kDay);       // in canary
  ASSERT_FALSE(fleet_->addEvent("Tool", "2.0", {kT0 - kDay, RolloutEventKind::Pause, "same second"}, actor_));
  const Device staff = device("C02AAAAAAA02", {"staff"});
  const InstallChoice itBefore = choice(it_, "Tool", kT0);
  const InstallChoice staffBefore = choice(staff, "Tool", kT0);
  ASSERT_EQ(itBefore.version, "2.0");
  ASSERT_EQ(staffBefore.version, "1.0");

  // on_publish -> manual: both keep their start (at their publish time).
  FleetStore::PolicyChange change;
  ASSERT_FALSE(fleet_->putPolicy("Tool", {std::nullopt, std::nullopt, ReleaseMode::Manual}, actor_, kT0, &change));
  EXPECT_EQ(change.keptReleased, (std::vector<std::string>{"2.0", "1.0"}));
  EXPECT_TRUE(change.released.empty());
  for (int64_t at : {kT0, kT0 + 3 * kDay}) {
    EXPECT_EQ(choice(it_, "Tool", at).version, "2.0");
    EXPECT_EQ(choice(staff, "Tool", at).version, "1.0");  // 2.0 stays paused in canary
  }
  EXPECT_EQ(choice(staff, "Tool", kT0).whyDetail, staffBefore.whyDetail);
  const auto events = fleet_->events("Tool", "2.0");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], (RolloutEvent{kT0 - kDay, RolloutEventKind::Start, "published (release set to manual)"}));
  // Publishing under manual: 3.0 is held, the others go on.
  publish("Tool", "3.0", kT0 + kDay);
  EXPECT_EQ(choice(it_, "Tool", kT0 + 2 * kDay).version, "2.0");
  EXPECT_NE(choice(it_, "Tool", kT0 + 2 * kDay).whyDetail.find("2.0 in ring canary"), std::string::npos);
  // manual -> manual writes nothing.
  ASSERT_FALSE(fleet_->putPolicy("Tool", {std::nullopt, kDay, ReleaseMode::Manual}, actor_, kT0 + kDay, &change));
  EXPECT_TRUE(change.keptReleased.empty() && change.released.empty());

  // Deleting the policy (back to on_publish) releases 3.0 now, into canary:
  // not at its publish time, which would skip rings it never ran in.
  const int64_t back = kT0 + 5 * kDay;
  ASSERT_FALSE(fleet_->removePolicy("Tool", actor_, back, &change));
  EXPECT_EQ(change.released, std::vector<std::string>{"3.0"});
  EXPECT_TRUE(change.keptReleased.empty());
  EXPECT_EQ(choice(it_, "Tool", back).version, "3.0");
  EXPECT_EQ(choice(it_, "Tool", back).ring, "canary");
  EXPECT_EQ(choice(staff, "Tool", back + kDay).version, "1.0");
  EXPECT_EQ(choice(staff, "Tool", back + 4 * kDay).version, "3.0");

  const auto audit = auditFor("rings/Tool");
  ASSERT_EQ(audit.size(), 3u);
  EXPECT_EQ(audit[0].action, "ring-policy");
  EXPECT_NE(audit[0].detail.find("kept released (Start at publish): 2.0, 1.0"), std::string::npos) << audit[0].detail;
  EXPECT_EQ(audit[2].action, "ring-policy-delete");
  EXPECT_NE(audit[2].detail.find("released now: 3.0"), std::string::npos) << audit[2].detail;
}

TEST_F(ReleasePolicyTest, NoRingsUsesTheRolloutPercentWhileTheGlobalPlanHasRings) {
  publish("Flat", "1.0", kT0);
  publish("Ringed", "1.0", kT0);
  TargetRule half;
  half.rolloutPercent = 50;
  ASSERT_FALSE(fleet_->putRule("Flat", "1.0", half, actor_, kT0));
  ASSERT_FALSE(fleet_->putRule("Ringed", "1.0", half, actor_, kT0));
  ASSERT_FALSE(fleet_->putPolicy("Flat", {std::vector<Ring>{}, std::nullopt, std::nullopt}, actor_, kT0, nullptr));
  size_t flat = 0, ringed = 0;
  const size_t n = 2000;
  for (size_t i = 0; i < n; ++i) {
    char serial[16];
    std::snprintf(serial, sizeof serial, "C02P%06zu", i);
    const Device d = device(serial, {"staff"});
    const InstallChoice f = choice(d, "Flat", kT0 + 60);
    EXPECT_EQ(f.version.has_value(), inStage(d.serial, "Flat", 50)) << serial;
    if (f.version) {
      EXPECT_EQ(f.whyCode, "rule");
      EXPECT_EQ(f.ring, "");
      ++flat;
    }
    if (choice(d, "Ringed", kT0 + 60).version) ++ringed;  // the global canary: group it only
  }
  EXPECT_NEAR(static_cast<double>(flat) / n, 0.5, 0.05);
  EXPECT_EQ(ringed, 0u);
}

TEST_F(ReleasePolicyTest, PackageDaysBeatTheGlobalDefaultAndLoseToARingsOwn) {
  publish("Fast", "1.0", kT0);
  publish("Slow", "1.0", kT0);
  publish("OwnRing", "1.0", kT0);
  ASSERT_FALSE(fleet_->putPolicy("Fast", {std::nullopt, kDay, std::nullopt}, actor_, kT0, nullptr));
  std::vector<Ring> rings = globalPlan().rings;
  rings[0].promoteAfterSecs = 3 * kDay;  // canary's own time wins over the package's 1 day
  ASSERT_FALSE(fleet_->putPolicy("OwnRing", {rings, kDay, std::nullopt}, actor_, kT0, nullptr));
  const struct {
    const char* name;
    int64_t at;
    const char* ring;
  } rows[] = {
      {"Fast", kT0 + kDay - 1, "canary"},    {"Fast", kT0 + kDay, "early"},       {"Fast", kT0 + 2 * kDay, "broad"},
      {"Slow", kT0 + kDay, "canary"},        {"Slow", kT0 + 2 * kDay, "early"},   {"Slow", kT0 + 4 * kDay, "broad"},
      {"OwnRing", kT0 + 2 * kDay, "canary"}, {"OwnRing", kT0 + 3 * kDay, "early"}, {"OwnRing", kT0 + 4 * kDay, "broad"},
  };
  for (const auto& r : rows) EXPECT_EQ(choice(it_, r.name, r.at).ring, r.ring) << r.name << " at +" << r.at - kT0;
}

}  // namespace
}  // namespace orchard::catalog
