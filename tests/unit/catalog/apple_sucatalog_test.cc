// catalog/apple/sucatalog (and the plist checks in front of libplist,
// plist_input.h): the content-cache URL form; gunzip with its bound (bombs,
// truncation, concatenated members, trailing bytes); a catalog in Apple's
// shape read field by field from XML, gzip and binary plists; one table of
// hostile products (each skipped, the rest kept) and one of hostile
// documents (each refused: depth, nodes, entity and DTD tricks, the
// constructs where libplist's XML reader and libxml2 disagree, binary
// plists that nest, share, loop or expand); the rewritten copy; and the
// catalog written by tests/blackbox/apple_fixture.py, read with every
// parser (its chunklists verified, one of them failing at chunk 1).
#include "catalog/apple/sucatalog.h"

#include <gtest/gtest.h>
#include <plist/plist.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <variant>
#include <vector>

#include "catalog/apple/chunklist.h"
#include "catalog/apple/plist_input.h"
#include "catalog/apple/product_info.h"

namespace orchard::catalog::apple {
namespace {

// ---- builders ----

std::string gzip(std::string_view in, int level = 6) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

const char* kHead = R"(<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>CatalogVersion</key><integer>2</integer>
  <key>ApplePostURL</key><string>http://swpost.apple.com/stats</string>
  <key>IndexDate</key><date>2024-08-08T09:15:00Z</date>
  <key>Products</key>
  <dict>
)";
const char* kTail = "  </dict>\n</dict>\n</plist>\n";

std::string catalog(const std::string& products) { return kHead + products + kTail; }

const char* kInstallerBody = R"(
      <key>ServerMetadataURL</key><string>https://swcdn.apple.com/content/downloads/41/51/052-96247/x/052-96247.smd</string>
      <key>Packages</key>
      <array>
        <dict>
          <key>Digest</key><string>3f1f4d2e2b5d4c1a0f9e8d7c6b5a493827161504</string>
          <key>Size</key><integer>13338374016</integer>
          <key>MetadataURL</key><string>https://swdist.apple.com/content/downloads/41/51/052-96247/x/InstallAssistant.pkm</string>
          <key>URL</key><string>https://swcdn.apple.com/content/downloads/41/51/052-96247/x/InstallAssistant.pkg</string>
          <key>IntegrityDataURL</key><string>https://swcdn.apple.com/content/downloads/41/51/052-96247/x/InstallAssistant.pkg.integrityDataV1</string>
          <key>IntegrityDataSize</key><integer>38440</integer>
        </dict>
        <dict>
          <key>Size</key><integer>1837</integer>
          <key>URL</key><string>http://swcdn.apple.com:8080/content/downloads/41/51/052-96247/x/BuildManifest.plist?a=1</string>
        </dict>
      </array>
      <key>PostDate</key><date>2024-08-07T17:00:00Z</date>
      <key>Distributions</key>
      <dict>
        <key>English</key><string>https://swdist.apple.com/content/downloads/41/51/052-96247/x/052-96247.English.dist</string>
        <key>en</key><string>https://swdist.apple.com/content/downloads/41/51/052-96247/x/052-96247.en.dist</string>
        <key>fr</key><string>https://swdist.apple.com/content/downloads/41/51/052-96247/x/052-96247.fr.dist</string>
      </dict>
      <key>ExtendedMetaInfo</key>
      <dict>
        <key>InstallAssistantPackageIdentifiers</key>
        <dict>
          <key>SharedSupport</key><string>com.apple.pkg.InstallAssistant.macOSSonoma</string>
        </dict>
        <key>ProductType</key><string>macOS</string>
      </dict>
)";

const char* kUpdateBody = R"(
      <key>Packages</key>
      <array>
        <dict>
          <key>Size</key><integer>5</integer>
          <key>URL</key><string>https://swcdn.apple.com/u/Update.pkg</string>
        </dict>
      </array>
      <key>Distributions</key>
      <dict>
        <key>fr</key><string>https://swdist.apple.com/u/u.fr.dist</string>
        <key>de</key><string>https://swdist.apple.com/u/u.de.dist</string>
      </dict>
)";

std::string product(const std::string& id, const std::string& body) {
  return "    <key>" + id + "</key>\n    <dict>" + body + "    </dict>\n";
}

// A product with one package whose dict is `pkg`, plus `extra` keys.
std::string oneP(const std::string& id, const std::string& pkg, const std::string& extra = "") {
  return product(id, "<key>Packages</key><array><dict>" + pkg + "</dict></array>" + extra);
}

const char* kPkg = "<key>Size</key><integer>10</integer><key>URL</key><string>https://swcdn.apple.com/p.pkg</string>";

std::string toBinary(const std::string& xml) {
  plist_t root = nullptr;
  plist_from_xml(xml.data(), static_cast<uint32_t>(xml.size()), &root);
  EXPECT_NE(root, nullptr);
  char* bin = nullptr;
  uint32_t len = 0;
  plist_to_bin(root, &bin, &len);
  std::string out(bin, len);
  plist_to_bin_free(bin);
  plist_free(root);
  return out;
}

// A hand-made binary plist: objects are raw bytes, references are to
// indexes into `objects`; `root` is the top object.
struct Bplist {
  std::vector<std::string> objects;
  uint8_t refSize = 4;
  uint8_t offsetSize = 4;
  uint64_t root = 0;
  // Overrides for the trailer.
  uint64_t numObjects = 0;
  uint64_t tableOffset = 0;
  // index -> the index whose offset it shares (an alias has no bytes).
  std::vector<std::pair<uint64_t, uint64_t>> aliases;

  static void putBe(std::string* s, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) s->push_back(static_cast<char>(v >> (8 * i) & 0xff));
  }
  uint64_t add(std::string o) {
    objects.push_back(std::move(o));
    return objects.size() - 1;
  }
  std::string marker(uint8_t type, uint64_t count) const {
    std::string s;
    if (count < 15) {
      s.push_back(static_cast<char>(type | count));
    } else {
      s.push_back(static_cast<char>(type | 0xF));
      s.push_back(static_cast<char>(0x13));  // an 8-byte int
      putBe(&s, count, 8);
    }
    return s;
  }
  std::string refs(const std::vector<uint64_t>& r) const {
    std::string s;
    for (uint64_t x : r) putBe(&s, x, refSize);
    return s;
  }
  uint64_t alias(uint64_t of) {
    aliases.emplace_back(objects.size(), of);
    return add("");
  }
  uint64_t array(const std::vector<uint64_t>& r) { return add(marker(0xA0, r.size()) + refs(r)); }
  uint64_t dict(const std::vector<uint64_t>& keys, const std::vector<uint64_t>& values) {
    return add(marker(0xD0, keys.size()) + refs(keys) + refs(values));
  }
  uint64_t ascii(const std::string& s) { return add(marker(0x50, s.size()) + s); }
  uint64_t integer(uint64_t v) {
    std::string s(1, static_cast<char>(0x13));
    putBe(&s, v, 8);
    return add(s);
  }
  std::string bytes() const {
    std::string out = "bplist00";
    std::vector<uint64_t> offsets;
    for (const auto& o : objects) {
      offsets.push_back(out.size());
      out += o;
    }
    const uint64_t table = out.size();
    for (auto [index, of] : aliases) offsets[index] = offsets[of];
    for (uint64_t off : offsets) putBe(&out, off, offsetSize);
    out += std::string(6, '\0');
    out.push_back(static_cast<char>(offsetSize));
    out.push_back(static_cast<char>(refSize));
    putBe(&out, numObjects ? numObjects : objects.size(), 8);
    putBe(&out, root, 8);
    putBe(&out, tableOffset ? tableOffset : table, 8);
    return out;
  }
};

// A binary catalog {Products: {<id>: <value>}} around an object graph.
std::string binaryCatalog(Bplist& b, uint64_t productValue) {
  const uint64_t id = b.ascii("001-X");
  const uint64_t products = b.dict({id}, {productValue});
  const uint64_t key = b.ascii("Products");
  b.root = b.dict({key}, {products});
  return b.bytes();
}

// A rewritten copy read back with libplist directly: parseSuCatalog()
// refuses its URLs by design (they already carry source=).
class Tree {
 public:
  using Step = std::variant<std::string, uint32_t>;
  explicit Tree(const std::string& xml) { plist_from_xml(xml.data(), static_cast<uint32_t>(xml.size()), &root_); }
  ~Tree() {
    if (root_) plist_free(root_);
  }
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;
  bool ok() const { return root_ != nullptr; }

  plist_t at(const std::vector<Step>& path) const {
    plist_t n = root_;
    for (const Step& s : path) {
      if (!n) return nullptr;
      if (const auto* key = std::get_if<std::string>(&s))
        n = plist_get_node_type(n) == PLIST_DICT ? plist_dict_get_item(n, key->c_str()) : nullptr;
      else
        n = plist_get_node_type(n) == PLIST_ARRAY ? plist_array_get_item(n, std::get<uint32_t>(s)) : nullptr;
    }
    return n;
  }
  std::string str(const std::vector<Step>& path) const {
    plist_t n = at(path);
    if (!n || plist_get_node_type(n) != PLIST_STRING) return "<none>";
    char* v = nullptr;
    plist_get_string_val(n, &v);
    std::string out(v ? v : "");
    std::free(v);
    return out;
  }
  uint64_t uint(const std::vector<Step>& path) const {
    plist_t n = at(path);
    uint64_t v = 0;
    if (n && plist_get_node_type(n) == PLIST_UINT) plist_get_uint_val(n, &v);
    return v;
  }
  // The Products keys, sorted.
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    plist_t p = at({"Products"});
    if (!p || plist_get_node_type(p) != PLIST_DICT) return out;
    plist_dict_iter it = nullptr;
    plist_dict_new_iter(p, &it);
    while (true) {
      char* key = nullptr;
      plist_t v = nullptr;
      plist_dict_next_item(p, it, &key, &v);
      if (!v) break;
      out.emplace_back(key);
      std::free(key);
    }
    std::free(it);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  plist_t root_ = nullptr;
};

// ---- contentCacheUrl ----

TEST(AppleContentCacheUrl, TheFormTheBoxRoutes) {
  struct Row {
    const char* url;
    const char* want;
  };
  const Row rows[] = {
      {"https://swcdn.apple.com/a/b.pkg?x=1", "https://box/a/b.pkg?x=1&source=swcdn.apple.com&sourceScheme=https"},
      {"https://swcdn.apple.com/a/b.pkg", "https://box/a/b.pkg?source=swcdn.apple.com&sourceScheme=https"},
      {"http://swcdn.apple.com/a/b.pkg", "https://box/a/b.pkg?source=swcdn.apple.com&sourceScheme=http"},
      {"https://host:8443/a", "https://box/a?source=host:8443&sourceScheme=https"},
      {"HTTPS://SWCDN.Apple.COM/A/B.pkg", "https://box/A/B.pkg?source=swcdn.apple.com&sourceScheme=https"},
      {"https://swcdn.apple.com", "https://box/?source=swcdn.apple.com&sourceScheme=https"},
      {"https://swcdn.apple.com?q=1", "https://box/?q=1&source=swcdn.apple.com&sourceScheme=https"},
      {"https://swcdn.apple.com/a?", "https://box/a?source=swcdn.apple.com&sourceScheme=https"},
      {"https://swcdn.apple.com/a#frag", "https://box/a?source=swcdn.apple.com&sourceScheme=https"},
      {"https://swcdn.apple.com/a?x=1#frag", "https://box/a?x=1&source=swcdn.apple.com&sourceScheme=https"},
      {"https://swcdn.apple.com/a%20b/c.pkg", "https://box/a%20b/c.pkg?source=swcdn.apple.com&sourceScheme=https"},
      {"http://[::1]:8080/x", "https://box/x?source=[::1]:8080&sourceScheme=http"},
      {"https://a/x?resource=1&xsource=2", "https://box/x?resource=1&xsource=2&source=a&sourceScheme=https"},
  };
  for (const Row& r : rows) {
    auto got = contentCacheUrl("https://box", r.url);
    ASSERT_TRUE(got) << r.url;
    EXPECT_EQ(*got, r.want) << r.url;
  }
  // One trailing slash of the box's base is dropped.
  EXPECT_EQ(contentCacheUrl("https://box/", "https://h/p").value_or(""), "https://box/p?source=h&sourceScheme=https");
  EXPECT_EQ(contentCacheUrl("http://box:8080/mirror", "https://h/p").value_or(""),
            "http://box:8080/mirror/p?source=h&sourceScheme=https");
}

TEST(AppleContentCacheUrl, RefusesWhatIsNotAPlainHttpUrl) {
  const std::string tooLong = "https://h/" + std::string(kMaxUrlBytes, 'a');
  const std::string withNul = std::string("https://h/a\0b", 13);
  const char* rows[] = {
      "",
      "swcdn.apple.com/a.pkg",
      "/a/b.pkg",
      "//swcdn.apple.com/a",
      "ftp://swcdn.apple.com/a",
      "file:///etc/passwd",
      "javascript://x/%0aalert(1)",
      "https:/swcdn.apple.com/a",
      "https://",
      "https:///a",
      "https://?x",
      "https://user@swcdn.apple.com/a",
      "https://user:pw@swcdn.apple.com/a",
      "https://evil.example@swcdn.apple.com/a",
      "https://swcdn.apple.com/a b.pkg",
      "https://swcdn.apple.com/a\tb",
      "https://swcdn.apple.com/a\nHost: x",
      "https://swcdn.apple.com/a\r\n",
      "https://swcdn.apple.com/a\x7f",
      "https://swcdn.apple.com/caf\xc3\xa9.pkg",
      "https://swcdn.apple.com/a\"b",
      "https://swcdn.apple.com/a<b>",
      "https://swcdn.apple.com/a\\b",
      "https://swcdn.apple.com/a{b}",
      "https://swcdn.apple.com/a|b",
      "https://swcdn.apple.com:/a",
      "https://swcdn.apple.com:0/a",
      "https://swcdn.apple.com:65536/a",
      "https://swcdn.apple.com:123456/a",
      "https://swcdn.apple.com:-1/a",
      "https://swcdn.apple.com:8a/a",
      "https://swcdn.apple.com:80:80/a",
      "https://swcdn..apple.com/a",
      "https://.swcdn.apple.com/a",
      "https://swcdn.apple.com./a",
      "https://sw%63dn.apple.com/a",
      "https://sw cdn.apple.com/a",
      "https://[::1/a",
      "https://[::1]x/a",
      "https://[zz::1]/a",
      "https://[]/a",
      "https://::1/a",
      "https://h/a?source=evil.example",
      "https://h/a?x=1&source=evil.example",
      "https://h/a?sourceScheme=http",
      "https://h/a?source",
  };
  for (const char* r : rows) EXPECT_FALSE(contentCacheUrl("https://box", r)) << r;
  EXPECT_FALSE(contentCacheUrl("https://box", tooLong));
  EXPECT_FALSE(contentCacheUrl("https://box", withNul));
}

// ---- maybeGunzip ----

TEST(AppleGunzip, PlainBytesPassThroughWithinTheLimit) {
  auto r = maybeGunzip("<plist/>", 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "<plist/>");
  EXPECT_TRUE(maybeGunzip("", 0));
  auto big = maybeGunzip(std::string(101, 'x'), 100);
  ASSERT_FALSE(big);
  EXPECT_STREQ(big.error().context, "sucatalog: larger than apple.catalog_max_size");
}

TEST(AppleGunzip, InflatesUpToTheLimitAndNoFurther) {
  const std::string text = catalog(oneP("001-A", kPkg));
  const std::string gz = gzip(text);
  auto r = maybeGunzip(gz, text.size());
  ASSERT_TRUE(r) << r.error().context;
  EXPECT_EQ(*r, text);
  auto over = maybeGunzip(gz, text.size() - 1);
  ASSERT_FALSE(over);
  EXPECT_STREQ(over.error().context, "sucatalog: larger than apple.catalog_max_size");
}

TEST(AppleGunzip, ABombStopsAtTheLimit) {
  // 64 MiB of zeros is ~64 KiB of gzip; the limit is 1 MiB.
  const std::string bomb = gzip(std::string(64u << 20, '\0'), 9);
  ASSERT_LT(bomb.size(), 100u << 10);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = maybeGunzip(bomb, 1u << 20);
  ASSERT_FALSE(r);
  EXPECT_STREQ(r.error().context, "sucatalog: larger than apple.catalog_max_size");
  // It stopped early rather than inflating everything (generous bound).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // parseSuCatalog reports the same.
  ParseLimits limits;
  limits.maxExpanded = 1u << 20;
  auto p = parseSuCatalog(bomb, limits);
  ASSERT_FALSE(p);
  EXPECT_STREQ(p.error().context, "sucatalog: larger than apple.catalog_max_size");
}

TEST(AppleGunzip, EveryTruncationAndCorruptionIsRefused) {
  const std::string text = catalog(oneP("001-A", kPkg));
  const std::string gz = gzip(text);
  for (size_t n = 2; n < gz.size(); ++n) {
    auto r = maybeGunzip(std::string_view(gz).substr(0, n), 1u << 20);
    ASSERT_FALSE(r) << n;
    EXPECT_STREQ(r.error().context, "sucatalog: gzip data is corrupt") << n;
  }
  std::string bad = gz;
  bad[gz.size() - 6] ^= 0x55;  // the CRC-32
  EXPECT_FALSE(maybeGunzip(bad, 1u << 20));
  bad = gz;
  bad[gz.size() / 2] ^= 0x55;
  EXPECT_FALSE(maybeGunzip(bad, 1u << 20));
  EXPECT_FALSE(maybeGunzip("\x1f\x8b", 100));
  EXPECT_FALSE(maybeGunzip(gz + "trailing", 1u << 20));
  EXPECT_FALSE(maybeGunzip(gz + "\x1f", 1u << 20));
}

TEST(AppleGunzip, ConcatenatedMembersAreOneFile) {
  auto r = maybeGunzip(gzip("hello, ") + gzip("world"), 100);
  ASSERT_TRUE(r) << r.error().context;
  EXPECT_EQ(*r, "hello, world");
  EXPECT_FALSE(maybeGunzip(gzip("hello, ") + gzip("world"), 11));
}

// ---- parseSuCatalog ----

void expectInstaller(const CatalogProduct& p) {
  EXPECT_EQ(p.id, "052-96247");
  EXPECT_TRUE(p.installer);
  EXPECT_EQ(p.postDate, 1723050000);  // 2024-08-07T17:00:00Z
  ASSERT_EQ(p.packages.size(), 2u);
  const CatalogPackage& a = p.packages[0];
  EXPECT_EQ(a.url, "https://swcdn.apple.com/content/downloads/41/51/052-96247/x/InstallAssistant.pkg");
  EXPECT_EQ(a.size, 13338374016u);
  EXPECT_EQ(a.digest, "3f1f4d2e2b5d4c1a0f9e8d7c6b5a493827161504");
  EXPECT_EQ(a.metadataUrl, "https://swdist.apple.com/content/downloads/41/51/052-96247/x/InstallAssistant.pkm");
  EXPECT_EQ(a.integrityUrl,
            "https://swcdn.apple.com/content/downloads/41/51/052-96247/x/InstallAssistant.pkg.integrityDataV1");
  EXPECT_EQ(a.integritySize, 38440u);
  const CatalogPackage& b = p.packages[1];
  EXPECT_EQ(b.size, 1837u);
  EXPECT_EQ(b.digest, "");
  EXPECT_EQ(b.metadataUrl, "");
  EXPECT_EQ(b.integrityUrl, "");
  EXPECT_EQ(b.integritySize, 0u);
  EXPECT_EQ(p.distributions.size(), 3u);
  EXPECT_EQ(p.distributionUrl(), "https://swdist.apple.com/content/downloads/41/51/052-96247/x/052-96247.English.dist");
  EXPECT_EQ(p.serverMetadataUrl, "https://swcdn.apple.com/content/downloads/41/51/052-96247/x/052-96247.smd");
}

const std::string& realistic() {
  static const std::string text =
      catalog(product("zzzz-UPDATE", kUpdateBody) + product("052-96247", kInstallerBody) +
              oneP("001-PLAIN", kPkg));
  return text;
}

void expectRealistic(const SuCatalog& cat) {
  ASSERT_EQ(cat.products.size(), 3u);
  EXPECT_EQ(cat.products[0].id, "001-PLAIN");
  EXPECT_EQ(cat.products[1].id, "052-96247");
  EXPECT_EQ(cat.products[2].id, "zzzz-UPDATE");
  expectInstaller(cat.products[1]);
  const CatalogProduct& u = cat.products[2];
  EXPECT_FALSE(u.installer);
  EXPECT_EQ(u.postDate, 0);
  EXPECT_EQ(u.serverMetadataUrl, "");
  // Neither English nor en: the first language in order.
  EXPECT_EQ(u.distributionUrl(), "https://swdist.apple.com/u/u.de.dist");
  EXPECT_EQ(cat.products[0].distributionUrl(), "");
  ASSERT_NE(cat.find("052-96247"), nullptr);
  EXPECT_EQ(cat.find("052-96247")->id, "052-96247");
  EXPECT_EQ(cat.find("zzzz-UPDATE"), &cat.products[2]);
  EXPECT_EQ(cat.find("052-9624"), nullptr);
  EXPECT_EQ(cat.find(""), nullptr);
  EXPECT_EQ(cat.find("zzzz-UPDATE2"), nullptr);
}

TEST(AppleSuCatalog, ReadsApplesShapeFromXmlGzipAndBinary) {
  for (const std::string& bytes : {realistic(), gzip(realistic()), toBinary(realistic()), gzip(toBinary(realistic()))}) {
    size_t skipped = 0;
    auto r = parseSuCatalog(bytes, {}, &skipped);
    ASSERT_TRUE(r) << r.error().context;
    EXPECT_EQ(skipped, 0u);
    expectRealistic(*r);
  }
}

TEST(AppleSuCatalog, AnEmptyProductsDictionaryIsAnEmptyCatalog) {
  auto r = parseSuCatalog(catalog(""));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->products.empty());
  EXPECT_EQ(r->find("x"), nullptr);
}

struct BadProduct {
  const char* name;
  std::string xml;
};

TEST(AppleSuCatalog, SkipsEachHostileProductAndKeepsTheRest) {
  const std::string url = "<key>URL</key><string>https://swcdn.apple.com/p.pkg</string>";
  const std::string size = "<key>Size</key><integer>10</integer>";
  std::string manyPkgs, manyDists;
  for (int i = 0; i < 5; ++i) manyPkgs += "<dict>" + std::string(kPkg) + "</dict>";
  for (size_t i = 0; i <= kMaxDistributions; ++i)
    manyDists += "<key>l" + std::to_string(i) + "</key><string>https://h/d</string>";
  const std::vector<BadProduct> rows = {
      {"not a dict", "<key>001-BAD</key><string>x</string>"},
      {"id with a slash", oneP("001/../BAD", kPkg)},
      {"id with a space", oneP("001 BAD", kPkg)},
      {"id too long", oneP(std::string(kMaxProductIdBytes + 1, 'a'), kPkg)},
      {"empty id", oneP("", kPkg)},
      {"no Packages", product("001-BAD", "<key>PostDate</key><date>2024-01-01T00:00:00Z</date>")},
      {"Packages a dict", product("001-BAD", "<key>Packages</key><dict/>")},
      {"Packages a string", product("001-BAD", "<key>Packages</key><string>x</string>")},
      {"package a string", product("001-BAD", "<key>Packages</key><array><string>x</string></array>")},
      {"no URL", oneP("001-BAD", size)},
      {"no Size", oneP("001-BAD", url)},
      {"URL an integer", oneP("001-BAD", size + "<key>URL</key><integer>1</integer>")},
      {"URL ftp", oneP("001-BAD", size + "<key>URL</key><string>ftp://h/p.pkg</string>")},
      {"URL relative", oneP("001-BAD", size + "<key>URL</key><string>/p.pkg</string>")},
      {"URL with a space", oneP("001-BAD", size + "<key>URL</key><string>https://h/a b.pkg</string>")},
      {"URL with userinfo", oneP("001-BAD", size + "<key>URL</key><string>https://u@h/p.pkg</string>")},
      {"URL with a newline", oneP("001-BAD", size + "<key>URL</key><string>https://h/p&#10;.pkg</string>")},
      {"URL with source=", oneP("001-BAD", size + "<key>URL</key><string>https://h/p?source=evil</string>")},
      {"Size a string", oneP("001-BAD", url + "<key>Size</key><string>10</string>")},
      {"Size a real", oneP("001-BAD", url + "<key>Size</key><real>10.0</real>")},
      {"Size 0", oneP("001-BAD", url + "<key>Size</key><integer>0</integer>")},
      {"Size negative", oneP("001-BAD", url + "<key>Size</key><integer>-1</integer>")},
      {"Size 2^40 + 1", oneP("001-BAD", url + "<key>Size</key><integer>1099511627777</integer>")},
      {"Size 2^64 - 1", oneP("001-BAD", url + "<key>Size</key><integer>18446744073709551615</integer>")},
      {"Digest not hex", oneP("001-BAD", std::string(kPkg) + "<key>Digest</key><string>xyz</string>")},
      {"Digest empty", oneP("001-BAD", std::string(kPkg) + "<key>Digest</key><string></string>")},
      {"Digest an integer", oneP("001-BAD", std::string(kPkg) + "<key>Digest</key><integer>1</integer>")},
      {"MetadataURL bad", oneP("001-BAD", std::string(kPkg) + "<key>MetadataURL</key><string>x</string>")},
      {"MetadataURL a dict", oneP("001-BAD", std::string(kPkg) + "<key>MetadataURL</key><dict/>")},
      {"IntegrityDataURL bad",
       oneP("001-BAD", std::string(kPkg) + "<key>IntegrityDataURL</key><string>https://h/a b</string>")},
      {"IntegrityDataSize a string",
       oneP("001-BAD", std::string(kPkg) + "<key>IntegrityDataSize</key><string>1</string>")},
      {"IntegrityDataSize huge",
       oneP("001-BAD", std::string(kPkg) + "<key>IntegrityDataSize</key><integer>-5</integer>")},
      {"PostDate a string", oneP("001-BAD", kPkg, "<key>PostDate</key><string>2024-01-01</string>")},
      {"Distributions an array", oneP("001-BAD", kPkg, "<key>Distributions</key><array/>")},
      {"a distribution an integer",
       oneP("001-BAD", kPkg, "<key>Distributions</key><dict><key>English</key><integer>1</integer></dict>")},
      {"a distribution URL bad",
       oneP("001-BAD", kPkg, "<key>Distributions</key><dict><key>English</key><string>x</string></dict>")},
      {"a language with a slash",
       oneP("001-BAD", kPkg, "<key>Distributions</key><dict><key>../en</key><string>https://h/d</string></dict>")},
      {"an empty language",
       oneP("001-BAD", kPkg, "<key>Distributions</key><dict><key></key><string>https://h/d</string></dict>")},
      {"too many distributions", oneP("001-BAD", kPkg, "<key>Distributions</key><dict>" + manyDists + "</dict>")},
      {"ServerMetadataURL bad", oneP("001-BAD", kPkg, "<key>ServerMetadataURL</key><string>file:///x</string>")},
      {"ServerMetadataURL an array", oneP("001-BAD", kPkg, "<key>ServerMetadataURL</key><array/>")},
      {"ExtendedMetaInfo a string", oneP("001-BAD", kPkg, "<key>ExtendedMetaInfo</key><string>x</string>")},
      {"InstallAssistantPackageIdentifiers a string",
       oneP("001-BAD", kPkg,
            "<key>ExtendedMetaInfo</key><dict><key>InstallAssistantPackageIdentifiers</key><string>x</string>"
            "</dict>")},
      {"more packages than the limit", product("001-BAD", "<key>Packages</key><array>" + manyPkgs + "</array>")},
  };
  ParseLimits limits;
  limits.maxPackagesPerProduct = 4;
  for (const BadProduct& row : rows) {
    const std::string text = catalog(oneP("000-GOOD", kPkg) + row.xml + oneP("999-GOOD", kPkg));
    for (const std::string& bytes : {text, toBinary(text)}) {
      size_t skipped = 0;
      auto r = parseSuCatalog(bytes, limits, &skipped);
      ASSERT_TRUE(r) << row.name << ": " << r.error().context;
      EXPECT_EQ(skipped, 1u) << row.name;
      ASSERT_EQ(r->products.size(), 2u) << row.name;
      EXPECT_EQ(r->products[0].id, "000-GOOD");
      EXPECT_EQ(r->products[1].id, "999-GOOD");
      // The rewritten copy leaves out the same product.
      size_t dropped = 0;
      auto w = rewriteSuCatalog(bytes, {"https://box", {}}, limits, &dropped);
      ASSERT_TRUE(w) << row.name << ": " << w.error().context;
      EXPECT_EQ(dropped, 1u) << row.name;
      Tree back(*w);
      EXPECT_EQ(back.ids(), (std::vector<std::string>{"000-GOOD", "999-GOOD"})) << row.name;
    }
  }
}

TEST(AppleSuCatalog, EdgesOfTheBoundsAreKept) {
  std::string fourPkgs;
  for (int i = 0; i < 4; ++i) fourPkgs += "<dict>" + std::string(kPkg) + "</dict>";
  std::string dists;
  for (size_t i = 0; i < kMaxDistributions; ++i)
    dists += "<key>l" + std::to_string(i) + "</key><string>https://h/d" + std::to_string(i) + "</string>";
  const std::string text = catalog(
      product("001-A", "<key>Packages</key><array>" + fourPkgs + "</array>") +
      oneP(std::string(kMaxProductIdBytes, 'b'), kPkg) +
      oneP("001-C", "<key>URL</key><string>https://h/p</string><key>Size</key><integer>1099511627776</integer>") +
      oneP("001-D", kPkg, "<key>Distributions</key><dict>" + dists + "</dict>") +
      product("001-E", "<key>Packages</key><array/>"));
  ParseLimits limits;
  limits.maxPackagesPerProduct = 4;
  size_t skipped = 0;
  auto r = parseSuCatalog(text, limits, &skipped);
  ASSERT_TRUE(r) << r.error().context;
  EXPECT_EQ(skipped, 0u);
  ASSERT_EQ(r->products.size(), 5u);
  EXPECT_EQ(r->find("001-A")->packages.size(), 4u);
  EXPECT_EQ(r->find("001-C")->packages[0].size, kMaxPackageSize);
  EXPECT_EQ(r->find("001-D")->distributions.size(), kMaxDistributions);
  EXPECT_TRUE(r->find("001-E")->packages.empty());
}

// A binary catalog with one product "001-DUP" listed twice (first with
// `firstUrl`, then `secondUrl`), or, with `inPackage`, one product whose
// package has the key URL twice.
std::string duplicated(const std::string& firstUrl, const std::string& secondUrl, bool inPackage) {
  Bplist b;
  const uint64_t u1 = b.ascii(firstUrl), u2 = b.ascii(secondUrl);
  const uint64_t kUrl = b.ascii("URL"), kSize = b.ascii("Size"), ten = b.integer(10);
  const uint64_t kPkgs = b.ascii("Packages");
  const uint64_t id = b.ascii("001-DUP");
  uint64_t products;
  if (inPackage) {
    const uint64_t pkg = b.dict({kUrl, kSize, kUrl}, {u1, ten, u2});
    products = b.dict({id}, {b.dict({kPkgs}, {b.array({pkg})})});
  } else {
    const uint64_t p1 = b.dict({kUrl, kSize}, {u1, ten});
    const uint64_t p2 = b.dict({kUrl, kSize}, {u2, ten});
    const uint64_t prod1 = b.dict({kPkgs}, {b.array({p1})});
    const uint64_t prod2 = b.dict({kPkgs}, {b.array({p2})});
    products = b.dict({id, id}, {prod1, prod2});
  }
  const uint64_t kProducts = b.ascii("Products");
  b.root = b.dict({kProducts}, {products});
  return b.bytes();
}

TEST(AppleSuCatalog, ARepeatedKeyCountsOnceTheLastOne) {
  // libplist's XML reader keeps the last value of a key; a binary plist is
  // read through XML so it does the same, and the reader can never check
  // one copy while the rewritten catalog carries the other.
  const std::string good = "https://h/good.pkg", bad = "ftp://evil.example/x.pkg";
  for (bool inPackage : {false, true}) {
    size_t skipped = 0;
    auto r = parseSuCatalog(duplicated(bad, good, inPackage), {}, &skipped);
    ASSERT_TRUE(r) << r.error().context;
    ASSERT_EQ(r->products.size(), 1u) << inPackage;
    EXPECT_EQ(skipped, 0u);
    EXPECT_EQ(r->products[0].packages.at(0).url, good);
    auto w = rewriteSuCatalog(duplicated(bad, good, inPackage), {"https://box", {}});
    ASSERT_TRUE(w) << w.error().context;
    EXPECT_EQ(w->find("evil"), std::string::npos) << *w;
    EXPECT_NE(w->find("https://box/good.pkg?source=h&amp;sourceScheme=https"), std::string::npos) << *w;

    skipped = 0;
    r = parseSuCatalog(duplicated(good, bad, inPackage), {}, &skipped);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->products.empty());
    EXPECT_EQ(skipped, 1u);
    w = rewriteSuCatalog(duplicated(good, bad, inPackage), {"https://box", {}});
    ASSERT_TRUE(w);
    EXPECT_EQ(w->find("evil"), std::string::npos) << *w;
    EXPECT_EQ(w->find("001-DUP"), std::string::npos) << *w;
  }
  // XML: the same rule.
  const std::string xml = catalog(oneP("001-DUP", "<key>URL</key><string>" + bad + "</string>" + kPkg));
  auto r = parseSuCatalog(xml);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->products.size(), 1u);
  EXPECT_EQ(r->products[0].packages[0].url, "https://swcdn.apple.com/p.pkg");
}

struct BadDoc {
  const char* name;
  std::string bytes;
  const char* error;  // exact context
};

const char* kNotPlist = "sucatalog: not a plist (or beyond the depth and size bounds)";

std::string nested(const char* open, const char* close, size_t depth, const std::string& inner = "") {
  std::string s;
  for (size_t i = 0; i < depth; ++i) s += open;
  s += inner;
  for (size_t i = 0; i < depth; ++i) s += close;
  return s;
}

TEST(AppleSuCatalog, RefusesHostileDocuments) {
  const std::string good = catalog(oneP("001-A", kPkg));
  // Billion laughs: each entity is ten of the one before.
  std::string bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE plist [\n<!ENTITY a \"aaaaaaaaaa\">\n";
  for (char e = 'b'; e <= 'j'; ++e) {
    bomb.append("<!ENTITY ").push_back(e);
    bomb.append(" \"");
    for (int k = 0; k < 10; ++k) bomb.append("&").append(1, static_cast<char>(e - 1)).append(";");
    bomb.append("\">\n");
  }
  bomb += "]>\n<plist><dict><key>Products</key><dict/><key>x</key><string>&j;</string></dict></plist>";

  // libplist's reader skips "..." runs inside a PI, libxml2 does not: each
  // unit hides a closing tag from libplist only, so libplist sees 300000
  // open arrays where libxml2 sees depth 3 (libplist 2.2 alone overflows
  // its stack freeing them).
  std::string piTrick = "<plist><dict><key>Products</key><dict/><key>x</key>";
  for (int i = 0; i < 300000; ++i) piTrick += "<array><?x \"?></array><?y \"?>";
  piTrick += "</dict></plist>";
  const std::string attrQuote = "<plist><dict a='\"'><key>Products</key><dict/></dict></plist>";
  const std::string subsetTrick =
      "<?xml version=\"1.0\"?><!DOCTYPE plist [ <!-- ]> --> ]><plist><dict><key>Products</key><dict/></dict></plist>";
  const std::string systemIdTrick =
      "<?xml version=\"1.0\"?><!DOCTYPE plist SYSTEM '[x'><plist><dict><key>Products</key><dict/></dict></plist>";

  std::string manyProducts;
  for (int i = 0; i < 4; ++i) manyProducts += oneP("00" + std::to_string(i), kPkg);
  // libxml2 would convert these; libplist reads the bytes as UTF-8.
  std::string utf16 = "\xff\xfe";
  for (char c : std::string("<?xml version=\"1.0\" encoding=\"UTF-16\"?><plist><dict><key>Products</key><dict/>"
                            "</dict></plist>")) {
    utf16.push_back(c);
    utf16.push_back('\0');
  }
  const std::string latin1 =
      "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><plist><dict><key>Products</key><dict/></dict></plist>";

  const std::vector<BadDoc> rows = {
      {"empty", "", kNotPlist},
      {"text", "hello", kNotPlist},
      {"json", "{\"Products\": {}}", kNotPlist},
      {"not well-formed", "<plist><dict><key>Products</key><dict></plist>", kNotPlist},
      {"two roots", "<plist><dict/></plist><plist><dict/></plist>", kNotPlist},
      {"root an array", "<plist><array/></plist>", "sucatalog: the root is not a dictionary"},
      {"root a string", "<plist><string>x</string></plist>", "sucatalog: the root is not a dictionary"},
      {"no Products", "<plist><dict><key>CatalogVersion</key><integer>2</integer></dict></plist>",
       "sucatalog: no Products dictionary"},
      {"Products an array", "<plist><dict><key>Products</key><array/></dict></plist>",
       "sucatalog: no Products dictionary"},
      {"too many products", catalog(manyProducts), "sucatalog: more products than the limit"},
      {"entity bomb", bomb, kNotPlist},
      {"internal subset", "<!DOCTYPE plist [<!ELEMENT plist ANY>]><plist><dict><key>Products</key><dict/></dict></plist>",
       kNotPlist},
      {"comment in an internal subset", subsetTrick, kNotPlist},
      {"bracket in the system id", systemIdTrick, kNotPlist},
      {"external entity", "<!DOCTYPE plist [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><plist>&x;</plist>", kNotPlist},
      {"processing instruction", "<plist><?php x ?><dict><key>Products</key><dict/></dict></plist>", kNotPlist},
      {"PI quote trick", piTrick, kNotPlist},
      {"attribute with a quote", attrQuote, kNotPlist},
      {"attribute with >", "<plist a=\">\"><dict><key>Products</key><dict/></dict></plist>", kNotPlist},
      {"nested 128 deep",
       "<plist><dict><key>Products</key><dict/><key>x</key>" + nested("<array>", "</array>", 128) + "</dict></plist>",
       kNotPlist},
      {"nested 100000 deep",
       "<plist><dict><key>Products</key><dict/><key>x</key>" + nested("<array>", "</array>", 100000) +
           "</dict></plist>",
       kNotPlist},
      {"unclosed 1000000 deep", "<plist>" + nested("<array>", "", 1000000), kNotPlist},
      {"truncated", good.substr(0, good.size() / 2), kNotPlist},
      {"gzip of garbage", gzip("garbage"), kNotPlist},
      {"UTF-16", utf16, kNotPlist},
      {"ISO-8859-1", latin1, kNotPlist},
  };
  ParseLimits limits;
  limits.maxProducts = 3;
  for (const BadDoc& row : rows) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = parseSuCatalog(row.bytes, limits);
    ASSERT_FALSE(r) << row.name;
    EXPECT_EQ(r.error().code, Errc::Invalid) << row.name;
    EXPECT_STREQ(r.error().context, row.error) << row.name;
    auto w = rewriteSuCatalog(row.bytes, {"https://box", {}}, limits);
    ASSERT_FALSE(w) << row.name;
    EXPECT_STREQ(w.error().context, row.error) << row.name;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << row.name;
  }
}

TEST(AppleSuCatalog, DepthAndNodeBoundsAreExact) {
  // Depth: <plist> + 3 dicts above the inner value; kPlistMaxDepth elements.
  auto withInner = [](size_t arrays) {
    return "<plist><dict><key>Products</key><dict/><key>x</key>" + nested("<array>", "</array>", arrays) +
           "</dict></plist>";
  };
  EXPECT_TRUE(parseSuCatalog(withInner(detail::kPlistMaxDepth - 2)));
  EXPECT_FALSE(parseSuCatalog(withInner(detail::kPlistMaxDepth - 1)));
  // Binary: the same bound, counted on the XML it is read through
  // (<plist>, the root, Products, the arrays, the string).
  auto binaryWith = [](size_t arrays) {
    Bplist b;
    uint64_t inner = b.ascii("x");
    for (size_t i = 0; i < arrays; ++i) inner = b.array({inner});
    return binaryCatalog(b, inner);
  };
  size_t skipped = 0;
  EXPECT_TRUE(parseSuCatalog(binaryWith(detail::kPlistMaxDepth - 4), {}, &skipped));
  EXPECT_EQ(skipped, 1u);  // an array is not a product
  EXPECT_FALSE(parseSuCatalog(binaryWith(detail::kPlistMaxDepth - 3)));
  // Nodes: count the elements of a small catalog and set the bound there.
  const std::string text = catalog(oneP("001-A", kPkg));
  size_t elements = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i)
    if (text[i] == '<' && text[i + 1] != '/' && text[i + 1] != '?' && text[i + 1] != '!') ++elements;
  ParseLimits limits;
  limits.maxNodes = elements;
  EXPECT_TRUE(parseSuCatalog(text, limits));
  limits.maxNodes = elements - 1;
  EXPECT_FALSE(parseSuCatalog(text, limits));
  // The binary form has the same nodes but no <plist> element.
  const std::string bin = toBinary(text);
  limits.maxNodes = elements - 1;
  EXPECT_TRUE(parseSuCatalog(bin, limits));
  limits.maxNodes = elements - 2;
  EXPECT_FALSE(parseSuCatalog(bin, limits));
}

TEST(AppleSuCatalog, RefusesHostileBinaryPlists) {
  const std::string good = toBinary(catalog(oneP("001-A", kPkg)));
  ASSERT_TRUE(parseSuCatalog(good));
  struct Row {
    std::string name, bytes;
  };
  std::vector<Row> rows;
  rows.reserve(32);

  {  // 100000 nested arrays: libplist would recurse once per level.
    Bplist b;
    uint64_t inner = b.ascii("x");
    for (int i = 0; i < 100000; ++i) inner = b.array({inner});
    rows.push_back(Row{"deep", binaryCatalog(b, inner)});
  }
  {  // Under the catalog's two dictionaries: one level past the bound once
     // <plist> and the string count (see DepthAndNodeBoundsAreExact).
    Bplist b;
    uint64_t inner = b.ascii("x");
    for (size_t i = 0; i < detail::kPlistMaxDepth - 2; ++i) inner = b.array({inner});
    rows.push_back(Row{"one level too deep", binaryCatalog(b, inner)});
  }
  {  // Each level refers to the one below twice: 2^40 nodes in libplist.
    Bplist b;
    uint64_t inner = b.ascii("x");
    for (int i = 0; i < 40; ++i) inner = b.array({inner, inner});
    rows.push_back(Row{"shared containers", binaryCatalog(b, inner)});
  }
  {  // 2000 container indexes at one offset, each with 2000 references:
     // 4 million nodes from 16 KiB.
    Bplist b;
    const uint64_t s = b.ascii("x");
    const uint64_t w = b.array(std::vector<uint64_t>(2000, s));
    std::vector<uint64_t> aliases;
    for (int i = 0; i < 2000; ++i) aliases.push_back(b.alias(w));
    rows.push_back(Row{"aliased containers", binaryCatalog(b, b.array(aliases))});
  }
  {  // A 1 MiB string referred to 1000 times.
    Bplist b;
    const uint64_t big = b.ascii(std::string(1u << 20, 'x'));
    rows.push_back(Row{"shared big string", binaryCatalog(b, b.array(std::vector<uint64_t>(1000, big)))});
  }
  {  // A cycle: an array containing itself.
    Bplist b;
    const uint64_t self = b.objects.size();
    b.array({self});
    rows.push_back(Row{"cycle", binaryCatalog(b, self)});
  }
  {  // A dictionary whose declared count wraps the value offsets.
    Bplist b;
    const uint64_t k = b.ascii("k");
    std::string d = b.marker(0xD0, 1ull << 63) + b.refs({k, k});
    rows.push_back(Row{"dict count 2^63", binaryCatalog(b, b.add(d))});
  }
  {  // An array claiming 2^40 entries.
    Bplist b;
    const uint64_t k = b.ascii("k");
    rows.push_back(Row{"array count 2^40", binaryCatalog(b, b.add(b.marker(0xA0, 1ull << 40) + b.refs({k})))});
  }
  {  // A string claiming more bytes than there are.
    Bplist b;
    rows.push_back(Row{"string past the table", binaryCatalog(b, b.add(b.marker(0x50, 1ull << 30) + "abc"))});
  }
  {  // A reference past the objects.
    Bplist b;
    rows.push_back(Row{"ref out of range", binaryCatalog(b, b.array({1000000}))});
  }
  {
    Bplist b;
    b.ascii("x");
    b.numObjects = 1ull << 40;
    rows.push_back(Row{"object count 2^40", b.bytes()});
  }
  {
    Bplist b;
    b.ascii("x");
    b.tableOffset = 1ull << 40;
    rows.push_back(Row{"table offset past the end", b.bytes()});
  }
  {
    Bplist b;
    b.ascii("x");
    b.tableOffset = 3;
    rows.push_back(Row{"table offset in the magic", b.bytes()});
  }
  {
    Bplist b;
    b.ascii("x");
    b.root = 5;
    rows.push_back(Row{"root out of range", b.bytes()});
  }
  {
    Bplist b;
    b.ascii("x");
    b.refSize = 0;
    rows.push_back(Row{"ref size 0", b.bytes()});
  }
  {
    Bplist b;
    b.add(std::string(1, '\x70'));
    rows.push_back(Row{"unknown type", b.bytes()});
  }
  rows.push_back(Row{"truncated", good.substr(0, good.size() - 1)});
  rows.push_back(Row{"magic only", "bplist00"});
  rows.push_back(Row{"version 01", "bplist01" + good.substr(8)});
  for (const Row& row : rows) {
    const std::string& name = row.name;
    const std::string& bytes = row.bytes;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = parseSuCatalog(bytes);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code, Errc::Invalid) << name;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << name;
    EXPECT_FALSE(rewriteSuCatalog(bytes, {"https://box", {}})) << name;
  }
}

TEST(AppleSuCatalog, EveryTruncationOfABinaryCatalogIsSafe) {
  const std::string bin = toBinary(catalog(oneP("001-A", kPkg) + product("052-96247", kInstallerBody)));
  for (size_t n = 0; n < bin.size(); ++n) {
    auto r = parseSuCatalog(std::string_view(bin).substr(0, n));
    EXPECT_FALSE(r) << n;
  }
  for (size_t i = 8; i < bin.size(); ++i) {
    std::string b = bin;
    b[i] ^= 0xff;
    (void)parseSuCatalog(b);  // anything but a crash
  }
}

// ---- rewriteSuCatalog ----

TEST(AppleRewrite, EveryUrlPointsAtTheBoxAndDigestsAreGone) {
  for (const std::string& bytes : {realistic(), gzip(realistic()), toBinary(realistic())}) {
    auto w = rewriteSuCatalog(bytes, {"https://orchard.branch.example", {}});
    ASSERT_TRUE(w) << w.error().context;
    EXPECT_EQ(w->rfind("<?xml", 0), 0u);
    EXPECT_EQ(w->find("<key>Digest</key>"), std::string::npos);
    // Top-level keys other than Products are kept as they were.
    EXPECT_NE(w->find("<string>http://swpost.apple.com/stats</string>"), std::string::npos);
    EXPECT_NE(w->find("<key>CatalogVersion</key>"), std::string::npos);
    EXPECT_NE(w->find("<date>2024-08-08T09:15:00Z</date>"), std::string::npos);
    // Nothing still names an Apple host as a URL.
    EXPECT_EQ(w->find("<string>https://sw"), std::string::npos);
    EXPECT_EQ(w->find("<string>http://swcdn"), std::string::npos);

    Tree t(*w);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t.ids(), (std::vector<std::string>{"001-PLAIN", "052-96247", "zzzz-UPDATE"}));
    const std::string id = "052-96247";
    const std::string base = "https://orchard.branch.example/content/downloads/41/51/052-96247/x/";
    EXPECT_NE(t.at({"Products", id, "ExtendedMetaInfo", "InstallAssistantPackageIdentifiers"}), nullptr);
    EXPECT_NE(t.at({"Products", id, "PostDate"}), nullptr);
    EXPECT_EQ(t.str({"Products", id, "Packages", 0u, "URL"}),
              base + "InstallAssistant.pkg?source=swcdn.apple.com&sourceScheme=https");
    EXPECT_EQ(t.at({"Products", id, "Packages", 0u, "Digest"}), nullptr);
    EXPECT_EQ(t.uint({"Products", id, "Packages", 0u, "Size"}), 13338374016u);
    EXPECT_EQ(t.str({"Products", id, "Packages", 0u, "MetadataURL"}),
              base + "InstallAssistant.pkm?source=swdist.apple.com&sourceScheme=https");
    EXPECT_EQ(t.str({"Products", id, "Packages", 0u, "IntegrityDataURL"}),
              base + "InstallAssistant.pkg.integrityDataV1?source=swcdn.apple.com&sourceScheme=https");
    EXPECT_EQ(t.uint({"Products", id, "Packages", 0u, "IntegrityDataSize"}), 38440u);
    EXPECT_EQ(t.str({"Products", id, "Packages", 1u, "URL"}),
              base + "BuildManifest.plist?a=1&source=swcdn.apple.com:8080&sourceScheme=http");
    EXPECT_EQ(t.str({"Products", id, "Distributions", "English"}),
              base + "052-96247.English.dist?source=swdist.apple.com&sourceScheme=https");
    EXPECT_EQ(t.str({"Products", id, "Distributions", "fr"}),
              base + "052-96247.fr.dist?source=swdist.apple.com&sourceScheme=https");
    EXPECT_EQ(t.str({"Products", id, "ServerMetadataURL"}),
              base + "052-96247.smd?source=swcdn.apple.com&sourceScheme=https");
    EXPECT_EQ(t.str({"Products", "zzzz-UPDATE", "Distributions", "de"}),
              "https://orchard.branch.example/u/u.de.dist?source=swdist.apple.com&sourceScheme=https");
    EXPECT_EQ(t.str({"ApplePostURL"}), "http://swpost.apple.com/stats");
    EXPECT_EQ(t.uint({"CatalogVersion"}), 2u);
  }
}

TEST(AppleRewrite, KeepsOnlyTheSubset) {
  auto w = rewriteSuCatalog(realistic(), {"https://box", {"052-96247", "not-in-catalog"}});
  ASSERT_TRUE(w) << w.error().context;
  EXPECT_EQ(Tree(*w).ids(), std::vector<std::string>{"052-96247"});
  EXPECT_EQ(w->find("zzzz-UPDATE"), std::string::npos);

  auto none = rewriteSuCatalog(realistic(), {"https://box", {"not-in-catalog"}});
  ASSERT_TRUE(none);
  Tree t(*none);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t.ids().empty());
  EXPECT_NE(t.at({"Products"}), nullptr);
}

TEST(AppleRewrite, ARewrittenCatalogCannotBeRewrittenAgain) {
  // Its URLs already carry source=: a second pass would route the box to
  // the box, so every product is left out (and counted).
  auto once = rewriteSuCatalog(realistic(), {"https://box", {}});
  ASSERT_TRUE(once);
  size_t skipped = 0;
  auto twice = rewriteSuCatalog(*once, {"https://box", {}}, {}, &skipped);
  ASSERT_TRUE(twice);
  EXPECT_EQ(skipped, 3u);
}

TEST(AppleSuCatalog, ABinaryStringXmlCannotCarryRefusesTheDocument) {
  // Binary and XML catalogs obey the same rules: a control character in
  // any string (here one the reader does not even use) is not a plist.
  Bplist b;
  const uint64_t kUrl = b.ascii("URL"), kSize = b.ascii("Size"), ten = b.integer(10);
  const uint64_t url = b.ascii("https://h/p.pkg");
  const uint64_t pkg = b.dict({kUrl, kSize}, {url, ten});
  const uint64_t kPkgs = b.ascii("Packages"), kType = b.ascii("ProductType");
  const uint64_t bad = b.ascii(std::string("mac\x01OS"));
  const uint64_t prod = b.dict({kPkgs, kType}, {b.array({pkg}), bad});
  const std::string bytes = binaryCatalog(b, prod);
  auto r = parseSuCatalog(bytes);
  ASSERT_FALSE(r);
  EXPECT_STREQ(r.error().context, kNotPlist);
  auto w = rewriteSuCatalog(bytes, {"https://box", {}});
  ASSERT_FALSE(w);
  EXPECT_STREQ(w.error().context, kNotPlist);
  // Invalid UTF-8 likewise.
  Bplist c;
  const uint64_t k = c.ascii("x"), v = c.ascii("\xff\xfe");
  const uint64_t kProducts = c.ascii("Products");
  c.root = c.dict({kProducts, k}, {c.dict({}, {}), v});
  EXPECT_FALSE(parseSuCatalog(c.bytes()));
}

TEST(AppleRewrite, ABigCatalogStaysWithinTheNodeBound) {
  // 20000 products in Apple's shape (~40 MB of XML is ~100000 of them;
  // this keeps the test quick): parsed, rewritten and parsed back.
  std::string products;
  for (int i = 0; i < 20000; ++i) products += product("100-" + std::to_string(10000 + i), kInstallerBody);
  const std::string text = catalog(products);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = parseSuCatalog(gzip(text, 1));
  ASSERT_TRUE(r) << r.error().context;
  EXPECT_EQ(r->products.size(), 20000u);
  auto w = rewriteSuCatalog(text, {"https://box", {"100-10007"}});
  ASSERT_TRUE(w) << w.error().context;
  EXPECT_EQ(Tree(*w).ids(), std::vector<std::string>{"100-10007"});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60));
  ParseLimits small;
  small.maxNodes = 20000;
  EXPECT_FALSE(parseSuCatalog(text, small));
}

// ---- the black-box fixture (tests/blackbox/apple_fixture.py) ----

class AppleFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "orchard-apple-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
    const std::string cmd = "python3 " ORCHARD_SOURCE_DIR "/tests/blackbox/apple_fixture.py --write " + *dir_ +
                            " --install-size 2500000 > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (dir_) std::filesystem::remove_all(*dir_, ec);
    delete dir_;
    dir_ = nullptr;
  }
  static std::string slurp(const std::string& path) {
    std::ifstream in(*dir_ + path, std::ios::binary);
    EXPECT_TRUE(in.good()) << path;
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // The path of an absolute URL on the fixture's hosts.
  static std::string pathOf(const std::string& url) { return url.substr(url.find('/', url.find("://") + 3)); }
  static std::string* dir_;
};
std::string* AppleFixture::dir_ = nullptr;

TEST_F(AppleFixture, TheCatalogInEveryEncodingReadsTheSame) {
  for (const char* path : {"/content/catalogs/test.sucatalog", "/content/catalogs/test.sucatalog.gz",
                           "/content/catalogs/test.binary.sucatalog"}) {
    size_t skipped = 0;
    auto r = parseSuCatalog(slurp(path), {}, &skipped);
    ASSERT_TRUE(r) << path << ": " << r.error().context;
    EXPECT_EQ(skipped, 0u);
    ASSERT_EQ(r->products.size(), 3u) << path;
    const CatalogProduct* in = r->find("001-INSTALL");
    const CatalogProduct* up = r->find("002-UPDATE");
    const CatalogProduct* br = r->find("003-BROKEN");
    ASSERT_TRUE(in && up && br);
    EXPECT_TRUE(in->installer);
    EXPECT_FALSE(up->installer);
    EXPECT_TRUE(br->installer);
    EXPECT_EQ(in->postDate, 1723050000);  // 2024-08-07T17:00:00Z
    ASSERT_EQ(in->packages.size(), 2u);
    EXPECT_EQ(in->packages[0].size, 2500000u);
    EXPECT_NE(in->packages[0].integrityUrl, "");
    EXPECT_EQ(in->packages[1].integrityUrl, "");
    EXPECT_EQ(in->packages[0].digest.size(), 40u);
    EXPECT_NE(up->serverMetadataUrl, "");
    EXPECT_NE(up->packages[0].metadataUrl, "");
  }
}

TEST_F(AppleFixture, DistributionsAndMetadataNameEachProduct) {
  auto cat = parseSuCatalog(slurp("/content/catalogs/test.sucatalog"));
  ASSERT_TRUE(cat);
  struct Want {
    const char* id;
    const char* title;
    const char* version;
    const char* build;
  };
  for (const Want& w : {Want{"001-INSTALL", "macOS Sonoma", "14.6.1", "23G93"},
                        Want{"002-UPDATE", "Example Update", "1.2.3", ""},
                        Want{"003-BROKEN", "macOS Broken", "14.0", "23A344"}}) {
    const CatalogProduct* p = cat->find(w.id);
    ASSERT_NE(p, nullptr);
    auto d = parseDistribution(slurp(pathOf(p->distributionUrl())));
    ASSERT_TRUE(d) << w.id << ": " << d.error().context;
    EXPECT_EQ(d->title, w.title);
    EXPECT_EQ(d->version, w.version);
    EXPECT_EQ(d->build, w.build);
  }
  auto smd = parseServerMetadata(slurp(pathOf(cat->find("002-UPDATE")->serverMetadataUrl)));
  ASSERT_TRUE(smd) << smd.error().context;
  EXPECT_EQ(smd->title, "Example Update");
  EXPECT_EQ(smd->version, "1.2.3");
}

TEST_F(AppleFixture, ChunklistsVerifyTheInstallerAndCatchTheBrokenOne) {
  auto cat = parseSuCatalog(slurp("/content/catalogs/test.sucatalog"));
  ASSERT_TRUE(cat);
  for (const char* id : {"001-INSTALL", "003-BROKEN"}) {
    const CatalogPackage& pkg = cat->find(id)->packages[0];
    const std::string cl = slurp(pathOf(pkg.integrityUrl));
    EXPECT_EQ(cl.size(), pkg.integritySize);
    auto list = parseChunklist(cl);
    ASSERT_TRUE(list) << id << ": " << list.error().context;
    EXPECT_EQ(list->totalSize(), pkg.size);
    EXPECT_EQ(list->chunks[0].size, 1u << 20);
    EXPECT_LT(list->chunks.back().size, 1u << 20);  // the last one short
    const std::string data = slurp(pathOf(pkg.url));
    ChunkVerifier v(std::move(*list));
    bool ok = true;
    for (size_t off = 0; off < data.size() && ok; off += 65536)
      ok = v.update(data.data() + off, std::min<size_t>(65536, data.size() - off));
    ok = ok && v.finish();
    if (std::string(id) == "001-INSTALL") {
      EXPECT_TRUE(ok) << v.failure();
    } else {
      EXPECT_FALSE(ok);
      EXPECT_NE(v.failure().find("chunk 1 of 3"), std::string::npos) << v.failure();
      EXPECT_EQ(v.bytesSeen(), 2u << 20);
    }
  }
}

TEST_F(AppleFixture, TheRewrittenFixturePointsAtTheBox) {
  auto w = rewriteSuCatalog(slurp("/content/catalogs/test.sucatalog.gz"), {"http://127.0.0.1:8080", {"001-INSTALL"}});
  ASSERT_TRUE(w) << w.error().context;
  Tree t(*w);
  EXPECT_EQ(t.ids(), std::vector<std::string>{"001-INSTALL"});
  EXPECT_EQ(t.str({"Products", "001-INSTALL", "Packages", 0u, "URL"}),
            "http://127.0.0.1:8080/content/downloads/001/001-INSTALL/InstallAssistant.pkg"
            "?source=swcdn.apple.com&sourceScheme=https");
  EXPECT_EQ(t.str({"Products", "001-INSTALL", "Packages", 0u, "IntegrityDataURL"}),
            "http://127.0.0.1:8080/content/downloads/001/001-INSTALL/InstallAssistant.chunklist"
            "?source=swcdn.apple.com&sourceScheme=https");
}

}  // namespace
}  // namespace orchard::catalog::apple
