// Tests for catalog/manifest: the written XML is parsed back with libplist
// and every key and type is checked (exactly the keys the schema wants, no
// whole-file sha256, sha256-size an integer); strings that need escaping
// (<, &, ", ]]>, UTF-8, a URL with &) survive the round trip; bytes XML
// cannot carry still give a document that parses; and the URL builders
// encode each segment and tolerate one trailing slash. Hard part: libplist
// 2.2's ownership rules (strings it returns are freed with free(), the
// parsed tree with plist_free), wrapped once in Parsed below.
#include "catalog/manifest.h"

#include <gtest/gtest.h>
#include <plist/plist.h>

#include <cstdlib>
#include <set>
#include <string>

namespace orchard::catalog {
namespace {

class Parsed {
 public:
  explicit Parsed(const std::string& xml) { plist_from_xml(xml.data(), static_cast<uint32_t>(xml.size()), &root_); }
  ~Parsed() {
    if (root_) plist_free(root_);
  }
  Parsed(const Parsed&) = delete;
  Parsed& operator=(const Parsed&) = delete;
  plist_t root() const { return root_; }
  plist_t item() const {
    plist_t items = plist_dict_get_item(root_, "items");
    return items && plist_get_node_type(items) == PLIST_ARRAY && plist_array_get_size(items) == 1
               ? plist_array_get_item(items, 0)
               : nullptr;
  }
  plist_t asset() const {
    plist_t assets = plist_dict_get_item(item(), "assets");
    return assets && plist_array_get_size(assets) == 1 ? plist_array_get_item(assets, 0) : nullptr;
  }
  plist_t metadata() const { return plist_dict_get_item(item(), "metadata"); }

 private:
  plist_t root_ = nullptr;
};

std::set<std::string> keys(plist_t dict) {
  std::set<std::string> out;
  if (!dict || plist_get_node_type(dict) != PLIST_DICT) return out;
  plist_dict_iter it = nullptr;
  plist_dict_new_iter(dict, &it);
  while (true) {
    char* key = nullptr;
    plist_t val = nullptr;
    plist_dict_next_item(dict, it, &key, &val);
    if (!key) break;
    out.insert(key);
    std::free(key);
  }
  std::free(it);
  return out;
}

std::string str(plist_t dict, const char* key) {
  plist_t n = plist_dict_get_item(dict, key);
  if (!n || plist_get_node_type(n) != PLIST_STRING) return "<not a string>";
  char* v = nullptr;
  plist_get_string_val(n, &v);
  std::string out = v ? v : "";
  std::free(v);
  return out;
}

ManifestInput sample() {
  ManifestInput in;
  in.url = "https://orchard.branch.example/pkgs/chrome/128.0.6613.120/Google%20Chrome.pkg";
  in.chunkSha256 = {std::string(64, 'a'), std::string(64, 'b'), std::string(64, 'c')};
  in.bundleId = "com.google.Chrome";
  in.bundleVersion = "128.0.6613.120";
  in.title = "Google Chrome";
  return in;
}

TEST(ManifestTest, EveryKeyAndType) {
  const std::string xml = writeManifest(sample());
  Parsed p(xml);
  ASSERT_NE(p.root(), nullptr) << xml;
  EXPECT_EQ(keys(p.root()), (std::set<std::string>{"items"}));
  ASSERT_NE(p.item(), nullptr);
  EXPECT_EQ(keys(p.item()), (std::set<std::string>{"assets", "metadata"}));

  plist_t asset = p.asset();
  ASSERT_NE(asset, nullptr);
  EXPECT_EQ(keys(asset), (std::set<std::string>{"kind", "url", "sha256-size", "sha256s"}));
  EXPECT_EQ(plist_dict_get_item(asset, "sha256"), nullptr);
  EXPECT_EQ(str(asset, "kind"), "software-package");
  EXPECT_EQ(str(asset, "url"), sample().url);
  plist_t size = plist_dict_get_item(asset, "sha256-size");
  ASSERT_EQ(plist_get_node_type(size), PLIST_UINT);
  uint64_t chunk = 0;
  plist_get_uint_val(size, &chunk);
  EXPECT_EQ(chunk, kChunkSize);
  plist_t hashes = plist_dict_get_item(asset, "sha256s");
  ASSERT_EQ(plist_get_node_type(hashes), PLIST_ARRAY);
  ASSERT_EQ(plist_array_get_size(hashes), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    plist_t h = plist_array_get_item(hashes, i);
    ASSERT_EQ(plist_get_node_type(h), PLIST_STRING);
    char* v = nullptr;
    plist_get_string_val(h, &v);
    EXPECT_EQ(std::string(v), sample().chunkSha256[i]);
    std::free(v);
  }

  plist_t md = p.metadata();
  EXPECT_EQ(keys(md), (std::set<std::string>{"bundle-identifier", "bundle-version", "kind", "title"}));
  EXPECT_EQ(str(md, "bundle-identifier"), "com.google.Chrome");
  EXPECT_EQ(str(md, "bundle-version"), "128.0.6613.120");
  EXPECT_EQ(str(md, "kind"), "software");
  EXPECT_EQ(str(md, "title"), "Google Chrome");
  EXPECT_EQ(xml.find("sizeInBytes"), std::string::npos);
  EXPECT_EQ(xml.find("<key>sha256</key>"), std::string::npos);
}

TEST(ManifestTest, SubtitleOnlyWhenGivenAndChunkSizeAsGiven) {
  ManifestInput in = sample();
  in.subtitle = "Google LLC";
  in.chunkSize = 1u << 20;
  in.chunkSha256.clear();
  Parsed p(writeManifest(in));
  EXPECT_EQ(str(p.metadata(), "subtitle"), "Google LLC");
  uint64_t chunk = 0;
  plist_get_uint_val(plist_dict_get_item(p.asset(), "sha256-size"), &chunk);
  EXPECT_EQ(chunk, 1u << 20);
  EXPECT_EQ(plist_array_get_size(plist_dict_get_item(p.asset(), "sha256s")), 0u);
}

struct EscapeCase {
  const char* title;
  const char* url;
  const char* wantTitle;  // after the round trip
};

class ManifestEscapeTest : public ::testing::TestWithParam<EscapeCase> {};

TEST_P(ManifestEscapeTest, SurvivesTheRoundTrip) {
  ManifestInput in = sample();
  in.title = GetParam().title;
  in.subtitle = GetParam().title;
  in.url = GetParam().url;
  const std::string xml = writeManifest(in);
  Parsed p(xml);
  ASSERT_NE(p.metadata(), nullptr) << xml;
  EXPECT_EQ(str(p.metadata(), "title"), GetParam().wantTitle);
  EXPECT_EQ(str(p.metadata(), "subtitle"), GetParam().wantTitle);
  EXPECT_EQ(str(p.asset(), "url"), GetParam().url);
  EXPECT_EQ(plist_dict_get_item(p.asset(), "sha256"), nullptr);
  // Nothing raw that would end the text early or open markup.
  const size_t body = xml.find("<key>title</key>");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(xml.find("]]>"), std::string::npos) << xml;
  EXPECT_EQ(xml.find("Q<Q"), std::string::npos) << xml;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ManifestEscapeTest,
    ::testing::Values(
        EscapeCase{"Q<Q & \"quoted\" 'single'", "https://h/pkgs/a/1/b.pkg?x=1&y=2", "Q<Q & \"quoted\" 'single'"},
        EscapeCase{"end ]]> of CDATA", "https://h/pkgs/a%26b/1/c.pkg", "end ]]> of CDATA"},
        EscapeCase{"<![CDATA[x]]><!--", "https://h/&amp;", "<![CDATA[x]]><!--"},
        EscapeCase{"Café Übersetzer 日本語 \xF0\x9F\x8D\x8E", "https://h/p", "Café Übersetzer 日本語 \xF0\x9F\x8D\x8E"},
        EscapeCase{"tab\tand\nnewline", "https://h/p", "tab\tand\nnewline"},
        // Bytes XML cannot carry become U+FFFD; the document still parses.
        EscapeCase{"bell\x07 esc\x1b", "https://h/p", "bell\xEF\xBF\xBD esc\xEF\xBF\xBD"},
        EscapeCase{"bad \xC0\xAF utf8 \xFF", "https://h/p", "bad \xEF\xBF\xBD\xEF\xBF\xBD utf8 \xEF\xBF\xBD"}));

struct UrlCase {
  const char* base;
  const char* want;
};

class PackageUrlTest : public ::testing::TestWithParam<UrlCase> {};

TEST_P(PackageUrlTest, EncodesEachSegment) {
  EXPECT_EQ(packageUrl(GetParam().base, "Google Chrome", "128.0+1", "Google Chrome.pkg"), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PackageUrlTest,
    ::testing::Values(
        UrlCase{"https://orchard.example", "https://orchard.example/pkgs/Google%20Chrome/128.0%2B1/Google%20Chrome.pkg"},
        UrlCase{"https://orchard.example/", "https://orchard.example/pkgs/Google%20Chrome/128.0%2B1/Google%20Chrome.pkg"},
        UrlCase{"http://10.0.0.5:8080/orchard", "http://10.0.0.5:8080/orchard/pkgs/Google%20Chrome/128.0%2B1/Google%20Chrome.pkg"}));

TEST(ManifestUrlTest, EncodesAndAddsPlist) {
  EXPECT_EQ(manifestUrl("https://o.example", "Zoom (Intel)", "6.1.5"), "https://o.example/manifests/Zoom%20%28Intel%29/6.1.5.plist");
  EXPECT_EQ(manifestUrl("https://o.example/", "a/b", "1 2"), "https://o.example/manifests/a%2Fb/1%202.plist");
}

}  // namespace
}  // namespace orchard::catalog
