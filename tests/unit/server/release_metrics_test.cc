// Tests for server/admin/release_metrics.h: the fleet gauge, one series per
// package for its newest version's current ring counting only the devices
// its rule admits, and the 200-series bound.
#include "server/admin/release_metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace orchard::server {
namespace {

using namespace orchard::catalog;

class ReleaseMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-relmetrics-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    std::vector<std::string> fams = families();
    for (const auto& f : fleetFamilies()) fams.push_back(f);
    auto d = db::Database::open(root_ + "/index", fams);
    ASSERT_TRUE(d.ok()) << d.error().message();
    db_ = std::shared_ptr<db::Database>(std::move(d).value());
    auto c = Catalog::open({root_ + "/packages", 1 << 20}, db_);
    ASSERT_TRUE(c.ok()) << c.error().message();
    cat_ = std::move(c).value();
    auto f = FleetStore::open(db_, cat_.get());
    ASSERT_TRUE(f.ok()) << f.error().message();
    fleet_ = std::move(f).value();
  }
  void TearDown() override {
    fleet_.reset();
    cat_.reset();
    db_.reset();
    std::filesystem::remove_all(root_);
  }
  void publish(const std::string& name, const std::string& version, int64_t at) {
    const std::string body = name + version;
    auto b = cat_->begin(name, version, "f.dmg", body.size(), {});
    auto* begun = std::get_if<Catalog::Begun>(&b);
    ASSERT_TRUE(begun && begun->upload);
    ASSERT_FALSE(begun->upload->write(body.data(), body.size()));
    ASSERT_FALSE(begun->upload->finish());
    auto c = cat_->commit(std::move(begun->upload), PackageVersion{}, actor_, at);
    ASSERT_TRUE(std::holds_alternative<Catalog::Committed>(c));
  }
  static Device device(std::string serial, std::string group) {
    Device d;
    d.serial = std::move(serial);
    d.groups = {std::move(group)};
    d.osVersion = "14.5";
    d.arch = "arm64";
    return d;
  }

  const Actor actor_{"127.0.0.1", "admin"};
  std::string root_;
  std::shared_ptr<db::Database> db_;
  std::unique_ptr<Catalog> cat_;
  std::unique_ptr<FleetStore> fleet_;
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

TEST_F(ReleaseMetricsTest, AtMost200Series) {
  for (size_t i = 0; i < kMaxReleaseSeries + 3; ++i) publish("p" + std::to_string(1000 + i), "1.0", 1700000000);
  std::string out;
  EXPECT_EQ(appendReleaseMetrics(out, *cat_, *fleet_, 1700000060), kMaxReleaseSeries);
  EXPECT_NE(out.find("package=\"p1199\""), std::string::npos);
  EXPECT_EQ(out.find("package=\"p1200\""), std::string::npos);
}

}  // namespace
}  // namespace orchard::server
