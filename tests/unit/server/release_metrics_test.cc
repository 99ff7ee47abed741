// Tests for server/admin/release_metrics.h: the fleet gauge, one series per
// package for its newest version's current ring counting only the devices
// its rule admits, each package under its own release policy (its rings; a
// manual release not released yet holds no device), and the 200-series
// bound.
#include "server/admin/release_metrics.h"

#include "unit/catalog/fleet_store_fixture.h"

namespace orchard::server {
namespace {

using namespace orchard::catalog;

class ReleaseMetricsTest : public fixture::FleetStoreFixture {
 protected:
  static Device device(std::string serial, std::string group) {
    Device d;
    d.serial = std::move(serial);
    d.groups = {std::move(group)};
    d.osVersion = "14.5";
    d.arch = "arm64";
    return d;
  }
};

TEST_F(ReleaseMetricsTest, NewestVersionsCurrentRingAmongTheDevicesItsRuleAdmits) {
  const int64_t t0 = 1700000000;
  RingPlan plan;
  plan.rings = {Ring{"canary", {"it"}, std::nullopt, std::nullopt}, Ring{"broad", {}, 100.0, std::nullopt}};
  plan.promoteAfterSecs = 86400;
  ASSERT_FALSE(fleet_->putRings(plan, actor_, t0));
  ASSERT_FALSE(fleet_->importDevices({device("C02AAAAAAA01", "it"), device("C02AAAAAAA02", "it"),
                                      device("C02AAAAAAA03", "finance"), device("C02AAAAAAA04", "sales")},
                                     actor_, t0));
  publish("Tool", "1.0", t0 - 10 * 86400);  // long since in broad
  publish("Tool", "2.0", t0);               // canary today
  publish("Zed", "3.0", t0 - 10 * 86400);
  TargetRule rule;
  rule.excludeGroups = {"it"};
  ASSERT_FALSE(fleet_->putRule("Zed", "3.0", rule, actor_, t0));
  TargetRule itOnly;
  itOnly.groups = {"it", "finance"};
  ASSERT_FALSE(fleet_->putRule("Tool", "2.0", itOnly, actor_, t0));

  std::string out;
  EXPECT_EQ(appendReleaseMetrics(out, *cat_, *fleet_, t0 + 60), 2u);
  EXPECT_NE(out.find("\norchard_fleet_devices 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\norchard_release_devices{package=\"Tool\",version=\"2.0\",ring=\"canary\"} 2\n"),
            std::string::npos) << out;
  EXPECT_NE(out.find("\norchard_release_devices{package=\"Zed\",version=\"3.0\",ring=\"broad\"} 2\n"),
            std::string::npos) << out;
  EXPECT_EQ(out.find("version=\"1.0\""), std::string::npos) << out;  // newest version only
  EXPECT_NE(out.find("at most 200 series"), std::string::npos) << out;
}

TEST_F(ReleaseMetricsTest, EachPackageUnderItsPolicyAndAHeldVersionHoldsNoDevice) {
  const int64_t t0 = 1700000000;
  RingPlan plan;
  plan.rings = {Ring{"canary", {"it"}, std::nullopt, std::nullopt}, Ring{"broad", {}, 100.0, std::nullopt}};
  ASSERT_FALSE(fleet_->putRings(plan, actor_, t0));
  ASSERT_FALSE(fleet_->importDevices({device("C02AAAAAAA01", "it"), device("C02AAAAAAA02", "finance")}, actor_, t0));
  ASSERT_FALSE(fleet_->putPolicy("Flat", {std::vector<Ring>{}, std::nullopt, std::nullopt}, actor_, t0, nullptr));
  ASSERT_FALSE(fleet_->putPolicy("Held", {std::nullopt, std::nullopt, ReleaseMode::Manual}, actor_, t0, nullptr));
  publish("Flat", "1.0", t0);
  publish("Held", "1.0", t0);
  std::string out;
  EXPECT_EQ(appendReleaseMetrics(out, *cat_, *fleet_, t0 + 60), 2u);
  EXPECT_NE(out.find("\norchard_release_devices{package=\"Flat\",version=\"1.0\",ring=\"\"} 2\n"), std::string::npos)
      << out;  // no rings: the rule's 100 %, not the global canary
  EXPECT_NE(out.find("\norchard_release_devices{package=\"Held\",version=\"1.0\",ring=\"\"} 0\n"), std::string::npos)
      << out;
  ASSERT_FALSE(fleet_->releaseVersion("Held", "1.0", t0, {t0 + 100, RolloutEventKind::Start, ""}, actor_));
  out.clear();
  appendReleaseMetrics(out, *cat_, *fleet_, t0 + 200);
  EXPECT_NE(out.find("\norchard_release_devices{package=\"Held\",version=\"1.0\",ring=\"canary\"} 1\n"),
            std::string::npos)
      << out;
}

TEST_F(ReleaseMetricsTest, AtMost200Series) {
  for (size_t i = 0; i < kMaxReleaseSeries + 3; ++i) publish("p" + std::to_string(1000 + i), "1.0", 1700000000);
  std::string out;
  EXPECT_EQ(appendReleaseMetrics(out, *cat_, *fleet_, 1700000060), kMaxReleaseSeries);
  EXPECT_NE(out.find("package=\"p1199\""), std::string::npos);
  EXPECT_EQ(out.find("package=\"p1200\""), std::string::npos);
}

}  // namespace
}  // namespace orchard::server
