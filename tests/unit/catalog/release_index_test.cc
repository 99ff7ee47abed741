// The installs answer reads a cached release index (release_index.h): every
// kind of change a later answer must see is made after the index was
// built, and the answer must follow it (publish, delete, rule, rollout
// event, pin, rings, metadata), while an answer with nothing changed reuses
// the same index.
#include <gtest/gtest.h>

#include "catalog/installs.h"
#include "catalog/release_index.h"
#include "fleet_store_fixture.h"

namespace orchard::catalog {
namespace {

constexpr int64_t kT0 = 1700000000;

class ReleaseIndexTest : public fixture::FleetStoreFixture {
 protected:
  Device mac() const {
    Device d;
    d.serial = "C02ABCDEFGH";
    d.groups = {"it"};
    d.osVersion = "14.5";
    d.arch = "arm64";
    return d;
  }
  // The version the device gets of `name` now, "" for none.
  std::string gets(const std::string& name, int64_t now = kT0 + 100) {
    for (const auto& a : installsFor(mac(), *cat_, *fleet_, now))
      if (a.name == name) return a.choice.version ? *a.choice.version : "";
    return "(absent)";
  }
};

TEST_F(ReleaseIndexTest, AnswersFollowEveryKindOfChange) {
  publish("Tool", "1.0", kT0);
  EXPECT_EQ(gets("Tool"), "1.0");
  auto first = fleet_->releaseIndex();
  EXPECT_EQ(fleet_->releaseIndex(), first) << "nothing changed: the same index";

  publish("Tool", "2.0", kT0 + 10);
  EXPECT_EQ(gets("Tool"), "2.0") << "a publish after the index was built";
  EXPECT_NE(fleet_->releaseIndex(), first);

  TargetRule finance;
  finance.groups = {"finance"};
  ASSERT_FALSE(fleet_->putRule("Tool", "2.0", finance, actor_, kT0 + 20));
  EXPECT_EQ(gets("Tool"), "1.0") << "a rule that leaves the device out of 2.0";

  ASSERT_FALSE(fleet_->putRule("Tool", "2.0", TargetRule{}, actor_, kT0 + 30));
  EXPECT_EQ(gets("Tool"), "2.0");
  ASSERT_FALSE(fleet_->addEvent("Tool", "2.0", RolloutEvent{kT0 + 40, RolloutEventKind::Rollback, "bad"}, actor_));
  EXPECT_EQ(gets("Tool"), "1.0") << "a rollback event";

  publish("Tool", "3.0", kT0 + 50);
  EXPECT_EQ(gets("Tool"), "3.0");
  Pin pin;
  pin.version = "1.0";
  pin.groups = {"it"};
  ASSERT_FALSE(fleet_->putPin("Tool", pin, actor_, kT0 + 60));
  EXPECT_EQ(gets("Tool"), "1.0") << "a pin";
  ASSERT_FALSE(fleet_->removePin("Tool", actor_, kT0 + 70));
  EXPECT_EQ(gets("Tool"), "3.0");

  RingPlan plan;
  plan.rings = {Ring{"canary", {"nobody"}, std::nullopt, {}}, Ring{"broad", {}, 100.0, {}}};
  ASSERT_FALSE(fleet_->putRings(plan, actor_, kT0 + 80));
  EXPECT_EQ(gets("Tool", kT0 + 90), "") << "rings: 3.0 (and 1.0) sit in a canary ring the device is not in";

  ASSERT_FALSE(fleet_->putRings(RingPlan{}, actor_, kT0 + 95));
  ASSERT_FALSE(cat_->remove("Tool", "3.0", actor_, kT0 + 96));
  EXPECT_EQ(gets("Tool"), "1.0") << "a delete: 2.0 stays rolled back";
  ASSERT_FALSE(cat_->remove("Tool", "1.0", actor_, kT0 + 97));
  ASSERT_FALSE(cat_->remove("Tool", "2.0", actor_, kT0 + 98));
  EXPECT_EQ(gets("Tool"), "(absent)") << "a package with no versions left is not listed";
}

TEST_F(ReleaseIndexTest, CandidatesAreNewestFirstWithTheImplicitStart) {
  publish("App", "1.9", kT0);
  publish("App", "1.10", kT0 + 5);
  publish("App", "1.2", kT0 + 9);
  ASSERT_FALSE(fleet_->addEvent("App", "1.10", RolloutEvent{kT0 + 7, RolloutEventKind::Pause, "wait"}, actor_));
  auto index = fleet_->releaseIndex();
  ASSERT_EQ(index->packages.size(), 1u);
  const auto& p = index->packages[0];
  ASSERT_EQ(p.candidates.size(), 3u);
  EXPECT_EQ(p.candidates[0].version, "1.10");
  EXPECT_EQ(p.candidates[1].version, "1.9");
  EXPECT_EQ(p.candidates[2].version, "1.2");
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    EXPECT_TRUE(p.candidates[i].checkRule);
    EXPECT_EQ(p.candidates[i].version, p.versions[i]->version);
    ASSERT_FALSE(p.candidates[i].events.empty());
    EXPECT_EQ(p.candidates[i].events[0].kind, RolloutEventKind::Start) << "implicit Start at publish";
  }
  // 1.10's log: the implicit Start at its publish time (kT0 + 5), then the pause.
  ASSERT_EQ(p.candidates[0].events.size(), 2u);
  EXPECT_EQ(p.candidates[0].events[0].at, kT0 + 5);
  EXPECT_EQ(p.candidates[0].events[1].kind, RolloutEventKind::Pause);
}

}  // namespace
}  // namespace orchard::catalog
