// Tests for catalog/health: the counts per ring and in total as a table of
// device states (this version, another version, no version, stale, never
// reported, not admitted by the rule), the auto-halt threshold at its edges
// (below the minimum of reports, exactly at the percentage, just over), and
// the record's JSON round trip and report merging.
#include "catalog/health.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace orchard::catalog {
namespace {

constexpr int64_t kNow = 1'750'000'000;
constexpr int64_t kDay = 86400;

DeviceStatus st(int64_t at, std::string version, PackageState s) {
  DeviceStatus d;
  d.at = at;
  if (!version.empty() || s != PackageState::Other) d.packages["App"] = PackageStatus{"", "", "App", version, s, ""};
  return d;
}

TEST(RolloutHealth, CountsPerRingAndTotal) {
  // Ring 0 = group it, ring 1 = everyone.
  const std::vector<Ring> rings = {{"canary", {"it"}, std::nullopt, std::nullopt}, {"broad", {}, 100.0, std::nullopt}};
  std::vector<Device> devices;
  std::map<std::string, DeviceStatus, std::less<>> statuses;
  auto add = [&](std::string serial, bool it, std::optional<DeviceStatus> s) {
    Device d;
    d.serial = serial;
    if (it) d.groups = {"it"};
    devices.push_back(d);
    if (s) statuses[serial] = *s;
  };
  add("IT000001", true, st(kNow, "2.0", PackageState::Installed));
  add("IT000002", true, st(kNow, "2.0", PackageState::Failed));
  add("IT000003", true, st(kNow, "", PackageState::Downloading));   // no version named: counted
  add("IT000004", true, st(kNow, "1.0", PackageState::Installed));  // another version: not about 2.0
  add("IT000005", true, st(kNow - 8 * kDay, "2.0", PackageState::Installing));  // stale but reported
  add("IT000006", true, std::nullopt);                                         // never reported: stale
  add("ST000001", false, st(kNow, "2.0", PackageState::Failed));
  add("XX000001", false, st(kNow, "2.0", PackageState::Failed));  // the rule does not admit it
  const RolloutHealth h = rolloutHealth(
      devices, [](const Device& d) { return d.serial.rfind("XX", 0) != 0; }, rings, "App", "2.0",
      [&](std::string_view s) -> const DeviceStatus* {
        auto it = statuses.find(s);
        return it == statuses.end() ? nullptr : &it->second;
      },
      kNow, 7 * kDay);
  const HealthCounts canary{6, 2, 1, 1, 4, 2};
  const HealthCounts broad{7, 2, 1, 2, 5, 2};
  ASSERT_EQ(h.rings.size(), 2u);
  EXPECT_EQ(h.rings[0], canary);
  EXPECT_EQ(h.rings[1], broad);
  EXPECT_EQ(h.total, broad);
}

TEST(RolloutHealth, NoRingsOnlyTotal) {
  std::vector<Device> devices(3);
  devices[0].serial = "A0000001";
  devices[1].serial = "A0000002";
  devices[2].serial = "A0000003";
  const DeviceStatus failed = st(kNow, "2.0", PackageState::Failed);
  const RolloutHealth h = rolloutHealth(
      devices, [](const Device&) { return true; }, {}, "App", "2.0",
      [&](std::string_view s) { return s == "A0000001" ? &failed : nullptr; }, kNow, kDay);
  EXPECT_TRUE(h.rings.empty());
  EXPECT_EQ(h.total, (HealthCounts{3, 0, 0, 1, 1, 2}));
}

TEST(AutoHalt, Thresholds) {
  struct Row {
    size_t failed, reported;
    int percent;
    size_t minReports;
    bool halts;
  };
  const std::vector<Row> rows = {
      {3, 10, 20, 10, true},    // 30 % > 20 %
      {2, 10, 20, 10, false},   // exactly 20 %: not past it
      {3, 9, 20, 10, false},    // too few reports
      {9, 9, 20, 10, false},    // all failed, still too few
      {21, 100, 20, 10, true},  // 21 % > 20 %
      {0, 10, 0, 10, false},    // no failure never halts
      {1, 10, 0, 10, true},     // 0 %: any failure halts
      {10, 10, 100, 10, false}, // 100 %: never
      {0, 0, 20, 1, false},
  };
  for (const Row& r : rows) {
    HealthCounts c;
    c.failed = r.failed;
    c.reported = r.reported;
    c.eligible = r.reported;
    auto reason = autoHaltReason(c, "canary", HealthLimits{7 * kDay, r.percent, r.minReports});
    EXPECT_EQ(reason.has_value(), r.halts) << r.failed << "/" << r.reported << " at " << r.percent << " %";
  }
  HealthCounts c;
  c.failed = 3;
  c.reported = 10;
  EXPECT_EQ(autoHaltReason(c, "canary", HealthLimits{}),
            "auto-halt: ring canary: 3 of 10 reporting devices failed (30 % > 20 %)");
  EXPECT_EQ(autoHaltReason(c, "", HealthLimits{}), "auto-halt: 3 of 10 reporting devices failed (30 % > 20 %)");
}

TEST(DeviceStatus, MergeKeepsEarlierPackagesAndRoundTrips) {
  auto resolve = [](const PackageStatus& p) -> std::optional<std::string> {
    if (p.name == "Unknown") return std::nullopt;
    return p.name;
  };
  StatusReport first;
  first.packages = {{"", "", "App", "2.0", PackageState::Downloading, ""}, {"", "", "Tool", "1", PackageState::Installed, ""}};
  first.installState = "idle";
  first.raw = {{"a", 1}};
  DeviceStatus s;
  mergeReport(s, first, kNow, resolve);
  StatusReport second;
  second.packages = {{"", "", "App", "2.0", PackageState::Failed, R"(["x"])"}, {"", "", "Unknown", "", PackageState::Failed, ""}};
  second.raw = {{"b", 2}};
  mergeReport(s, second, kNow + 5, resolve);
  EXPECT_EQ(s.at, kNow + 5);
  ASSERT_EQ(s.packages.size(), 2u);
  EXPECT_EQ(s.packages["App"].state, PackageState::Failed);
  EXPECT_EQ(s.packages["Tool"].state, PackageState::Installed);
  EXPECT_EQ(s.installState, "idle");
  EXPECT_EQ(s.lastReport, second.raw);
  auto back = deviceStatusFromJson(deviceStatusToJson(s));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->at, s.at);
  EXPECT_EQ(back->packages, s.packages);
  EXPECT_EQ(back->installState, "idle");
  EXPECT_EQ(back->lastReport, s.lastReport);
  EXPECT_FALSE(deviceStatusFromJson(nlohmann::json::array()));
}

TEST(ResolvePackage, IdentifierThenBundleIdThenName) {
  auto byBundle = [](std::string_view id) -> std::optional<std::string> {
    if (id == "org.mozilla.firefox") return std::string("Firefox");
    return std::nullopt;
  };
  auto known = [](std::string_view n) { return n == "Firefox" || n == "Zoom"; };
  EXPECT_EQ(resolvePackage({"org.orchard.package.Firefox", "", "", "", PackageState::Installed, ""}, byBundle, known), "Firefox");
  EXPECT_EQ(resolvePackage({"org.orchard.package.Nope", "", "", "", PackageState::Installed, ""}, byBundle, known), std::nullopt);
  EXPECT_EQ(resolvePackage({"org.mozilla.firefox", "", "", "", PackageState::Installed, ""}, byBundle, known), "Firefox");
  EXPECT_EQ(resolvePackage({"", "org.mozilla.firefox", "", "", PackageState::Installed, ""}, byBundle, known), "Firefox");
  EXPECT_EQ(resolvePackage({"", "", "Zoom", "", PackageState::Installed, ""}, byBundle, known), "Zoom");
  EXPECT_EQ(resolvePackage({"", "", "Other", "", PackageState::Installed, ""}, byBundle, known), std::nullopt);
}

}  // namespace
}  // namespace orchard::catalog
