// Tests for config/tokens.h and the admin.tokens key: the scope order (what
// each scope may do, as a table), token names and texts, every problem the
// loader reports for a [[admin.tokens]] entry (with its line), and the
// snapshot reading token files under the same rules.
#include "config/tokens.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "config/config.h"
#include "config/reload.h"

namespace orchard::config {
namespace {

constexpr const char* kGood = "0123456789abcdef";  // exactly kMinTokenLength

TEST(Scope, NamesRoundTrip) {
  for (Scope s : {Scope::Read, Scope::Mdm, Scope::Publish, Scope::Admin}) {
    auto back = parseScope(scopeName(s));
    ASSERT_TRUE(back.has_value()) << scopeName(s);
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(parseScope("Admin").has_value());
  EXPECT_FALSE(parseScope("write").has_value());
  EXPECT_FALSE(parseScope("").has_value());
}

TEST(Scope, WhatEachScopeMayDo) {
  // have \ need:     read   mdm    publish admin
  struct Row {
    Scope have;
    bool read, mdm, publish, admin;
  } rows[] = {
      {Scope::Read, true, false, false, false},
      {Scope::Mdm, true, true, false, false},
      {Scope::Publish, true, false, true, false},
      {Scope::Admin, true, true, true, true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(scopeName(r.have));
    EXPECT_EQ(scopeAllows(r.have, Scope::Read), r.read);
    EXPECT_EQ(scopeAllows(r.have, Scope::Mdm), r.mdm);
    EXPECT_EQ(scopeAllows(r.have, Scope::Publish), r.publish);
    EXPECT_EQ(scopeAllows(r.have, Scope::Admin), r.admin);
  }
}

TEST(TokenRules, NamesAndTexts) {
  EXPECT_EQ(tokenNameProblem("jamf"), nullptr);
  EXPECT_EQ(tokenNameProblem("ci-publisher_2.prod"), nullptr);
  EXPECT_NE(tokenNameProblem(""), nullptr);
  EXPECT_NE(tokenNameProblem("has space"), nullptr);
  EXPECT_NE(tokenNameProblem("quote\""), nullptr);
  EXPECT_NE(tokenNameProblem(std::string(65, 'a')), nullptr);
  EXPECT_EQ(tokenNameProblem(std::string(64, 'a')), nullptr);

  EXPECT_EQ(tokenTextProblem(kGood), nullptr);
  EXPECT_STREQ(tokenTextProblem(""), "the token is empty");
  EXPECT_STREQ(tokenTextProblem("0123456789abcde"), "a token needs at least 16 characters");
  EXPECT_NE(tokenTextProblem("0123456789 abcdef"), nullptr);
  EXPECT_NE(tokenTextProblem("0123456789abcdef\x7f"), nullptr);
  EXPECT_NE(tokenTextProblem(std::string(4097, 'x')), nullptr);
}

TEST(AdminTokens, ArrayOfTablesLoads) {
  LoadResult r = loadString(R"([admin]
token = "short-admin"

[[admin.tokens]]
name = "jamf"
token = "jamf-0123456789abcdef"
scope = "mdm"

[[admin.tokens]]
name = "viewer"
token_file = "/etc/orchard/viewer.token"
scope = "read"
)",
                            "t.toml");
  ASSERT_TRUE(r.ok()) << (r.problems.empty() ? "" : r.problems[0].message);
  ASSERT_EQ(r.config->adminTokens.size(), 2u);
  EXPECT_EQ(r.config->adminTokens[0], (TokenSpec{"jamf", "jamf-0123456789abcdef", "", Scope::Mdm}));
  EXPECT_EQ(r.config->adminTokens[1], (TokenSpec{"viewer", "", "/etc/orchard/viewer.token", Scope::Read}));
  EXPECT_EQ(r.config->adminToken, "short-admin");  // admin.token keeps no minimum length
}

// One bad entry per row: the problem's text, and the line of the entry.
TEST(AdminTokens, EveryProblemNamesTheKeyAndTheEntry) {
  struct Case {
    const char* entry;    // the body of one [[admin.tokens]] table
    const char* message;  // the whole problem text
  } cases[] = {
      {"name = \"a\"\ntoken = \"0123456789abcdef\"\nscope = \"root\"\n",
       "token \"a\": scope must be read, mdm, publish or admin, got \"root\""},
      {"name = \"a\"\ntoken = \"0123456789abcdef\"\n",
       "token \"a\": needs scope = \"read\", \"mdm\", \"publish\" or \"admin\""},
      {"name = \"a\"\ntoken = \"short\"\nscope = \"read\"\n", "token \"a\": a token needs at least 16 characters"},
      {"name = \"a\"\ntoken = \"\"\nscope = \"read\"\n", "token \"a\": the token is empty"},
      {"name = \"a\"\nscope = \"read\"\n", "token \"a\": needs token = \"...\" or token_file = \"/path\""},
      {"name = \"a\"\ntoken = \"0123456789abcdef\"\ntoken_file = \"/x\"\nscope = \"read\"\n",
       "token \"a\": set token or token_file, not both"},
      {"name = \"a\"\ntoken_file = \"\"\nscope = \"read\"\n", "token \"a\": token_file is empty"},
      {"token = \"0123456789abcdef\"\nscope = \"read\"\n", "a token entry needs name = \"...\""},
      {"name = \"\"\ntoken = \"0123456789abcdef\"\nscope = \"read\"\n",
       "token \"\": a token name must not be empty"},
      {"name = \"a b\"\ntoken = \"0123456789abcdef\"\nscope = \"read\"\n",
       "token \"a b\": a token name is made of letters, digits, '.', '_' and '-'"},
      {"name = \"admin\"\ntoken = \"0123456789abcdef\"\nscope = \"admin\"\n",
       "token \"admin\": the name \"admin\" is admin.token's (or the generated token's); choose another"},
      {"name = \"a\"\ntoken = \"0123456789abcdef\"\nscope = \"read\"\nrole = \"x\"\n",
       "unknown key \"role\" in a token entry (name, token, token_file, scope)"},
      {"name = 7\ntoken = \"0123456789abcdef\"\nscope = \"read\"\n", "name: expected a string, got 7"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.entry);
    const std::string toml = std::string("[admin]\n\n[[admin.tokens]]\n") + c.entry;
    LoadResult r = loadString(toml, "t.toml");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u) << r.problems[0].message << " / " << r.problems.back().message;
    EXPECT_EQ(r.problems[0].key, "admin.tokens");
    EXPECT_EQ(r.problems[0].message, c.message);
    EXPECT_GE(r.problems[0].line, 3);
  }
}

TEST(AdminTokens, DuplicatesAcrossEntries) {
  LoadResult r = loadString(R"([admin]
token = "0123456789abcdef-admin"
[[admin.tokens]]
name = "a"
token = "0123456789abcdef-one"
scope = "read"
[[admin.tokens]]
name = "a"
token = "0123456789abcdef-two"
scope = "mdm"
[[admin.tokens]]
name = "b"
token = "0123456789abcdef-one"
scope = "publish"
)",
                            "t.toml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].message, "token \"a\": the name is used twice");
  EXPECT_EQ(r.problems[0].line, 7);
  EXPECT_EQ(r.problems[1].message, "token \"b\": the same secret as token \"a\": give each token its own");
  EXPECT_EQ(r.problems[1].line, 11);
  // admin.token's secret again (a rule across two keys).
  r = loadString(R"([admin]
token = "0123456789abcdef-admin"
[[admin.tokens]]
name = "c"
token = "0123456789abcdef-admin"
scope = "read"
)",
                 "t.toml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].key, "admin.tokens");
  EXPECT_EQ(r.problems[0].message, "token \"c\" is the same secret as admin.token: give each token its own");
}

TEST(AdminTokens, NotATableList) {
  LoadResult r = loadString("[admin]\ntokens = \"jamf\"\n", "t.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problems[0].key, "admin.tokens");
  EXPECT_EQ(r.problems[0].line, 2);
  r = loadString("[admin]\ntokens = [\"jamf\"]\n", "t.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problems[0].key, "admin.tokens");
}

class TokenFiles : public ::testing::Test {
 protected:
  std::string file(const std::string& text) {
    char path[] = "/tmp/orchard-token-XXXXXX";
    int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    ::close(fd);
    std::ofstream(path) << text;
    files_.emplace_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& f : files_) std::remove(f.c_str());
  }
  std::vector<std::string> files_;
};

TEST_F(TokenFiles, SnapshotReadsTheFilesUnderTheSameRules) {
  Config c = defaults();
  c.adminToken = "the-admin-token";
  c.adminTokens = {{"jamf", "", file("jamf-token-0123456789\n"), Scope::Mdm},
                   {"ci", "ci-token-0123456789ab", "", Scope::Publish}};
  SnapshotResult s = buildSnapshot(c, 1);
  ASSERT_TRUE(s.ok()) << s.problems[0].message;
  ASSERT_EQ(s.snapshot->namedTokens.size(), 2u);
  EXPECT_EQ(s.snapshot->namedTokens[0].name, "jamf");
  EXPECT_EQ(s.snapshot->namedTokens[0].secret, "jamf-token-0123456789");
  EXPECT_EQ(s.snapshot->namedTokens[0].scope, Scope::Mdm);
  EXPECT_EQ(s.snapshot->namedTokens[1].secret, "ci-token-0123456789ab");

  // Missing, short, and a copy of another token: each a problem naming the token.
  c.adminTokens = {{"gone", "", "/nonexistent/orchard.token", Scope::Read},
                   {"short", "", file("tiny\n"), Scope::Read},
                   {"copy", "", file("ci-token-0123456789ab\n"), Scope::Read},
                   {"ci", "ci-token-0123456789ab", "", Scope::Publish}};
  s = buildSnapshot(c, 2);
  ASSERT_FALSE(s.ok());
  ASSERT_EQ(s.problems.size(), 3u);
  for (const Problem& p : s.problems) EXPECT_EQ(p.key, "admin.tokens");
  EXPECT_NE(s.problems[0].message.find("token \"gone\": cannot read the token file"), std::string::npos)
      << s.problems[0].message;
  EXPECT_NE(s.problems[1].message.find("a token needs at least 16 characters"), std::string::npos)
      << s.problems[1].message;
  EXPECT_EQ(s.problems[2].message, "token \"ci\" is the same secret as token \"copy\": give each its own");

  // A file holding admin.token's own secret.
  c.adminToken = "the-admin-token-0";
  c.adminTokens = {{"twin", "", file("the-admin-token-0\n"), Scope::Read}};
  s = buildSnapshot(c, 4);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.problems[0].message, "token \"twin\" is the same secret as admin.token: give each its own");
}

}  // namespace
}  // namespace orchard::config
