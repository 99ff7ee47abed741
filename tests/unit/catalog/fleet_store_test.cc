// Tests for FleetStore::versionRecords (catalog/fleet_store.h): one
// package's rules and rollout logs in the order asked, defaults where none
// was set, and nothing from a package whose name extends this one's.
#include "catalog/fleet_store.h"

#include "unit/catalog/fleet_store_fixture.h"

namespace orchard::catalog {
namespace {

class FleetStoreTest : public fixture::FleetStoreFixture {
 protected:
  TargetRule ruleWithGroup(std::string g) {
    TargetRule r;
    r.groups = {std::move(g)};
    return r;
  }
};

TEST_F(FleetStoreTest, VersionRecordsInTheOrderAskedWithDefaults) {
  ASSERT_FALSE(fleet_->putRule("Tool", "1.0", ruleWithGroup("a"), actor_, 100));
  ASSERT_FALSE(fleet_->putRule("Tool", "2.0", ruleWithGroup("b"), actor_, 100));
  ASSERT_FALSE(fleet_->putRule("Toolbox", "3.0", ruleWithGroup("x"), actor_, 100));  // name extends "Tool"
  ASSERT_FALSE(fleet_->putRule("Tool2", "1.0", ruleWithGroup("y"), actor_, 100));
  ASSERT_FALSE(fleet_->addEvent("Tool", "2.0", RolloutEvent{200, RolloutEventKind::Pause, "why"}, actor_));
  ASSERT_FALSE(fleet_->addEvent("Toolbox", "3.0", RolloutEvent{200, RolloutEventKind::Halt, ""}, actor_));

  auto r = fleet_->versionRecords("Tool", {"3.0", "2.0", "1.0"});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_TRUE(r[0].rule.groups.empty());  // 3.0 of Tool: nothing set (3.0 of Toolbox is not it)
  EXPECT_TRUE(r[0].events.empty());
  EXPECT_EQ(r[1].rule.groups, std::vector<std::string>{"b"});
  ASSERT_EQ(r[1].events.size(), 1u);
  EXPECT_EQ(r[1].events[0].kind, RolloutEventKind::Pause);
  EXPECT_EQ(r[2].rule.groups, std::vector<std::string>{"a"});
  EXPECT_TRUE(r[2].events.empty());
  // The same as the one-version calls.
  for (size_t i = 0; i < 3; ++i) {
    const char* v = i == 0 ? "3.0" : i == 1 ? "2.0" : "1.0";
    EXPECT_EQ(r[i].rule.groups, fleet_->rule("Tool", v).groups) << v;
    EXPECT_EQ(r[i].events, fleet_->events("Tool", v)) << v;
  }
  EXPECT_TRUE(fleet_->versionRecords("Tool", {}).empty());
}

}  // namespace
}  // namespace orchard::catalog
