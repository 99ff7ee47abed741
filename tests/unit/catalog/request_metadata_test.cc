// Tests for catalog/request_metadata: query-parameter overrides (each key,
// each kind of bad value, the source record), the JSON body (types, bounds
// on size and depth, unknown keys, parse errors that quote bytes), that a
// refused call leaves the record untouched, and the manifest defaults for
// a .pkg and a .dmg. Hard part: checking "names the field" precisely:
// every problem must start with the field (or "metadata: ") and be
// printable ASCII, whatever bytes the request held.
#include "catalog/request_metadata.h"

#include <gtest/gtest.h>

#include <string>

namespace orchard::catalog {
namespace {

void expectPrintable(const std::string& s) {
  for (unsigned char c : s) ASSERT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << int(c) << " in: " << s;
}

// A call's verdict: accepted (problemPrefix null) or refused with a problem
// that starts with problemPrefix, is printable and left the record as it was.
void expectVerdict(const std::optional<std::string>& p, const char* problemPrefix, const PackageMetadata& m,
                   const PackageMetadata& before) {
  if (problemPrefix == nullptr) {
    ASSERT_FALSE(p.has_value()) << *p;
    return;
  }
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->rfind(problemPrefix, 0), 0u) << *p;
  expectPrintable(*p);
  EXPECT_EQ(m, before);  // nothing applied, not even the fields before the bad one
}

// A record as the file reader leaves it, for the overrides to change.
PackageMetadata fromFile() {
  PackageMetadata m;
  m.title = "from file";
  m.packageId = "com.example.pkg";
  m.source = {{"title", "Distribution"}, {"package_id", "PackageInfo"}};
  return m;
}

struct OverrideCase {
  std::string_view key;
  std::string_view value;
  const char* problemPrefix;  // nullptr when accepted
};

class ApplyOverrideTest : public ::testing::TestWithParam<OverrideCase> {};

TEST_P(ApplyOverrideTest, Table) {
  const OverrideCase& c = GetParam();
  PackageMetadata m = fromFile();
  const auto p = applyOverride(&m, c.key, c.value);
  expectVerdict(p, c.problemPrefix, m, fromFile());
  if (!p) {
    EXPECT_EQ(m.source.at(std::string(c.key)), "request");
  }
}

const std::string k256(256, 'x');
const std::string k257(257, 'x');

INSTANTIATE_TEST_SUITE_P(
    Cases, ApplyOverrideTest,
    ::testing::Values(
        OverrideCase{"title", "Google Chrome", nullptr},
        OverrideCase{"title", "Café 日本語 (Intel) & more", nullptr},
        OverrideCase{"bundle_id", "com.google.Chrome", nullptr},
        OverrideCase{"bundle_version", "128.0.6613.120", nullptr},
        OverrideCase{"package_id", "com.google.Chrome.pkg", nullptr},
        OverrideCase{"package_version", "1.2.3-beta+45", nullptr},
        OverrideCase{"min_os", "14", nullptr},
        OverrideCase{"min_os", "14.0", nullptr},
        OverrideCase{"max_os", "15.99", nullptr},
        OverrideCase{"max_os", "10.15.7.1", nullptr},
        OverrideCase{"archs", "arm64", nullptr},
        OverrideCase{"archs", "arm64,x86_64", nullptr},
        OverrideCase{"archs", " x86_64 , arm64 ", nullptr},
        OverrideCase{"title", k256, nullptr},
        // Unknown keys, named in printable form.
        OverrideCase{"color", "red", "color: unknown"},
        OverrideCase{"Title", "x", "Title: unknown"},
        OverrideCase{"", "x", ": unknown"},
        OverrideCase{"ti\x1btle", "x", "ti\\x1btle: unknown"},
        OverrideCase{"\xC0\xAF", "x", "\\xc0\\xaf: unknown"},
        // Bad values name the key.
        OverrideCase{"title", "", "title: is empty"},
        OverrideCase{"title", k257, "title: is 257 bytes"},
        OverrideCase{"title", "a\nb", "title: contains the control character U+000A"},
        OverrideCase{"bundle_id", std::string_view("a\0b", 3), "bundle_id: contains the control character U+0000"},
        OverrideCase{"package_id", "a\x7f", "package_id: contains the control"},
        OverrideCase{"package_version", "1\xC2\x85", "package_version: contains the control character U+0085"},
        OverrideCase{"bundle_version", "1\xC0\xAE", "bundle_version: is not valid UTF-8"},
        OverrideCase{"min_os", "fourteen", "min_os: is not a dotted numeric"},
        OverrideCase{"min_os", "14.", "min_os: is not a dotted numeric"},
        OverrideCase{"min_os", ".14", "min_os: is not a dotted numeric"},
        OverrideCase{"min_os", "14..1", "min_os: is not a dotted numeric"},
        OverrideCase{"min_os", "14.0b", "min_os: is not a dotted numeric"},
        OverrideCase{"min_os", "-14", "min_os: is not a dotted numeric"},
        OverrideCase{"max_os", "1.2.3.4.5", "max_os: is not a dotted numeric version (more than 4"},
        OverrideCase{"max_os", "1234567890", "max_os: is not a dotted numeric version (a component"},
        OverrideCase{"max_os", "", "max_os: is empty"},
        OverrideCase{"archs", "", "archs: is empty"},
        OverrideCase{"archs", "ppc", "archs: item 1 (ppc) is not arm64"},
        OverrideCase{"archs", "arm64,", "archs: item 2 () is not"},
        OverrideCase{"archs", "ARM64", "archs: item 1"},
        OverrideCase{"archs", "arm64;x86_64", "archs: item 1"},
        OverrideCase{"archs", "arm64,\x1b", "archs: contains the control"}));

TEST(ApplyOverrideTest, SetsTheFieldAndDropsDuplicateArchs) {
  PackageMetadata m;
  ASSERT_FALSE(applyOverride(&m, "archs", "x86_64,arm64,x86_64"));
  EXPECT_EQ(m.archs, (std::vector<std::string>{"x86_64", "arm64"}));
  ASSERT_FALSE(applyOverride(&m, "min_os", "13.5"));
  ASSERT_FALSE(applyOverride(&m, "bundle_id", "com.example"));
  EXPECT_EQ(m.minOs, "13.5");
  EXPECT_EQ(m.bundleId, "com.example");
  EXPECT_EQ(m.source, (std::map<std::string, std::string>{{"archs", "request"}, {"min_os", "request"},
                                                          {"bundle_id", "request"}}));
}

struct JsonCase {
  std::string body;
  const char* problemPrefix;  // nullptr when accepted
};

class ParseMetadataJsonTest : public ::testing::TestWithParam<JsonCase> {};

TEST_P(ParseMetadataJsonTest, Table) {
  PackageMetadata m = fromFile();
  expectVerdict(parseMetadataJson(GetParam().body, &m), GetParam().problemPrefix, m, fromFile());
}

std::string nested(int depth) { return "{\"title\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}"; }

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseMetadataJsonTest,
    ::testing::Values(
        JsonCase{"{}", nullptr},
        JsonCase{R"({"title":"Chrome","bundle_id":"com.google.Chrome","archs":["arm64","x86_64"]})", nullptr},
        JsonCase{R"({"min_os":"14.0","max_os":"15.99","package_version":"1.2","bundle_version":"1.2"})", nullptr},
        JsonCase{R"( {"title":"Caf\u00e9 [x] {y}"} )", nullptr},
        // Whole-body problems.
        JsonCase{"", "metadata: not JSON"},
        JsonCase{"{", "metadata: not JSON"},
        JsonCase{"{\"title\":\"x\"} trailing", "metadata: not JSON"},
        JsonCase{"{\"title\":\"\xC0\xAF\"}", "metadata: not JSON"},  // nlohmann refuses invalid UTF-8
        JsonCase{"[]", "metadata: must be a JSON object"},
        JsonCase{"\"title\"", "metadata: must be a JSON object"},
        JsonCase{"null", "metadata: must be a JSON object"},
        JsonCase{std::string(kMaxMetadataBodyBytes + 1, ' '), "metadata: body is 65537 bytes"},
        JsonCase{nested(4), "title: must be a string"},  // depth 4 is parsed, then refused by type
        JsonCase{nested(5), "metadata: nested deeper than 4"},
        JsonCase{std::string(100000, '['), "metadata: body is"},
        JsonCase{std::string(1000, '['), "metadata: nested deeper"},
        // Field problems, each naming the field.
        JsonCase{R"({"colour":"red"})", "colour: unknown metadata field"},
        JsonCase{R"({"title":"ok","\u001b":"x"})", "\\x1b: unknown"},
        JsonCase{R"({"title":1})", "title: must be a string"},
        JsonCase{R"({"title":null})", "title: must be a string"},
        JsonCase{R"({"bundle_id":["a"]})", "bundle_id: must be a string"},
        JsonCase{R"({"title":"a\u0000b"})", "title: contains the control character U+0000"},
        JsonCase{R"({"title":"a\u0085b"})", "title: contains the control character U+0085"},
        JsonCase{R"({"title":""})", "title: is empty"},
        JsonCase{R"({"min_os":"Sonoma"})", "min_os: is not a dotted numeric"},
        JsonCase{R"({"min_os":14})", "min_os: must be a string"},
        JsonCase{R"({"archs":"arm64"})", "archs: must be an array"},
        JsonCase{R"({"archs":[]})", "archs: is empty"},
        JsonCase{R"({"archs":["arm64",1]})", "archs: item 2 must be a string"},
        JsonCase{R"({"archs":["arm64,x86_64"]})", "archs: item 1"},
        JsonCase{R"({"archs":["i386"]})", "archs: item 1 (i386) is not"},
        JsonCase{R"({"title":"good","max_os":"x"})", "max_os:"}));

TEST(ParseMetadataJsonTest, AppliesAsRequestOverrides) {
  PackageMetadata m;
  m.title = "From Distribution";
  m.source["title"] = "Distribution";
  ASSERT_FALSE(parseMetadataJson(R"({"title":"Mine","archs":["arm64","arm64"],"max_os":"15"})", &m));
  EXPECT_EQ(m.title, "Mine");
  EXPECT_EQ(m.archs, std::vector<std::string>{"arm64"});
  EXPECT_EQ(m.maxOs, "15");
  EXPECT_EQ(m.source.at("title"), "request");
  EXPECT_EQ(m.source.at("archs"), "request");
  EXPECT_EQ(m.source.at("max_os"), "request");
}

struct CompleteCase {
  const char* label;
  PackageMetadata in;
  bool fromPackageFile;
  const char* wantTitle;
  const char* wantBundleId;
  const char* wantBundleVersion;
  std::map<std::string, std::string> wantSource;
  bool wantProblem;
};

void PrintTo(const CompleteCase& c, std::ostream* os) { *os << c.label; }

class CompleteMetadataTest : public ::testing::TestWithParam<CompleteCase> {};

TEST_P(CompleteMetadataTest, Table) {
  const CompleteCase& c = GetParam();
  PackageMetadata m = c.in;
  const auto p = completeMetadata(&m, "chrome", "128.0", c.fromPackageFile);
  EXPECT_EQ(m.title, c.wantTitle);
  EXPECT_EQ(m.bundleId, c.wantBundleId);
  EXPECT_EQ(m.bundleVersion, c.wantBundleVersion);
  EXPECT_EQ(m.source, c.wantSource);
  EXPECT_FALSE(m.bundleVersion.empty());
  EXPECT_EQ(p.has_value(), c.wantProblem);
  if (p) {
    EXPECT_EQ(p->rfind("bundle_id: ", 0), 0u) << *p;
  }
}

PackageMetadata md(std::string title, std::string bundleId, std::string bundleVersion, std::string packageId,
                   std::string packageVersion, std::map<std::string, std::string> source = {}) {
  PackageMetadata m;
  m.title = std::move(title);
  m.bundleId = std::move(bundleId);
  m.bundleVersion = std::move(bundleVersion);
  m.packageId = std::move(packageId);
  m.packageVersion = std::move(packageVersion);
  m.source = std::move(source);
  return m;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CompleteMetadataTest,
    ::testing::Values(
        CompleteCase{"pkg_everything_read", md("Chrome", "com.google.Chrome", "128.0.1", "com.google.pkg", "128.0.1"),
                     true, "Chrome", "com.google.Chrome", "128.0.1", {}, false},
        CompleteCase{"pkg_ids_from_package_info",
                     md("", "", "", "com.google.pkg", "128.0.2", {{"package_id", "PackageInfo"}, {"package_version", "PackageInfo"}}),
                     true, "chrome", "com.google.pkg", "128.0.2",
                     {{"title", "name"}, {"bundle_id", "PackageInfo"}, {"bundle_version", "PackageInfo"},
                      {"package_id", "PackageInfo"}, {"package_version", "PackageInfo"}},
                     false},
        CompleteCase{"pkg_without_sources", md("", "", "", "com.google.pkg", "9"), true, "chrome", "com.google.pkg", "9",
                     {{"title", "name"}, {"bundle_id", "package_id"}, {"bundle_version", "package_version"}}, false},
        CompleteCase{"pkg_version_from_path", md("T", "", "", "com.x", ""), true, "T", "com.x", "128.0",
                     {{"bundle_id", "package_id"}, {"bundle_version", "version"}}, false},
        CompleteCase{"pkg_without_any_id", md("T", "", "", "", ""), true, "T", "", "128.0", {{"bundle_version", "version"}},
                     true},
        CompleteCase{"dmg_with_request_id", md("", "com.zoom", "", "", "", {{"bundle_id", "request"}}), false, "chrome",
                     "com.zoom", "128.0", {{"title", "name"}, {"bundle_id", "request"}, {"bundle_version", "version"}},
                     false},
        CompleteCase{"dmg_without_bundle_id", md("", "", "", "", ""), false, "chrome", "", "128.0",
                     {{"title", "name"}, {"bundle_version", "version"}}, true},
        CompleteCase{"dmg_package_id_is_not_used", md("T", "", "5", "com.pkgid", ""), false, "T", "", "5", {}, true}));

}  // namespace
}  // namespace orchard::catalog
