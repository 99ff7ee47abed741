// Tests for catalog/names: each rule of the path-field validators as a
// table of exact strings (vendor names that must pass, every refusal with
// the byte sequence that triggers it, including overlong UTF-8 for '/' and
// '.'), the per-field length limits at the boundary, the API's reserved
// filenames, and RFC 3986 percent-encoding. The hard part is writing the
// byte strings exactly: string literals with embedded NULs need an
// explicit length, hence std::string_view(..., n) in places.
#include "catalog/names.h"

#include <gtest/gtest.h>

#include <string>

#include "catalog/utf8.h"

namespace orchard::catalog {
namespace {

using namespace std::string_view_literals;

enum Field { Name = 1, Version = 2, Filename = 4, All = 7 };

struct NameCase {
  std::string_view value;
  int fields;             // the fields this case applies to
  const char* problem;    // substring of the problem; nullptr when valid
};

std::optional<std::string> check(Field f, std::string_view v) {
  switch (f) {
    case Name: return validateName(v);
    case Version: return validateVersion(v);
    default: return validateFilename(v);
  }
}

class NamesTest : public ::testing::TestWithParam<NameCase> {};

TEST_P(NamesTest, Table) {
  const NameCase& c = GetParam();
  for (Field f : {Name, Version, Filename}) {
    if (!(c.fields & f)) continue;
    const auto got = check(f, c.value);
    SCOPED_TRACE("field " + std::to_string(f) + " value " + printable(c.value, 300));
    if (c.problem == nullptr) {
      EXPECT_FALSE(got.has_value()) << *got;
    } else {
      ASSERT_TRUE(got.has_value());
      EXPECT_NE(got->find(c.problem), std::string::npos) << *got;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, NamesTest,
    ::testing::Values(
        // What vendors ship.
        NameCase{"Google Chrome.pkg", All, nullptr},
        NameCase{"Microsoft_Word_16.89_Updater.pkg", All, nullptr},
        NameCase{"Zoom (Intel).pkg", All, nullptr},
        NameCase{"1.2.3-beta+45", All, nullptr},
        NameCase{"128.0.6613.120", All, nullptr},
        NameCase{"Firefox 130.0.dmg", All, nullptr},
        NameCase{"com.example.app", All, nullptr},
        NameCase{"Slack [arm64], v4.40 & more!.pkg", All, nullptr},
        NameCase{"it's=@~#.pkg", All, nullptr},
        NameCase{"Café Übersetzer.pkg", All, nullptr},          // UTF-8 letters
        NameCase{"日本語.pkg", All, nullptr},
        NameCase{"emoji \xF0\x9F\x8D\x8E.pkg", All, nullptr},   // U+1F34E, 4 bytes
        NameCase{"a", All, nullptr},
        NameCase{"a.b", All, nullptr},
        NameCase{"x-", All, nullptr},
        NameCase{"x.", All, nullptr},
        // Empty and path components.
        NameCase{"", All, "is empty"},
        NameCase{".", All, "path component"},
        NameCase{"..", All, "path component"},
        NameCase{"a..b", All, "'..'"},
        NameCase{"app..", All, "'..'"},
        NameCase{"...", All, "'..'"},
        // Separators.
        NameCase{"a/b", All, "separator '/'"},
        NameCase{"/etc", All, "separator '/'"},
        NameCase{"../x", All, "separator '/'"},
        NameCase{"a\\b", All, "separator '\\'"},
        NameCase{"..\\x", All, "separator '\\'"},
        // Control bytes: C0, NUL, DEL, C1 (as UTF-8 code points and as raw bytes).
        NameCase{std::string_view("a\0b", 3), All, "NUL"},
        NameCase{"a\tb", All, "control byte at byte 1"},
        NameCase{"a\nb", All, "control byte"},
        NameCase{"a\rb", All, "control byte"},
        NameCase{"\x1b[31m", All, "control byte at byte 0"},
        NameCase{"a\x7f", All, "control byte"},
        NameCase{"a\xC2\x85z", All, "U+0085"},                   // NEL
        NameCase{"a\xC2\x9Bz", All, "U+009B"},                   // CSI
        NameCase{"a\x85z", All, "not valid UTF-8 at byte 1"},    // raw C1 byte
        // Overlong and otherwise invalid UTF-8.
        NameCase{"a\xC0\xAF" "b", All, "not valid UTF-8 at byte 1"},   // overlong '/'
        NameCase{"\xC0\xAE\xC0\xAE", All, "not valid UTF-8 at byte 0"},  // overlong ".."
        NameCase{"a\xC0\xAE" "b", All, "not valid UTF-8"},              // overlong '.'
        NameCase{"a\xE0\x80\xAF", All, "not valid UTF-8"},             // 3-byte overlong '/'
        NameCase{"a\xF0\x80\x80\xAF", All, "not valid UTF-8"},         // 4-byte overlong '/'
        NameCase{"a\xC1\x9C", All, "not valid UTF-8"},                 // overlong '\'
        NameCase{"a\xED\xA0\x80", All, "not valid UTF-8"},             // surrogate U+D800
        NameCase{"a\xF4\x90\x80\x80", All, "not valid UTF-8"},         // above U+10FFFF
        NameCase{"a\xC3", All, "not valid UTF-8"},                     // truncated
        NameCase{"a\xFF", All, "not valid UTF-8"},
        // Refused ASCII punctuation.
        NameCase{"a%2Fb", All, "'%'"},
        NameCase{"a:b", All, "':'"},
        NameCase{"a*b", All, "'*'"},
        NameCase{"a?b", All, "'?'"},
        NameCase{"a\"b", All, "'\"'"},
        NameCase{"a<b>", All, "'<'"},
        NameCase{"a|b", All, "'|'"},
        NameCase{"$(rm)", All, "'$'"},
        NameCase{"a`b`", All, "'`'"},
        NameCase{"a;b", All, "';'"},
        NameCase{"{name}", All, "'{'"},
        // Invisible characters and normalisation look-alikes.
        NameCase{"a\xE2\x80\xAE" "gkp.exe", All, "U+202E"},   // right-to-left override
        NameCase{"a\xE2\x80\x8B" "b", All, "U+200B"},          // zero-width space
        NameCase{"\xEF\xBB\xBF" "app", All, "U+FEFF"},         // BOM
        NameCase{"a\xEF\xBC\x8F" "b", All, "U+FF0F"},          // fullwidth solidus
        NameCase{"a\xEF\xBC\xBC" "b", All, "U+FF3C"},          // fullwidth reverse solidus
        NameCase{"a\xE2\x88\x95" "b", All, "U+2215"},          // division slash
        NameCase{"\xE2\x80\xA5", All, "U+2025"},               // two-dot leader: NFKC ".."
        NameCase{"a\xEF\xBC\x8E\xEF\xBC\x8E", All, "U+FF0E"},  // fullwidth full stops
        NameCase{"a\xC2\xAD" "b", All, "U+00AD"},              // soft hyphen
        // Spaces and leading characters.
        NameCase{" Chrome.pkg", All, "space"},
        NameCase{"Chrome.pkg ", All, "space"},
        NameCase{" ", All, "space"},
        NameCase{".hidden", All, "starts with '.'"},
        NameCase{".pkg", All, "starts with '.'"},
        NameCase{"-rf", All, "starts with '-'"},
        NameCase{"--help", All, "starts with '-'"},
        // The API's words: refused as filenames only, in any case.
        NameCase{"targeting", Filename, "reserves"},
        NameCase{"rollout", Filename, "reserves"},
        NameCase{"manifest", Filename, "reserves"},
        NameCase{"manifests", Filename, "reserves"},
        NameCase{"metadata", Filename, "reserves"},
        NameCase{"versions", Filename, "reserves"},
        NameCase{"Targeting", Filename, "reserves"},
        NameCase{"MANIFESTS", Filename, "reserves"},
        NameCase{"targeting", Name | Version, nullptr},
        NameCase{"manifest.pkg", Filename, nullptr},
        NameCase{"versions2", Filename, nullptr}));

struct LengthCase {
  Field field;
  size_t limit;
};

class NamesLengthTest : public ::testing::TestWithParam<LengthCase> {};

TEST_P(NamesLengthTest, LimitIsInBytes) {
  const LengthCase& c = GetParam();
  EXPECT_FALSE(check(c.field, std::string(c.limit, 'a')).has_value());
  const auto over = check(c.field, std::string(c.limit + 1, 'a'));
  ASSERT_TRUE(over.has_value());
  EXPECT_NE(over->find("at most " + std::to_string(c.limit)), std::string::npos) << *over;
  // Two-byte letters: the limit counts bytes, not characters.
  std::string wide;
  while (wide.size() + 2 <= c.limit) wide += "\xC3\xA9";
  EXPECT_FALSE(check(c.field, wide).has_value());
  EXPECT_TRUE(check(c.field, wide + "\xC3\xA9").has_value());
}

INSTANTIATE_TEST_SUITE_P(Limits, NamesLengthTest,
                         ::testing::Values(LengthCase{Name, 128}, LengthCase{Version, 64},
                                           LengthCase{Filename, 255}));

TEST(NamesTest, ProblemNeverQuotesTheValue) {
  const auto p = validateName("bad\x1b]0;pwned\x07name");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->find("pwned"), std::string::npos);
}

struct EncodeCase {
  std::string_view in;
  const char* want;
};

class EncodePathSegmentTest : public ::testing::TestWithParam<EncodeCase> {};

TEST_P(EncodePathSegmentTest, Table) { EXPECT_EQ(encodePathSegment(GetParam().in), GetParam().want); }

INSTANTIATE_TEST_SUITE_P(
    Cases, EncodePathSegmentTest,
    ::testing::Values(EncodeCase{"Google Chrome.pkg", "Google%20Chrome.pkg"},
                      EncodeCase{"Zoom (Intel).pkg", "Zoom%20%28Intel%29.pkg"},
                      EncodeCase{"1.2.3-beta+45", "1.2.3-beta%2B45"},
                      EncodeCase{"a_b~c-d.e", "a_b~c-d.e"},
                      EncodeCase{"AZaz09", "AZaz09"},
                      EncodeCase{"", ""},
                      EncodeCase{"a/b?c#d&e=f%g", "a%2Fb%3Fc%23d%26e%3Df%25g"},
                      EncodeCase{"Café", "Caf%C3%A9"},
                      EncodeCase{"[x],'y'!@", "%5Bx%5D%2C%27y%27%21%40"},
                      EncodeCase{std::string_view("\0\xff", 2), "%00%FF"}));

}  // namespace
}  // namespace orchard::catalog
