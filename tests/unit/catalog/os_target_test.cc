// Tests for catalog/os_target: the body's validation as a table (each bad
// field refused with its name), the JSON form, and the declaration a device
// gets: only when its OS ring (kOsScope) has a target, TargetLocalDateTime
// the deadline's UTC wall time without offset, the build only when given.
#include "catalog/os_target.h"

#include <gtest/gtest.h>

#include "catalog/declarations.h"
#include "catalog/rollout.h"

namespace orchard::catalog {
namespace {

using nlohmann::json;

TEST(OsTarget, ParseTable) {
  const struct { const char* body; const char* problemStart; } rows[] = {
      {R"({"version": "15.2"})", nullptr},
      {R"({"version": "15.2", "build": "24C101", "deadline": "2026-01-10T18:00:00Z"})", nullptr},
      {R"({"version": "15.2", "build": null, "deadline": null})", nullptr},
      {R"({})", "version:"},
      {R"({"version": ""})", "version:"},
      {R"({"version": "15.x"})", "version:"},
      {R"({"version": 15})", "version:"},
      {R"({"version": "15.2", "build": "24C 101"})", "build:"},
      {R"({"version": "15.2", "build": ""})", "build:"},
      {R"({"version": "15.2", "deadline": "2026-01-10 18:00"})", "deadline:"},
      {R"({"version": "15.2", "colour": "red"})", "os target: unknown field colour"},
      {R"([1])", "os target:"},
  };
  for (const auto& row : rows) {
    auto r = osTargetFromJson(json::parse(row.body));
    if (!row.problemStart) {
      EXPECT_EQ(r.index(), 0u) << row.body;
    } else {
      ASSERT_EQ(r.index(), 1u) << row.body;
      EXPECT_EQ(std::get<std::string>(r).rfind(row.problemStart, 0), 0u) << row.body << ": " << std::get<std::string>(r);
    }
  }
}

TEST(OsTarget, JsonRoundTrip) {
  OsTarget t{"15.2", "24C101", 1768068000};  // 2026-01-10T18:00:00Z
  json j = osTargetJson(t, "canary");
  EXPECT_EQ(j["deadline"], "2026-01-10T18:00:00Z");
  EXPECT_EQ(j["ring"], "canary");
  j.erase("ring");
  EXPECT_EQ(std::get<OsTarget>(osTargetFromJson(j)), t);
  EXPECT_TRUE(osTargetJson(OsTarget{"15.2", {}, {}})["build"].is_null());
}

TEST(OsTarget, DeclarationOnlyForTheDevicesRing) {
  const std::vector<Ring> rings = {{"canary", {"it"}, {}, {}}, {"broad", {}, 100.0, {}}};
  std::map<std::string, OsTarget, std::less<>> targets{{"canary", OsTarget{"15.2", {}, 1768068000}}};
  Device it, staff;
  it.serial = "C02AAAAAAAA1";
  it.groups = {"it"};
  staff.serial = "C02AAAAAAAA2";
  staff.groups = {"staff"};
  auto d = osTargetDeclaration(it, rings, targets);
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)["Type"], std::string(kSoftwareUpdateDeclarationType));
  EXPECT_EQ((*d)["Payload"]["TargetOSVersion"], "15.2");
  EXPECT_EQ((*d)["Payload"]["TargetLocalDateTime"], "2026-01-10T18:00:00");
  EXPECT_FALSE((*d)["Payload"].contains("TargetBuildVersion"));
  EXPECT_FALSE(osTargetDeclaration(staff, rings, targets));
  targets["broad"] = OsTarget{"15.1", "24B83", {}};
  auto s = osTargetDeclaration(staff, rings, targets);
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)["Payload"]["TargetBuildVersion"], "24B83");
  EXPECT_FALSE((*s)["Payload"].contains("TargetLocalDateTime"));
  EXPECT_FALSE(osTargetDeclaration(it, {}, targets));  // no rings: no OS ring
}

}  // namespace
}  // namespace orchard::catalog
