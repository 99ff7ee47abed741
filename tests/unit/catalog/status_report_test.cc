// Tests for catalog/status_report: the forwarded DDM status items as a
// table of bodies (Apple's nested StatusItems, an MDM's flat keys, states
// in any case, entries that name nothing, unknown keys kept, refusals), and
// the declaration Identifier read back to a package name (the inverse of
// packageDeclarationIdentifier, canonical spellings only).
#include "catalog/status_report.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "catalog/declarations.h"

namespace orchard::catalog {
namespace {

struct Row {
  const char* what;
  std::string body;
  std::vector<PackageStatus> packages;
  std::string installState, pendingVersion, failureReason;
  size_t skipped = 0;
};

TEST(StatusReport, Table) {
  const std::vector<Row> rows = {
      {"Apple's nested StatusItems",
       R"({"StatusItems": {"package": {"list": [{"identifier": "org.orchard.package.Firefox", "version": "128.0",
           "state": "installed"}]}, "softwareupdate": {"install-state": "downloading",
           "pending-version": {"os-version": "15.1", "build-version": "24B83"},
           "failure-reason": {"count": 2, "reason": "no space"}}}})",
       {{"org.orchard.package.Firefox", "", "", "128.0", PackageState::Installed, ""}},
       "downloading", "15.1", "no space"},
      {"an MDM's flat keys, states in any case",
       R"({"package.list": [{"identifier": "a", "state": "FAILED", "reasons": [{"code": "Error.X"}]},
           {"bundle-id": "com.b", "short-version": "2", "state": "Downloading"}],
           "softwareupdate.install-state": "idle", "softwareupdate.pending-version": "15.2"})",
       {{"a", "", "", "", PackageState::Failed, R"([{"code":"Error.X"}])"},
        {"", "com.b", "", "2", PackageState::Downloading, ""}},
       "idle", "15.2", ""},
      {"entries naming nothing are skipped, an unknown state kept as other",
       R"({"package.list": [{"state": "installed"}, 3, {"name": "Zoom", "state": "weird"}]})",
       {{"", "", "Zoom", "", PackageState::Other, ""}}, "", "", "", 2},
      {"unknown keys only", R"({"device.model.family": "Mac", "x": {"y": [1, 2]}})", {}, "", "", ""},
      {"package.list not a list", R"({"package.list": {"identifier": "a"}})", {}, "", "", ""},
      {"failure reason without a reason field is its JSON",
       R"({"softwareupdate.failure-reason": {"count": 1}})", {}, "", "", R"({"count":1})"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    auto r = parseStatusReport(row.body);
    ASSERT_TRUE(std::holds_alternative<StatusReport>(r)) << std::get<std::string>(r);
    const auto& s = std::get<StatusReport>(r);
    EXPECT_EQ(s.packages, row.packages);
    EXPECT_EQ(s.installState, row.installState);
    EXPECT_EQ(s.pendingVersion, row.pendingVersion);
    EXPECT_EQ(s.failureReason, row.failureReason);
    EXPECT_EQ(s.skipped, row.skipped);
    EXPECT_EQ(s.raw, nlohmann::json::parse(row.body));  // kept verbatim, unknown keys and all
  }
}

TEST(StatusReport, Refusals) {
  for (const char* body : {"", "[]", "\"x\"", "{", "null", "12"}) {
    auto r = parseStatusReport(body);
    ASSERT_TRUE(std::holds_alternative<std::string>(r)) << body;
    EXPECT_EQ(std::get<std::string>(r).rfind("status: ", 0), 0u);
  }
  std::string big = R"({"x": ")" + std::string(kMaxStatusBody, 'a') + R"("})";
  EXPECT_TRUE(std::holds_alternative<std::string>(parseStatusReport(big)));
}

TEST(StatusReport, StateNames) {
  for (auto s : {PackageState::Downloading, PackageState::Installing, PackageState::Installed, PackageState::Failed})
    EXPECT_EQ(packageStateFrom(packageStateName(s)), s);
  EXPECT_EQ(packageStateFrom("Installed"), PackageState::Installed);
  EXPECT_EQ(packageStateFrom(""), PackageState::Other);
}

TEST(PackageNameFromIdentifier, InverseOfTheDeclarationIdentifier) {
  for (const char* name : {"Firefox", "Google Chrome", "a_b", "x.y-z", "Ünï"})
    EXPECT_EQ(packageNameFromIdentifier(packageDeclarationIdentifier(name)), std::optional<std::string>(name)) << name;
  for (const char* id : {"", "org.orchard.package.", "com.other.Firefox", "org.orchard.package.a_2", "org.orchard.package.a_zz",
                         "org.orchard.package.a_41", "org.orchard.package.a b", "org.orchard.package.a_2f"})
    EXPECT_EQ(packageNameFromIdentifier(id), std::nullopt) << id;
}

}  // namespace
}  // namespace orchard::catalog
