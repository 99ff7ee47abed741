// pkg_reader.h and pkg_xml.h: what a flat package says about itself, read
// back exactly; the main-bundle rules; component-only, unsigned, non-xar,
// bsdtar-written and malformed archives (fixtures from xarpkg.py).
#include "catalog/pkg_reader.h"

#include <gtest/gtest.h>

#include <chrono>

#include "catalog/pkg_xml.h"
#include "tests/unit/catalog/xar_fixture.h"

namespace orchard::catalog {
namespace {

using testing::XarFixtures;

XarFixtures& fx() { return XarFixtures::get(); }

const char* kDistribution = R"(<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
  <title>Example App</title>
  <product id="com.example.product" version="3.1"/>
  <options customize="never" require-scripts="false" hostArchitectures="arm64,x86_64"/>
  <allowed-os-versions><os-version min="12.0" before="16.0"/></allowed-os-versions>
  <choices-outline><line choice="default"><line choice="com.example.app.pkg"/></line></choices-outline>
  <choice id="com.example.app.pkg" visible="false"><pkg-ref id="com.example.app.pkg"/></choice>
  <choice id="com.example.helper.pkg" visible="false"><pkg-ref id="com.example.helper.pkg"/></choice>
  <pkg-ref id="com.example.app.pkg" version="3.1.0" installKBytes="50000">#app.pkg</pkg-ref>
  <pkg-ref id="com.example.helper.pkg" version="1.0" installKBytes="200">#helper.pkg</pkg-ref>
  <pkg-ref id="com.example.app.pkg"><bundle-version>
    <bundle CFBundleShortVersionString="3.1" CFBundleVersion="310" id="com.example.app" path="Example.app"/>
  </bundle-version></pkg-ref>
  <pkg-ref id="com.example.helper.pkg"><bundle-version>
    <bundle CFBundleVersion="7" id="com.example.helper" path="Library/Helper.app"/>
  </bundle-version></pkg-ref>
</installer-gui-script>
)";

const char* kAppInfo = R"(<pkg-info format-version="2" identifier="com.example.app.pkg" version="3.1.0"
    install-location="/Applications"><payload installKBytes="50000" numberOfFiles="3"/>
  <bundle id="com.example.app" CFBundleShortVersionString="3.1" path="./Example.app">
    <bundle id="com.example.app.widget" CFBundleShortVersionString="3.1" path="./Example.app/Contents/PlugIns/W.appex"/>
  </bundle></pkg-info>)";

const char* kHelperInfo = R"(<pkg-info identifier="com.example.helper.pkg" version="1.0"/>)";

PackageFileInfo readOk(const std::string& file) {
  auto r = readPackageFile(file, nullptr);
  EXPECT_TRUE(r) << r.error().message();
  return r ? *r : PackageFileInfo{};
}

TEST(PkgReaderTest, DistributionPackageReadBackExactly) {
  std::string pkg = fx().build("dist.pkg", "--distribution " + fx().write("d.xml", kDistribution) +
                                               " --component com.example.app.pkg=" + fx().write("a.xml", kAppInfo) +
                                               " --component com.example.helper.pkg=" +
                                               fx().write("h.xml", kHelperInfo));
  PackageFileInfo info = readOk(pkg);
  ASSERT_TRUE(info.isPackage);
  const PackageMetadata& m = info.metadata;
  EXPECT_TRUE(m.distribution);
  EXPECT_EQ(m.title, "Example App");
  EXPECT_EQ(m.packageId, "com.example.product");
  EXPECT_EQ(m.packageVersion, "3.1");
  EXPECT_EQ(m.minOs, "12.0");
  EXPECT_EQ(m.maxOs, "16.0");
  EXPECT_EQ(m.archs, (std::vector<std::string>{"arm64", "x86_64"}));
  EXPECT_EQ(m.pkgRefs, (std::vector<PkgRef>{{"com.example.app.pkg", "3.1.0", 50000},
                                            {"com.example.helper.pkg", "1.0", 200}}));
  EXPECT_EQ(m.bundles, (std::vector<BundleInfo>{{"com.example.app", "3.1", "Example.app"},
                                                {"com.example.helper", "7", "Library/Helper.app"},
                                                {"com.example.app.widget", "3.1",
                                                 "./Example.app/Contents/PlugIns/W.appex"}}));
  EXPECT_EQ(m.bundleId, "com.example.app");  // the largest app
  EXPECT_EQ(m.bundleVersion, "3.1");
  EXPECT_EQ(m.source.at("title"), "Distribution");
  EXPECT_EQ(m.source.at("bundles"), "Distribution");
  EXPECT_EQ(m.source.at("bundle_id"), "Distribution");
  EXPECT_FALSE(info.signature.present);
  EXPECT_EQ(info.warnings, (std::vector<std::string>{"unsigned: the package has no signature"}));
  // The same bytes from memory read the same.
  std::string bytes = XarFixtures::slurp(pkg);
  auto again = readPackageBytes(bytes, nullptr);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->metadata, m);
}

TEST(PkgReaderTest, ComponentOnlyPackage) {
  std::string pkg = fx().build("comp.pkg", "--packageinfo " + fx().write("a.xml", kAppInfo));
  PackageFileInfo info = readOk(pkg);
  ASSERT_TRUE(info.isPackage);
  EXPECT_FALSE(info.metadata.distribution);
  EXPECT_EQ(info.metadata.packageId, "com.example.app.pkg");
  EXPECT_EQ(info.metadata.packageVersion, "3.1.0");
  EXPECT_EQ(info.metadata.pkgRefs, (std::vector<PkgRef>{{"com.example.app.pkg", "3.1.0", 50000}}));
  EXPECT_EQ(info.metadata.bundleId, "com.example.app");
  EXPECT_EQ(info.metadata.source.at("package_id"), "PackageInfo");
  EXPECT_EQ(info.metadata.source.at("bundles"), "PackageInfo");
  ASSERT_EQ(info.warnings.size(), 2u);
  EXPECT_NE(info.warnings[0].find("InstallEnterpriseApplication needs a distribution package"), std::string::npos);
}

TEST(PkgReaderTest, SignedByTrustedRootHasNoWarning) {
  auto roots = TrustStore::loadPem(fx().ca("trusted") + "-root.pem");
  ASSERT_TRUE(roots);
  std::string pkg = fx().build("signed.pkg", "--distribution " + fx().write("d.xml", testing::kSimpleDistribution) +
                                                 " --component com.example.foo.pkg=" +
                                                 fx().write("p.xml", testing::kSimplePackageInfo) + " --sign " +
                                                 fx().ca("trusted"));
  auto info = readPackageFile(pkg, roots->get());
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->signature.trusted);
  EXPECT_TRUE(info->warnings.empty());
  EXPECT_EQ(info->metadata.packageId, "com.example.foo.pkg");
  EXPECT_EQ(info->metadata.source.at("package_version"), "Distribution");
  // Tampered TOC with its old checksum: libarchive refuses it, and we say why.
  pkg = fx().build("t.pkg", "--distribution " + fx().path("d.xml") + " --sign " + fx().ca("trusted") +
                                " --tamper toc-nosum");
  auto bad = readPackageFile(pkg, roots->get());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::Corrupt);
}

TEST(PkgReaderTest, BsdtarXarIsReadAsAnUnsignedPackage) {
  std::string dir = fx().path("tree");
  std::filesystem::create_directories(dir + "/com.example.foo.pkg");
  std::ofstream(dir + "/Distribution") << testing::kSimpleDistribution;
  std::ofstream(dir + "/com.example.foo.pkg/PackageInfo") << testing::kSimplePackageInfo;
  std::ofstream(dir + "/com.example.foo.pkg/Payload") << std::string(5000, 'x');
  std::string out = fx().path("bsdtar.pkg");
  std::string cmd = "cd " + dir + " && bsdtar --format xar -cf " + out + " Distribution com.example.foo.pkg";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  PackageFileInfo info = readOk(out);
  ASSERT_TRUE(info.isPackage);
  EXPECT_EQ(info.metadata.title, "Foo");
  EXPECT_EQ(info.metadata.bundleId, "com.example.foo");
  EXPECT_EQ(info.metadata.source.at("bundles"), "com.example.foo.pkg/PackageInfo");
  EXPECT_FALSE(info.signature.present);
}

TEST(PkgReaderTest, NonXarIsNotAPackage) {
  PackageFileInfo info = readOk(fx().write("image.dmg", "koly not a xar at all"));
  EXPECT_FALSE(info.isPackage);
  info = readOk(fx().write("empty.dmg", ""));
  EXPECT_FALSE(info.isPackage);
  EXPECT_EQ(readPackageFile(fx().path("absent.pkg"), nullptr).error().code, Errc::NotFound);
}

TEST(PkgReaderTest, MalformedXarsAreRefusedFast) {
  const auto start = std::chrono::steady_clock::now();
  std::string good = XarFixtures::slurp(
      fx().build("g.pkg", "--distribution " + fx().write("d.xml", testing::kSimpleDistribution)));
  auto refused = [](std::string_view bytes, const char* why) {
    auto r = readPackageBytes(bytes, nullptr);
    ASSERT_FALSE(r) << why;
    EXPECT_EQ(r.error().code, Errc::Invalid) << why;
    EXPECT_STREQ(r.error().context, why);
  };
  refused(good.substr(0, 20), "xar: truncated header");
  std::string longToc = good;
  longToc[15] = '\x7f';  // low byte of toc_length_compressed
  longToc.resize(200);
  refused(longToc, "xar: table of contents runs past the end of the file");
  std::string notZlib = good;
  notZlib[28] ^= 0x55;  // zlib's header byte
  refused(notZlib, "xar: table of contents is not zlib data");

  const char* bomb = R"(<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<installer-gui-script><title>&lol9;</title></installer-gui-script>
)";
  std::string bombPkg = XarFixtures::slurp(fx().build("bomb.pkg", "--distribution " + fx().write("b.xml", bomb)));
  refused(bombPkg, "Distribution is not well-formed XML");
  std::string external = R"(<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><installer-gui-script/>)";
  refused(XarFixtures::slurp(fx().build("ext.pkg", "--distribution " + fx().write("e.xml", external))),
          "Distribution is not well-formed XML");
  std::string huge = "<pkg-info identifier=\"x\">" + std::string(1100 << 10, ' ') + "</pkg-info>";
  refused(XarFixtures::slurp(fx().build("huge.pkg", "--packageinfo " + fx().write("big.xml", huge))),
          "PackageInfo is over 1 MiB");
  // Generous: most of this is python writing the fixtures.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

std::vector<OwnedBundle> bundles(std::initializer_list<std::pair<const char*, const char*>> idPathRef) {
  std::vector<OwnedBundle> out;
  for (auto [path, ref] : idPathRef) out.push_back(OwnedBundle{BundleInfo{std::string("id.") + path, "1", path}, ref});
  return out;
}

TEST(MainBundleTest, Rules) {
  const std::vector<PkgRef> refs = {{"small", "1", 10}, {"big", "1", 900}};
  // The bundle whose id is the package's, even if it is not the largest app.
  EXPECT_EQ(chooseMainBundle(bundles({{"A.app", "small"}, {"B.app", "big"}}), "id.A.app", refs), 0);
  // Else the largest app by its pkg-ref's installKBytes.
  EXPECT_EQ(chooseMainBundle(bundles({{"A.app", "small"}, {"B.app", "big"}}), "com.other", refs), 1);
  // Same size: the shorter path; non-apps never win this rule.
  EXPECT_EQ(chooseMainBundle(bundles({{"X.plugin", "big"}, {"Long/Inner.app", "big"}, {"B.app", "big"}}), "", refs), 2);
  EXPECT_EQ(chooseMainBundle(bundles({{"Tool.app/", "small"}}), "", refs), 0);  // trailing slash still an app
  // No app at all: the first bundle.
  EXPECT_EQ(chooseMainBundle(bundles({{"X.plugin", "big"}, {"Y.framework", "small"}}), "", refs), 0);
  EXPECT_EQ(chooseMainBundle({}, "", refs), -1);
}

TEST(PkgXmlTest, OsVersionFromVolumeCheckAndMergedPkgRefs) {
  auto d = parseDistribution(R"(<installer-gui-script><volume-check><allowed-os-versions>
      <os-version min="10.15"/></allowed-os-versions></volume-check>
      <choice id="c"><pkg-ref id="p"/></choice><pkg-ref id="p" installKBytes="5"/><pkg-ref id="p" version="2"/>
      </installer-gui-script>)");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->minOs, "10.15");
  EXPECT_EQ(d->maxOs, "");
  EXPECT_EQ(d->pkgRefs, (std::vector<PkgRef>{{"p", "2", 5}}));
  EXPECT_FALSE(parseDistribution("<pkg-info/>"));
  EXPECT_FALSE(parsePackageInfo("<installer-gui-script/>"));
}

}  // namespace
}  // namespace orchard::catalog
