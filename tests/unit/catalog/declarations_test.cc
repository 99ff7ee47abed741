// Tests for catalog/declarations (and the SHA-256 helper under them): the
// Identifier's escape as a table (stable, injective, safe characters), the
// package declaration's exact shape with InstallBehavior always present and
// surviving a dump/parse round trip, the ServerToken changing exactly when
// the payload changes (both ways: equal payloads equal tokens, each field
// change a new token), the software-update declaration's optional fields,
// and localDateTime across midnight, offsets and the epoch. The hard part
// is "exactly when": the token must not move with key order or with the
// identifier, so the test builds the same payload in two key orders.
#include "catalog/declarations.h"

#include <gtest/gtest.h>

#include <string>

#include "catalog/digest.h"

namespace orchard::catalog {
namespace {

using nlohmann::json;

TEST(Digest, KnownVector) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const unsigned char b[] = {0x00, 0x0f, 0xa5, 0xff};
  EXPECT_EQ(hexLower(b, sizeof b), "000fa5ff");
}

TEST(Declarations, IdentifierTable) {
  const struct { const char* name; const char* id; } rows[] = {
      {"Firefox", "org.orchard.package.Firefox"},
      {"Google Chrome", "org.orchard.package.Google_20Chrome"},
      {"Google_Chrome", "org.orchard.package.Google_5FChrome"},  // '_' escaped: no collision
      {"zoom.us-5", "org.orchard.package.zoom.us-5"},
      {"a/b", "org.orchard.package.a_2Fb"},
      {"Caf\xc3\xa9", "org.orchard.package.Caf_C3_A9"},
  };
  for (const auto& r : rows) EXPECT_EQ(packageDeclarationIdentifier(r.name), r.id) << r.name;
}

TEST(Declarations, PackageShape) {
  json d = packageDeclaration("Google Chrome", "https://box.example/m/Google%20Chrome/128.0.plist", "required");
  EXPECT_EQ(d["Type"], "com.apple.configuration.package");
  EXPECT_EQ(d["Identifier"], "org.orchard.package.Google_20Chrome");
  EXPECT_EQ(d["Payload"]["ManifestURL"], "https://box.example/m/Google%20Chrome/128.0.plist");
  EXPECT_EQ(d["Payload"]["InstallBehavior"]["Install"], "Required");
  EXPECT_EQ(d["ServerToken"], sha256Hex(d["Payload"].dump()));
  EXPECT_EQ(d["ServerToken"].get<std::string>().size(), 64u);
  json parsed = json::parse(d.dump());
  ASSERT_TRUE(parsed["Payload"].contains("InstallBehavior"));
  EXPECT_EQ(packageDeclaration("x", "u", "optional")["Payload"]["InstallBehavior"]["Install"], "Optional");
  EXPECT_EQ(packageDeclaration("x", "u", "Required")["Payload"]["InstallBehavior"]["Install"], "Required");
}

TEST(Declarations, ServerTokenChangesExactlyWhenThePayloadDoes) {
  const std::string base = packageDeclaration("Firefox", "https://b/m/1.plist", "optional")["ServerToken"];
  // Same payload: same token, every time and whatever the package's name.
  EXPECT_EQ(packageDeclaration("Firefox", "https://b/m/1.plist", "optional")["ServerToken"], base);
  EXPECT_EQ(packageDeclaration("Other", "https://b/m/1.plist", "optional")["ServerToken"], base);
  EXPECT_EQ(packageDeclaration("Firefox", "https://b/m/1.plist", "OPTIONAL")["ServerToken"], base);
  // Key order does not matter: the canonical form sorts keys.
  json a = json::object(), b = json::object();
  a["ManifestURL"] = "u";
  a["InstallBehavior"] = {{"Install", "Optional"}};
  b["InstallBehavior"] = {{"Install", "Optional"}};
  b["ManifestURL"] = "u";
  EXPECT_EQ(serverToken(a), serverToken(b));
  // Each change of content: a new token.
  EXPECT_NE(packageDeclaration("Firefox", "https://b/m/2.plist", "optional")["ServerToken"], base);
  EXPECT_NE(packageDeclaration("Firefox", "https://b/m/1.plist", "required")["ServerToken"], base);
}

TEST(Declarations, SoftwareUpdate) {
  json d = softwareUpdateDeclaration("15.2", std::nullopt, std::string("2026-12-10T18:00:00"));
  EXPECT_EQ(d["Type"], "com.apple.configuration.softwareupdate.enforcement.specific");
  EXPECT_EQ(d["Identifier"], "org.orchard.softwareupdate");
  EXPECT_EQ(d["Payload"]["TargetOSVersion"], "15.2");
  EXPECT_FALSE(d["Payload"].contains("TargetBuildVersion"));
  EXPECT_EQ(d["Payload"]["TargetLocalDateTime"], "2026-12-10T18:00:00");
  EXPECT_EQ(d["ServerToken"], sha256Hex(d["Payload"].dump()));

  json withBuild = softwareUpdateDeclaration("15.2", std::string("24C101"), std::string("2026-12-10T18:00:00"));
  EXPECT_EQ(withBuild["Payload"]["TargetBuildVersion"], "24C101");
  EXPECT_NE(withBuild["ServerToken"], d["ServerToken"]);
  EXPECT_EQ(softwareUpdateDeclaration("15.2", std::nullopt, std::string("2026-12-10T18:00:00"))["ServerToken"],
            d["ServerToken"]);
  EXPECT_NE(softwareUpdateDeclaration("15.2", std::nullopt, std::string("2026-12-11T18:00:00"))["ServerToken"],
            d["ServerToken"]);
  EXPECT_NE(softwareUpdateDeclaration("15.3", std::nullopt, std::string("2026-12-10T18:00:00"))["ServerToken"],
            d["ServerToken"]);
  EXPECT_FALSE(softwareUpdateDeclaration("15.2", std::nullopt, std::nullopt)["Payload"].contains("TargetLocalDateTime"));
}

TEST(Declarations, LocalDateTimeTable) {
  const struct { int64_t t; int32_t offset; const char* want; } rows[] = {
      {0, 0, "1970-01-01T00:00:00"},
      {-1, 0, "1969-12-31T23:59:59"},
      {1700000000, 0, "2023-11-14T22:13:20"},
      {1700000000, 3600, "2023-11-14T23:13:20"},
      {1700000000, 7200, "2023-11-15T00:13:20"},     // across midnight forwards
      {1700000000, -23 * 3600, "2023-11-13T23:13:20"},  // and backwards
      {951782400, 0, "2000-02-29T00:00:00"},         // leap day
      {4102444799, 0, "2099-12-31T23:59:59"},
  };
  for (const auto& r : rows) EXPECT_EQ(localDateTime(r.t, r.offset), r.want) << r.t << " " << r.offset;
}

}  // namespace
}  // namespace orchard::catalog
