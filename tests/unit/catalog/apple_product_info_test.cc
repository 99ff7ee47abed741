// catalog/apple/product_info: .dist files in the shapes Apple serves (an
// InstallAssistant product with <auxinfo>, an update whose title and
// version come from the strings table, plain titles, pkg-ref versions),
// the .strings reader's quoting, escapes, comments and errors, which
// source wins, fields refused by their checks, and hostile XML (DOCTYPE,
// entities, depth, size, every truncation); .smd plists in XML and binary,
// with wrong types and hostile shapes.
#include "catalog/apple/product_info.h"

#include <gtest/gtest.h>
#include <plist/plist.h>

#include <string>
#include <vector>

namespace orchard::catalog::apple {
namespace {

const char* kInstallerDist = R"(<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
    <title>SU_TITLE</title>
    <options hostArchitectures="x86_64,arm64" customize="never"/>
    <auxinfo>
        <dict>
            <key>BUILD</key>
            <string>23G93</string>
            <key>VERSION</key>
            <string>14.6.1</string>
        </dict>
    </auxinfo>
    <pkg-ref id="com.apple.pkg.InstallAssistant.macOSSonoma" version="19.6.01722899346">InstallAssistant.pkg</pkg-ref>
    <localization>
        <strings language="English"><![CDATA[
"SU_TITLE" = "macOS Sonoma";
]]></strings>
    </localization>
</installer-gui-script>
)";

const char* kUpdateDist = R"(<?xml version="1.0" encoding="utf-8" standalone="no"?>
<installer-gui-script minSpecVersion="1">
    <title>SU_TITLE</title>
    <options customize="never" rootVolumeOnly="true"/>
    <choice id="su" title="SU_TITLE" versStr="SU_VERS"><pkg-ref id="com.apple.pkg.Update"/></choice>
    <pkg-ref id="com.apple.pkg.Update" auth="Root" version="17.6.1.19618">Update.pkg</pkg-ref>
    <localization>
        <strings language="French"><![CDATA["SU_TITLE" = "Mise à jour";]]></strings>
        <strings language="English"><![CDATA["SU_TITLE" = "Safari 17.6";
"SU_VERS" = "17.6";
"SU_SERVERCOMMENT" = "a \"quoted\" comment";
/* Apple's tables carry HTML in single quotes */
"SU_DESCRIPTION" = '<!DOCTYPE html><html><body><p class="x">Fixes.</p></body></html>';
]]></strings>
    </localization>
</installer-gui-script>
)";

std::string dist(const std::string& inner) {
  return "<?xml version=\"1.0\"?>\n<installer-gui-script minSpecVersion=\"2\">" + inner + "</installer-gui-script>";
}

std::string strings(const std::string& table, const std::string& lang = "English") {
  return "<localization><strings language=\"" + lang + "\"><![CDATA[" + table + "]]></strings></localization>";
}

TEST(AppleDistribution, AnInstallAssistantProduct) {
  auto r = parseDistribution(kInstallerDist);
  ASSERT_TRUE(r) << r.error().context;
  EXPECT_EQ(r->title, "macOS Sonoma");
  EXPECT_EQ(r->version, "14.6.1");
  EXPECT_EQ(r->build, "23G93");
}

TEST(AppleDistribution, AnUpdateWithTheStringsTable) {
  auto r = parseDistribution(kUpdateDist);
  ASSERT_TRUE(r) << r.error().context;
  EXPECT_EQ(r->title, "Safari 17.6");  // English, not the first table
  EXPECT_EQ(r->version, "17.6");       // SU_VERS before the pkg-ref
  EXPECT_EQ(r->build, "");
}

struct Row {
  const char* name;
  std::string xml;
  std::string title;
  const char* version;
  const char* build;
};

TEST(AppleDistribution, WhichSourceWins) {
  const std::string aux =
      "<auxinfo><dict><key>VERSION</key><string>1.0</string><key>BUILD</key><string>1A1</string></dict></auxinfo>";
  const std::vector<Row> rows = {
      {"plain title", dist("<title>Xcode Tools</title>"), "Xcode Tools", "", ""},
      {"title with spaces around", dist("<title>\n   Xcode Tools \n</title>"), "Xcode Tools", "", ""},
      {"no title", dist("<options/>"), "", "", ""},
      {"unresolved key stays", dist("<title>SU_TITLE</title>" + strings("\"OTHER\" = \"x\";")), "SU_TITLE", "", ""},
      {"pkg-ref version", dist("<title>T</title><pkg-ref id=\"a\"/><pkg-ref id=\"b\" version=\"2.1\"/>"), "T", "2.1", ""},
      {"product version before pkg-ref",
       dist("<product id=\"p\" version=\"3.0\"/><pkg-ref id=\"b\" version=\"2.1\"/>"), "", "3.0", ""},
      {"SU_VERS before product", dist("<product version=\"3.0\"/>" + strings("\"SU_VERS\" = \"4.0\";")), "", "4.0", ""},
      {"auxinfo before all", dist(aux + "<product version=\"3.0\"/>" + strings("\"SU_VERS\" = \"4.0\";")), "", "1.0",
       "1A1"},
      {"a bad auxinfo version falls through",
       dist("<auxinfo><dict><key>VERSION</key><string>1.0; rm -rf /</string></dict></auxinfo>"
            "<pkg-ref version=\"2.0\"/>"),
       "", "2.0", ""},
      {"a bad build is dropped",
       dist("<auxinfo><dict><key>BUILD</key><string>23G 93</string><key>VERSION</key><string>1</string></dict>"
            "</auxinfo>"),
       "", "1", ""},
      {"auxinfo keys out of order and extra",
       dist("<auxinfo><dict><key>X</key><array/><key>BUILD</key><string>9Z9</string><key>Y</key><true/>"
            "<key>VERSION</key><string>9.9</string></dict></auxinfo>"),
       "", "9.9", "9Z9"},
      {"auxinfo value not a string", dist("<auxinfo><dict><key>VERSION</key><integer>14</integer></dict></auxinfo>"),
       "", "", ""},
      {"a version too long", dist("<pkg-ref version=\"" + std::string(33, '1') + "\"/>"), "", "", ""},
      {"en when no English",
       dist("<title>SU_TITLE</title>" + strings("\"SU_TITLE\" = \"fr\";", "fr") + strings("\"SU_TITLE\" = \"en\";", "en")),
       "en", "", ""},
      {"the first table when no English",
       dist("<title>SU_TITLE</title>" + strings("\"SU_TITLE\" = \"Deutsch\";", "German")), "Deutsch", "", ""},
      {"a title with a control character",
       dist("<title>SU_TITLE</title>" + strings("\"SU_TITLE\" = \"bad\\u0007title\";")), "", "", ""},
      {"a title too long", dist("<title>" + std::string(257, 't') + "</title>"), "", "", ""},
      {"a title of 256 bytes", dist("<title>" + std::string(256, 't') + "</title>"), std::string(256, 't'), "", ""},
  };
  for (const Row& row : rows) {
    auto r = parseDistribution(row.xml);
    ASSERT_TRUE(r) << row.name << ": " << r.error().context;
    EXPECT_EQ(r->title, row.title) << row.name;
    EXPECT_EQ(r->version, row.version) << row.name;
    EXPECT_EQ(r->build, row.build) << row.name;
  }
}

TEST(AppleDistribution, TheStringsTable) {
  struct S {
    const char* name;
    std::string table;
    const char* title;  // SU_TITLE's value ("SU_TITLE" when unresolved)
  };
  const std::vector<S> rows = {
      {"double quotes", "\"SU_TITLE\" = \"A\";", "A"},
      {"single quotes", "'SU_TITLE' = 'A \"b\"';", "A \"b\""},
      {"no spaces", "\"SU_TITLE\"=\"A\";", "A"},
      {"newlines between", "\n\"SU_TITLE\"\n=\n\"A\"\n;\n", "A"},
      {"escapes", "\"SU_TITLE\" = \"a \\\"q\\\" \\\\ \\' z\";", "a \"q\" \\ ' z"},
      {"unicode escape", "\"SU_TITLE\" = \"caf\\U00e9\";", "caf\xc3\xa9"},
      {"a surrogate escape stops the table", "\"SU_TITLE\" = \"\\UD800\";", "SU_TITLE"},
      {"utf-8 as is", "\"SU_TITLE\" = \"macOS Sonoma — 14\";", "macOS Sonoma — 14"},
      {"bare words", "SU_TITLE = Sonoma;", "Sonoma"},
      {"key only", "\"SU_TITLE\";", "SU_TITLE"},
      {"block comments", "/* c */ \"SU_TITLE\" /* c */ = /* c */ \"A\" /* c */;", "A"},
      {"line comments", "// c\n\"SU_TITLE\" = \"A\"; // c", "A"},
      {"first definition wins", "\"SU_TITLE\" = \"A\";\n\"SU_TITLE\" = \"B\";", "A"},
      {"entries before an error are kept", "\"SU_TITLE\" = \"A\";\n\"X\" = ;", "A"},
      {"entries after an error are not", "\"X\" = ;\n\"SU_TITLE\" = \"A\";", "SU_TITLE"},
      {"missing semicolon", "\"SU_TITLE\" = \"A\"", "SU_TITLE"},
      {"unterminated string", "\"SU_TITLE\" = \"A;", "SU_TITLE"},
      {"unterminated comment", "\"SU_TITLE\" = \"A\"; /* x", "A"},
      {"trailing backslash", "\"SU_TITLE\" = \"A\\", "SU_TITLE"},
      {"empty value", "\"SU_TITLE\" = \"\";", ""},
      {"empty table", "", "SU_TITLE"},
  };
  for (const S& row : rows) {
    auto r = parseDistribution(dist("<title>SU_TITLE</title>" + strings(row.table)));
    ASSERT_TRUE(r) << row.name << ": " << r.error().context;
    EXPECT_EQ(r->title, row.title) << row.name;
  }
  // Thousands of entries: bounded, and the first ones still count.
  std::string many = "\"SU_TITLE\" = \"A\";";
  for (int i = 0; i < 10000; ++i) many += "\"K" + std::to_string(i) + "\" = \"v\";";
  many += "\"SU_VERS\" = \"1.0\";";
  auto r = parseDistribution(dist("<title>SU_TITLE</title>" + strings(many)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->title, "A");
  EXPECT_EQ(r->version, "");  // past the 4096 entries read
}

TEST(AppleDistribution, RefusesWhatIsNotADistribution) {
  std::string bomb = "<?xml version=\"1.0\"?><!DOCTYPE installer-gui-script [<!ENTITY a \"aaaaaaaaaa\">";
  for (char e = 'b'; e <= 'j'; ++e) {
    bomb.append("<!ENTITY ").push_back(e);
    bomb.append(" \"");
    for (int k = 0; k < 10; ++k) bomb.append("&").append(1, static_cast<char>(e - 1)).append(";");
    bomb.append("\">");
  }
  bomb += "]><installer-gui-script><title>&j;</title></installer-gui-script>";
  std::string deep = "<installer-gui-script>";
  for (int i = 0; i < 1000; ++i) deep += "<a>";
  for (int i = 0; i < 1000; ++i) deep += "</a>";
  deep += "</installer-gui-script>";
  const std::vector<std::pair<const char*, std::string>> rows = {
      {"empty", ""},
      {"text", "SU_TITLE"},
      {"another root", "<installer-script><title>x</title></installer-script>"},
      {"a plist", "<plist><dict/></plist>"},
      {"not well-formed", "<installer-gui-script><title>x</installer-gui-script>"},
      {"a DOCTYPE", "<!DOCTYPE installer-gui-script><installer-gui-script/>"},
      {"an entity bomb", bomb},
      {"an external entity",
       "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><installer-gui-script>&e;</installer-gui-script>"},
      {"1000 deep", deep},
      {"larger than 4 MiB", dist("<title>x</title><!--" + std::string(kDistributionMaxBytes, 'x') + "-->")},
  };
  for (const auto& [name, xml] : rows) {
    auto r = parseDistribution(xml);
    EXPECT_FALSE(r) << name;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::Invalid) << name;
    }
  }
}

TEST(AppleDistribution, EveryTruncationIsSafe) {
  const std::string full = kUpdateDist;
  // Only the whole file (give or take the final newline) is XML.
  for (size_t n = 0; n + 1 < full.size(); ++n) EXPECT_FALSE(parseDistribution(std::string_view(full).substr(0, n))) << n;
  EXPECT_TRUE(parseDistribution(full));
}

const char* kSmd = R"(<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>CFBundleShortVersionString</key><string>17.6</string>
  <key>PostDate</key><date>2024-07-29T17:00:00Z</date>
  <key>localization</key>
  <dict>
    <key>English</key>
    <dict>
      <key>title</key><string>Safari</string>
      <key>description</key><string>&lt;p&gt;Fixes.&lt;/p&gt;</string>
    </dict>
    <key>French</key>
    <dict><key>title</key><string>Safari (fr)</string></dict>
  </dict>
</dict>
</plist>
)";

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

std::string smd(const std::string& inner) { return "<plist version=\"1.0\"><dict>" + inner + "</dict></plist>"; }

TEST(AppleServerMetadata, TitleAndVersionFromXmlAndBinary) {
  for (const std::string& bytes : {std::string(kSmd), toBinary(kSmd)}) {
    auto r = parseServerMetadata(bytes);
    ASSERT_TRUE(r) << r.error().context;
    EXPECT_EQ(r->title, "Safari");
    EXPECT_EQ(r->version, "17.6");
    EXPECT_EQ(r->build, "");
  }
}

TEST(AppleServerMetadata, FieldsOfTheWrongTypeAreNotGiven) {
  struct S {
    const char* name;
    std::string xml;
    const char* title;
    const char* version;
  };
  const std::vector<S> rows = {
      {"en", smd("<key>localization</key><dict><key>en</key><dict><key>title</key><string>T</string></dict></dict>"),
       "T", ""},
      {"English before en",
       smd("<key>localization</key><dict><key>en</key><dict><key>title</key><string>e</string></dict>"
           "<key>English</key><dict><key>title</key><string>E</string></dict></dict>"),
       "E", ""},
      {"only French", smd("<key>localization</key><dict><key>French</key><dict><key>title</key><string>F</string>"
                          "</dict></dict>"),
       "", ""},
      {"version an integer", smd("<key>CFBundleShortVersionString</key><integer>17</integer>"), "", ""},
      {"version with a space", smd("<key>CFBundleShortVersionString</key><string>17 6</string>"), "", ""},
      {"localization an array", smd("<key>localization</key><array/>"), "", ""},
      {"English a string", smd("<key>localization</key><dict><key>English</key><string>x</string></dict>"), "", ""},
      {"title an array",
       smd("<key>localization</key><dict><key>English</key><dict><key>title</key><array/></dict></dict>"), "", ""},
      {"a bad English title, a good en one",
       smd("<key>localization</key><dict><key>English</key><dict><key>title</key><string></string></dict>"
           "<key>en</key><dict><key>title</key><string>ok</string></dict></dict>"),
       "ok", ""},
      {"empty", smd(""), "", ""},
  };
  for (const S& row : rows) {
    auto r = parseServerMetadata(row.xml);
    ASSERT_TRUE(r) << row.name << ": " << r.error().context;
    EXPECT_EQ(r->title, row.title) << row.name;
    EXPECT_EQ(r->version, row.version) << row.name;
  }
}

TEST(AppleServerMetadata, RefusesWhatIsNotAPlistDictionary) {
  std::string deep = "<plist>";
  for (int i = 0; i < 200; ++i) deep += "<array>";
  for (int i = 0; i < 200; ++i) deep += "</array>";
  deep += "</plist>";
  const std::vector<std::pair<const char*, std::string>> rows = {
      {"empty", ""},
      {"text", "title = x"},
      {"an array", "<plist><array/></plist>"},
      {"a string", "<plist><string>x</string></plist>"},
      {"not well-formed", "<plist><dict><key>a</key></plist>"},
      {"an internal subset", "<!DOCTYPE plist [<!ENTITY a \"b\">]><plist><dict/></plist>"},
      {"200 deep", deep},
      {"larger than 1 MiB", smd("<key>x</key><string>" + std::string(kServerMetadataMaxBytes, 'x') + "</string>")},
      {"binary truncated", toBinary(kSmd).substr(0, 40)},
  };
  for (const auto& [name, bytes] : rows) {
    auto r = parseServerMetadata(bytes);
    EXPECT_FALSE(r) << name;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::Invalid) << name;
    }
  }
  const std::string full = kSmd;
  for (size_t n = 0; n + 1 < full.size(); ++n) EXPECT_FALSE(parseServerMetadata(full.substr(0, n))) << n;
}

}  // namespace
}  // namespace orchard::catalog::apple
