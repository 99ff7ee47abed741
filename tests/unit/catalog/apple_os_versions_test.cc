// Tests for catalog/apple/os_versions.h: a feed of the real shape (every set
// taken, every field read), the empty lists Apple has served (they parse,
// with no macOS release), entries with wrong types or unusable values
// skipped one by one while the rest is kept, texts that are not a feed
// refused, and every bound (bytes, depth, releases, devices) refusing the
// whole feed instead of cutting it short. Then knows(), knowsBuild() and
// versions(), which the OS-target check relies on.
#include "catalog/apple/os_versions.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace orchard::catalog::apple {
namespace {

// The shape of gdmf.apple.com/v2/pmv (trimmed: real lists are longer).
const char* const kRealShape = R"feed({
  "PublicAssetSets": {
    "iOS": [
      {"ProductVersion": "18.1.1", "Build": "22B91", "PostingDate": "2024-11-19",
       "ExpirationDate": "2025-02-24", "SupportedDevices": ["iPhone17,1", "iPad16,3"]}
    ],
    "macOS": [
      {"ProductVersion": "15.1.1", "Build": "24B91", "PostingDate": "2024-11-19",
       "ExpirationDate": "2025-02-24", "SupportedDevices": ["J132AP", "Mac-1E7E29AD0135F9BC"]},
      {"ProductVersion": "14.7.1", "Build": "23H222", "PostingDate": "2024-10-28",
       "ExpirationDate": "2025-02-24", "SupportedDevices": ["J132AP"]}
    ]
  },
  "AssetSets": {
    "macOS": [
      {"ProductVersion": "15.1", "Build": "24B83", "PostingDate": "2024-10-28",
       "ExpirationDate": "2025-01-28", "SupportedDevices": ["J132AP"]},
      {"ProductVersion": "15.1.1", "Build": "24B91", "PostingDate": "2024-11-19",
       "ExpirationDate": "2025-02-24", "SupportedDevices": ["J132AP"]}
    ]
  },
  "PublicBackgroundSecurityImprovements": {
    "macOS": [{"ProductVersion": "26.1", "ProductVersionExtra": "(a)", "Build": "25B78a",
               "PostingDate": "2025-11-20", "SupportedDevices": ["J132AP"]}]
  },
  "PublicRapidSecurityResponses": {
    "iOS": [{"ProductVersion": "16.5.1", "ProductVersionExtra": "(c)", "Build": "20F770750d",
             "PostingDate": "2023-07-12", "ExpirationDate": "2023-10-10", "SupportedDevices": []}]
  }
})feed";

TEST(OsVersionsTest, ReadsEverySetAndField) {
  auto f = parseOsVersionFeed(kRealShape);
  ASSERT_TRUE(f.ok()) << f.error().message();
  ASSERT_EQ(f->releases.size(), 7u);
  EXPECT_EQ(f->skipped, 0u);
  const OsRelease& mac = f->releases[1];
  EXPECT_EQ(mac.set, "PublicAssetSets");
  EXPECT_EQ(mac.platform, "macOS");
  EXPECT_EQ(mac.version, "15.1.1");
  EXPECT_EQ(mac.build, "24B91");
  EXPECT_EQ(mac.postingDate, "2024-11-19");
  EXPECT_EQ(mac.expirationDate, "2025-02-24");
  EXPECT_EQ(mac.supportedDevices, (std::vector<std::string>{"J132AP", "Mac-1E7E29AD0135F9BC"}));
  EXPECT_EQ(f->releases[0].platform, "iOS");
  EXPECT_EQ(f->releases[3].set, "AssetSets");
  const OsRelease& bsi = f->releases[5];
  EXPECT_EQ(bsi.set, "PublicBackgroundSecurityImprovements");
  EXPECT_EQ(bsi.versionExtra, "(a)");
  EXPECT_EQ(bsi.expirationDate, "");
  EXPECT_EQ(f->releases[6].set, "PublicRapidSecurityResponses");
  EXPECT_TRUE(f->releases[6].supportedDevices.empty());
  // The public and MDM sets' macOS releases; not the security improvement.
  EXPECT_EQ(f->macReleases(), 4u);
}

TEST(OsVersionsTest, KnowsWhatThePublicOrMdmSetLists) {
  auto f = parseOsVersionFeed(kRealShape);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->knows("macOS", "15.1.1"));
  EXPECT_TRUE(f->knows("macOS", "15.1"));    // the MDM set only
  EXPECT_TRUE(f->knows("macOS", "15.1.0"));  // compared as versions
  EXPECT_TRUE(f->knows("macOS", "14.7.1"));
  EXPECT_FALSE(f->knows("macOS", "15.2"));
  EXPECT_FALSE(f->knows("macOS", "18.1.1"));  // an iOS version
  EXPECT_FALSE(f->knows("macOS", "26.1"));    // a security improvement is no OS version to install
  EXPECT_TRUE(f->knows("iOS", "18.1.1"));
  EXPECT_TRUE(f->knowsBuild("macOS", "15.1.1", "24B91"));
  EXPECT_TRUE(f->knowsBuild("macOS", "15.1.1", ""));
  EXPECT_FALSE(f->knowsBuild("macOS", "15.1.1", "24B83"));  // 15.1's build
  EXPECT_FALSE(f->knowsBuild("macOS", "15.2", "24C101"));
  EXPECT_EQ(f->versions("macOS"), (std::vector<std::string>{"15.1.1", "15.1", "14.7.1"}));

  // A version listed without any build: a given build cannot be checked, so it passes.
  auto noBuilds = parseOsVersionFeed(R"({"AssetSets": {"macOS": [{"ProductVersion": "15.3"}]}})");
  ASSERT_TRUE(noBuilds.ok());
  EXPECT_TRUE(noBuilds->knowsBuild("macOS", "15.3", "24D60"));
}

struct Row {
  const char* name;
  const char* json;
  size_t releases;  // kept
  size_t skipped;
  size_t mac;       // macReleases()
};

// Texts that are feeds: what is kept and what is skipped.
const Row kRows[] = {
    {"empty object", "{}", 0, 0, 0},
    {"empty sets (as Apple has served)", R"({"PublicAssetSets": {}, "AssetSets": {}})", 0, 0, 0},
    {"empty platform lists", R"({"PublicAssetSets": {"macOS": []}, "AssetSets": {"macOS": []}})", 0, 0, 0},
    {"only iOS", R"({"PublicAssetSets": {"iOS": [{"ProductVersion": "18.1"}]}})", 1, 0, 0},
    {"only a security improvement",
     R"({"PublicBackgroundSecurityImprovements": {"macOS": [{"ProductVersion": "26.1"}]}})", 1, 0, 0},
    {"minimal release", R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2"}]}})", 1, 0, 1},
    {"unknown fields and sets are walked over",
     R"({"Extra": [1, {"a": [2]}], "PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "Notes": {"x": [1, 2]},
        "Size": 12}], "Count": 3}})",
     1, 0, 1},
    {"optional fields given as null",
     R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "Build": null, "SupportedDevices": null}]}})", 1, 0,
     1},
    {"a set that is not an object is ignored", R"({"PublicAssetSets": [1, 2], "AssetSets": "none"})", 0, 0, 0},
    {"a platform that is not an array is ignored", R"({"PublicAssetSets": {"macOS": {"ProductVersion": "15.2"}}})", 0,
     0, 0},
    {"releases that are not objects", R"({"PublicAssetSets": {"macOS": [1, "15.2", null, [], {"ProductVersion": "15.2"}]}})",
     1, 4, 1},
    {"ProductVersion missing", R"({"PublicAssetSets": {"macOS": [{"Build": "24C101"}, {"ProductVersion": "15.2"}]}})",
     1, 1, 1},
    {"ProductVersion a number", R"({"PublicAssetSets": {"macOS": [{"ProductVersion": 15.2}]}})", 0, 1, 0},
    {"ProductVersion null", R"({"PublicAssetSets": {"macOS": [{"ProductVersion": null}]}})", 0, 1, 0},
    {"ProductVersion not dotted numeric",
     R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2 beta"}, {"ProductVersion": ""},
        {"ProductVersion": "1.2.3.4.5"}, {"ProductVersion": "15.2"}]}})",
     1, 3, 1},
    {"Build a number", R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "Build": 24}]}})", 0, 1, 0},
    {"Build with a space", R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "Build": "24 C"}]}})", 0, 1, 0},
    {"PostingDate an object",
     R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "PostingDate": {"y": 2024}}]}})", 0, 1, 0},
    {"ExpirationDate with a control character",
     "{\"PublicAssetSets\": {\"macOS\": [{\"ProductVersion\": \"15.2\", \"ExpirationDate\": \"2025\\u0001\"}]}}", 0, 1,
     0},
    {"SupportedDevices a string",
     R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "SupportedDevices": "J132AP"}]}})", 0, 1, 0},
    {"a device id a number",
     R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "SupportedDevices": ["J132AP", 7]}]}})", 0, 1, 0},
    {"a device id an array",
     R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "SupportedDevices": [["J132AP"]]}]}})", 0, 1, 0},
    {"a device id with a space",
     R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "SupportedDevices": ["J132 AP"]}]}})", 0, 1, 0},
    {"a bad entry leaves its neighbours",
     R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2"}, {"ProductVersion": "15.1", "Build": []},
        {"ProductVersion": "15.0"}]}, "AssetSets": {"macOS": [{"ProductVersion": "14.7"}]}})",
     3, 1, 3},
    {"a set name with a control character is ignored",
     "{\"Public\\u0007Sets\": {\"macOS\": [{\"ProductVersion\": \"15.2\"}]}}", 0, 0, 0},
};

TEST(OsVersionsTest, Table) {
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.name);
    auto f = parseOsVersionFeed(row.json);
    ASSERT_TRUE(f.ok()) << f.error().message();
    EXPECT_EQ(f->releases.size(), row.releases);
    EXPECT_EQ(f->skipped, row.skipped);
    EXPECT_EQ(f->macReleases(), row.mac);
  }
}

struct Refusal {
  const char* name;
  std::string json;
  const char* context;
};

TEST(OsVersionsTest, RefusesWhatIsNotAFeed) {
  const Refusal rows[] = {
      {"empty text", "", "os feed: not valid JSON"},
      {"truncated", R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2"})", "os feed: not valid JSON"},
      {"HTML error page", "<html><body>503</body></html>", "os feed: not valid JSON"},
      {"trailing garbage", R"({} {})", "os feed: not valid JSON"},
      {"invalid UTF-8", "{\"PublicAssetSets\": {\"mac\xff\": []}}", "os feed: not valid JSON"},
      {"an array", R"([{"PublicAssetSets": {}}])", "os feed: not a JSON object"},
      {"a string", R"("PublicAssetSets")", "os feed: not a JSON object"},
      {"null", "null", "os feed: not a JSON object"},
      {"nested too deep", std::string(40, '[') + std::string(40, ']'), "os feed: not a JSON object"},
      {"nested too deep inside", "{\"x\": " + std::string(40, '[') + std::string(40, ']') + "}",
       "os feed: nested too deep"},
  };
  for (const Refusal& row : rows) {
    SCOPED_TRACE(row.name);
    auto f = parseOsVersionFeed(row.json);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code, Errc::Invalid);
    EXPECT_STREQ(f.error().context, row.context);
  }
}

std::string releases(size_t n, size_t devicesEach) {
  std::string s = R"({"PublicAssetSets": {"macOS": [)";
  for (size_t i = 0; i < n; ++i) {
    s += (i ? "," : "");
    s += R"({"ProductVersion": "15.)" + std::to_string(i) + R"(", "SupportedDevices": [)";
    for (size_t d = 0; d < devicesEach; ++d) s += (d ? ",\"J" : "\"J") + std::to_string(d) + "AP\"";
    s += "]}";
  }
  return s + "]}}";
}

TEST(OsVersionsTest, HugeArraysAreBoundedAndRefusedWhole) {
  OsFeedLimits small;
  small.maxReleases = 10;
  small.maxDevicesPerRelease = 5;
  small.maxDevices = 20;
  ASSERT_TRUE(parseOsVersionFeed(releases(10, 2), small).ok());
  auto many = parseOsVersionFeed(releases(11, 0), small);
  ASSERT_FALSE(many.ok());
  EXPECT_STREQ(many.error().context, "os feed: more releases than the limit");
  auto wide = parseOsVersionFeed(releases(1, 6), small);
  ASSERT_FALSE(wide.ok());
  EXPECT_STREQ(wide.error().context, "os feed: a release lists more supported devices than the limit");
  auto total = parseOsVersionFeed(releases(5, 5), small);
  ASSERT_FALSE(total.ok());
  EXPECT_STREQ(total.error().context, "os feed: more supported devices than the limit");
  ASSERT_TRUE(parseOsVersionFeed(releases(4, 5), small).ok());

  // With the default limits: a huge array of scalars where releases belong
  // costs a count, not memory; a huge device list is refused.
  std::string scalars = R"({"PublicAssetSets": {"macOS": [)";
  for (int i = 0; i < 200000; ++i) scalars += i ? ",0" : "0";
  scalars += "]}}";
  auto s = parseOsVersionFeed(scalars);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->skipped, 200000u);
  EXPECT_TRUE(s->releases.empty());
  auto devices = parseOsVersionFeed(releases(1, 5000));
  ASSERT_FALSE(devices.ok());
  EXPECT_EQ(devices.error().code, Errc::Invalid);

  OsFeedLimits tiny;
  tiny.maxBytes = 64;
  auto big = parseOsVersionFeed(releases(3, 3), tiny);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, Errc::NoSpace);
}

TEST(OsVersionsTest, LongStringsAreSkippedNotKept) {
  const std::string longBuild = std::string(33, 'A');
  const std::string longDevice = std::string(65, 'J');
  auto f = parseOsVersionFeed(R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "Build": ")" + longBuild +
                              R"("}, {"ProductVersion": "15.1", "SupportedDevices": [")" + longDevice +
                              R"("]}, {"ProductVersion": "15.0", "Build": ")" + std::string(32, 'B') + R"("}]}})");
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->releases.size(), 1u);
  EXPECT_EQ(f->releases[0].version, "15.0");
  EXPECT_EQ(f->skipped, 2u);
}

}  // namespace
}  // namespace orchard::catalog::apple
