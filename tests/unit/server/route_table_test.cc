// Tests for server/http/route_table, by tables (STYLE pattern 4): literal
// over parameter precedence (whatever the order rows were added in),
// parameters extracted and percent-decoded, malformed escapes and empty
// segments, trailing slashes, segment counts, 405 with its Allow list (GET
// rows allow HEAD too), "*" rows, listener masks, add() refusing malformed
// and conflicting patterns, and percentDecode itself.
#include "server/http/route_table.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace orchard::server {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

HandlerFactory none() {
  return [](HandlerRequest&&) -> RequestHandler* { return nullptr; };
}

struct RowSpec {
  const char* method;
  const char* pattern;
  uint8_t listeners = kAnyListener;
};

RouteTable build(const std::vector<RowSpec>& rows) {
  RouteTable t;
  for (const auto& r : rows) t.add(r.method, r.pattern, none(), r.listeners);
  return t;
}

struct MatchCase {
  const char* name;
  const char* method;
  const char* path;
  const char* want;  // the matched row's pattern, nullptr for none
  Params params = {};
  const char* allow = "";
  uint8_t listener = kPlainListener;
};

void expectMatch(const RouteTable& t, const MatchCase& c) {
  SCOPED_TRACE(std::string(c.name) + ": " + c.method + " " + c.path);
  RouteTable::Match m = t.match(c.method, c.path, c.listener);
  if (c.want) {
    ASSERT_NE(m.row, nullptr) << "allow: " << m.allow;
    EXPECT_EQ(m.row->pattern, c.want);
  } else {
    EXPECT_EQ(m.row, nullptr) << m.row->pattern;
  }
  EXPECT_EQ(m.params.items, c.params);
  EXPECT_EQ(m.allow, c.allow);
}

const std::vector<RowSpec> kRows = {
    {"GET", "/"},
    {"GET", "/health"},
    {"POST", "/health"},
    {"GET", "/files/"},
    {"GET", "/api/v1/packages"},
    {"GET", "/api/v1/packages/{name}"},
    {"DELETE", "/api/v1/packages/{name}"},
    {"PUT", "/api/v1/packages/{name}/{version}/{filename}"},
    {"PUT", "/api/v1/packages/{name}/{version}/targeting"},
    {"GET", "/api/v1/packages/{name}/{version}/{filename}"},
    {"POST", "/api/v1/devices/{id}/checkin", kTlsListener},
    {"GET", "/debug", kPlainListener},
    {"*", "/admin/{what}"},
};

TEST(RouteTable, MatchTable) {
  const RouteTable t = build(kRows);
  ASSERT_EQ(t.size(), kRows.size());
  const char* F = "/api/v1/packages/{name}/{version}/{filename}";
  const char* TG = "/api/v1/packages/{name}/{version}/targeting";
  const MatchCase cases[] = {
      // Literals.
      {"root", "GET", "/", "/"},
      {"literal", "GET", "/health", "/health"},
      {"literal, other method row", "POST", "/health", "/health"},
      {"literal list", "GET", "/api/v1/packages", "/api/v1/packages"},
      {"HEAD on a GET row", "HEAD", "/health", "/health"},
      // Parameters.
      {"one parameter", "GET", "/api/v1/packages/orchard", "/api/v1/packages/{name}", {{"name", "orchard"}}},
      {"same path, DELETE row", "DELETE", "/api/v1/packages/orchard", "/api/v1/packages/{name}",
       {{"name", "orchard"}}},
      {"three parameters in pattern order", "GET", "/api/v1/packages/p/1.2/p.pkg", F,
       {{"name", "p"}, {"version", "1.2"}, {"filename", "p.pkg"}}},
      {"literal beats parameter", "PUT", "/api/v1/packages/p/1.2/targeting", TG, {{"name", "p"}, {"version", "1.2"}}},
      {"parameter where the literal does not match", "PUT", "/api/v1/packages/p/1.2/p.pkg", F,
       {{"name", "p"}, {"version", "1.2"}, {"filename", "p.pkg"}}},
      {"literal is case-sensitive", "PUT", "/api/v1/packages/p/1.2/Targeting", F,
       {{"name", "p"}, {"version", "1.2"}, {"filename", "Targeting"}}},
      {"GET has no targeting row", "GET", "/api/v1/packages/p/1.2/targeting", F,
       {{"name", "p"}, {"version", "1.2"}, {"filename", "targeting"}}},
      // Percent-decoding of parameters.
      {"space decoded", "GET", "/api/v1/packages/my%20pkg", "/api/v1/packages/{name}", {{"name", "my pkg"}}},
      {"encoded slash stays in its segment", "GET", "/api/v1/packages/a%2Fb", "/api/v1/packages/{name}",
       {{"name", "a/b"}}},
      {"lower-case hex", "GET", "/api/v1/packages/%e2%82%ac", "/api/v1/packages/{name}", {{"name", "\xe2\x82\xac"}}},
      {"plus is not a space", "GET", "/api/v1/packages/a+b", "/api/v1/packages/{name}", {{"name", "a+b"}}},
      {"encoded parameter, decoded literal row", "PUT", "/api/v1/packages/a%2Fb/1%2E0/targeting", TG,
       {{"name", "a/b"}, {"version", "1.0"}}},
      {"escaped literal is the literal", "PUT", "/api/v1/packages/p/1.2/targetin%67", TG,
       {{"name", "p"}, {"version", "1.2"}}},
      // Malformed escapes match nothing, not even for a 405.
      {"bad hex", "GET", "/api/v1/packages/bad%zz", nullptr},
      {"truncated escape", "GET", "/api/v1/packages/bad%2", nullptr},
      {"lone percent", "GET", "/api/v1/packages/%", nullptr},
      {"bad escape in another segment", "GET", "/api/v1/packages/p/1.2/x%g0", nullptr},
      {"bad escape in a literal segment", "GET", "/api/v1/pack%zzages", nullptr},
      {"bad escape, other method", "POST", "/api/v1/packages/bad%zz", nullptr},
      // Empty segments never match a parameter.
      {"empty parameter", "GET", "/api/v1/packages/", nullptr},
      {"empty middle parameter", "GET", "/api/v1/packages//1.2/p.pkg", nullptr},
      {"empty last parameter", "PUT", "/api/v1/packages/p/1.2/", nullptr},
      {"encoded nothing is not empty", "GET", "/api/v1/packages/%20", "/api/v1/packages/{name}", {{"name", " "}}},
      // Trailing slashes are segments.
      {"trailing slash on a literal row", "GET", "/health/", nullptr},
      {"row with trailing slash", "GET", "/files/", "/files/"},
      {"row with trailing slash, path without", "GET", "/files", nullptr},
      {"trailing slash after a parameter", "GET", "/api/v1/packages/p/", nullptr},
      {"list with trailing slash", "GET", "/api/v1/packages/", nullptr},
      // Segment counts.
      {"too few segments", "GET", "/api/v1", nullptr},
      {"between rows", "GET", "/api/v1/packages/p/1.2", nullptr},
      {"too many segments", "GET", "/api/v1/packages/p/1.2/p.pkg/x", nullptr},
      {"double slash", "GET", "//health", nullptr},
      // Not a path.
      {"empty path", "GET", "", nullptr},
      {"no leading slash", "GET", "health", nullptr},
      {"asterisk form", "OPTIONS", "*", nullptr},
      // 405 with Allow, in row order, no duplicates; GET rows allow HEAD.
      {"405 one GET row", "PUT", "/", nullptr, {}, "GET, HEAD"},
      {"405 GET and POST", "DELETE", "/health", nullptr, {}, "GET, HEAD, POST"},
      {"405 GET and DELETE", "POST", "/api/v1/packages/p", nullptr, {}, "GET, HEAD, DELETE"},
      {"405 PUT twice, GET", "POST", "/api/v1/packages/p/1.2/targeting", nullptr, {}, "PUT, GET, HEAD"},
      {"405 PUT, GET", "DELETE", "/api/v1/packages/p/1.2/p.pkg", nullptr, {}, "PUT, GET, HEAD"},
      {"405 HEAD on a POST-only row", "HEAD", "/api/v1/devices/d/checkin", nullptr, {}, "POST", kTlsListener},
      {"methods are case-sensitive", "get", "/health", nullptr, {}, "GET, HEAD, POST"},
      // "*" rows take any method.
      {"* with GET", "GET", "/admin/stats", "/admin/{what}", {{"what", "stats"}}},
      {"* with HEAD", "HEAD", "/admin/stats", "/admin/{what}", {{"what", "stats"}}},
      {"* with an unknown method", "BREW", "/admin/pot", "/admin/{what}", {{"what", "pot"}}},
      {"* still needs the shape", "GET", "/admin", nullptr},
      // Listener masks.
      {"TLS-only row on plain", "POST", "/api/v1/devices/d/checkin", nullptr},
      {"TLS-only row on TLS", "POST", "/api/v1/devices/d/checkin", "/api/v1/devices/{id}/checkin", {{"id", "d"}}, "",
       kTlsListener},
      {"plain-only row on TLS", "GET", "/debug", nullptr, {}, "", kTlsListener},
      {"plain-only row on plain", "GET", "/debug", "/debug"},
      {"any row on TLS", "GET", "/health", "/health", {}, "", kTlsListener},
      {"no 405 from another listener's row", "GET", "/api/v1/devices/d/checkin", nullptr},
  };
  for (const auto& c : cases) expectMatch(t, c);
}

// Precedence does not depend on the order rows were added in.
TEST(RouteTable, PrecedenceEitherOrder) {
  const RowSpec filename = {"PUT", "/api/v1/packages/{name}/{version}/{filename}"};
  const RowSpec targeting = {"PUT", "/api/v1/packages/{name}/{version}/targeting"};
  const RowSpec ax = {"GET", "/a/{x}/c"};
  const RowSpec ab = {"GET", "/a/b/{y}"};
  const std::vector<std::pair<const char*, std::vector<RowSpec>>> orders = {
      {"literal rows first", {targeting, filename, ab, ax}},
      {"parameter rows first", {filename, targeting, ax, ab}},
  };
  const MatchCase cases[] = {
      {"targeting", "PUT", "/api/v1/packages/n/1/targeting", targeting.pattern, {{"name", "n"}, {"version", "1"}}},
      {"filename", "PUT", "/api/v1/packages/n/1/f.pkg", filename.pattern,
       {{"name", "n"}, {"version", "1"}, {"filename", "f.pkg"}}},
      // Left to right: the first position where shapes differ decides.
      {"leftmost literal wins", "GET", "/a/b/c", ab.pattern, {{"y", "c"}}},
      {"only the later literal matches", "GET", "/a/z/c", ax.pattern, {{"x", "z"}}},
      {"only the earlier literal matches", "GET", "/a/b/z", ab.pattern, {{"y", "z"}}},
      {"neither", "GET", "/a/z/z", nullptr},
  };
  for (const auto& [label, rows] : orders) {
    SCOPED_TRACE(label);
    const RouteTable t = build(rows);
    for (const auto& c : cases) expectMatch(t, c);
  }
}

TEST(RouteTable, ParamsGet) {
  RouteTable t = build({{"GET", "/p/{name}/{version}"}});
  auto m = t.match("GET", "/p/orchard/2%2E0");
  ASSERT_NE(m.row, nullptr);
  EXPECT_EQ(m.params.get("name"), "orchard");
  EXPECT_EQ(m.params.get("version"), "2.0");
  EXPECT_EQ(m.params.get("filename"), "");
}

// ------------------------------------------------------------------- add

TEST(RouteTable, AddRefusesMalformedPatterns) {
  for (const char* p : {"", "api", "api/v1", "{name}", "/{", "/}", "/{}", "/a/{b", "/a/b}", "/a/x{b}", "/a/{b}x",
                        "/a/{b}/c}", "/a/{b}c{d}"}) {
    SCOPED_TRACE(p);
    RouteTable t;
    EXPECT_THROW(t.add("GET", p, none()), std::invalid_argument);
    EXPECT_EQ(t.size(), 0u);
  }
}

TEST(RouteTable, AddAcceptsWellFormedPatterns) {
  for (const char* p : {"/", "/a", "/a/", "/{x}", "/a/{b}/c", "/{a}/{b}/{c}", "/a//b", "/{x}/"}) {
    SCOPED_TRACE(p);
    RouteTable t;
    EXPECT_NO_THROW(t.add("GET", p, none()));
    EXPECT_EQ(t.size(), 1u);
  }
}

TEST(RouteTable, AddConflicts) {
  const RowSpec base = {"PUT", "/api/v1/packages/{name}/{version}/{filename}", kAnyListener};
  struct Case {
    const char* name;
    RowSpec second;
    bool throws;
  } cases[] = {
      {"same row", base, true},
      {"same shape, other parameter names", {"PUT", "/api/v1/packages/{a}/{b}/{c}"}, true},
      {"same shape, one listener of the two", {"PUT", "/api/v1/packages/{a}/{b}/{c}", kTlsListener}, true},
      {"literal where the other has a parameter", {"PUT", "/api/v1/packages/{name}/{version}/targeting"}, false},
      {"other method", {"GET", "/api/v1/packages/{name}/{version}/{filename}"}, false},
      {"any method over the same shape", {"*", "/api/v1/packages/{a}/{b}/{c}"}, true},
      {"other segment count", {"PUT", "/api/v1/packages/{name}/{version}"}, false},
      {"other literal", {"PUT", "/api/v2/packages/{name}/{version}/{filename}"}, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RouteTable t;
    t.add(base.method, base.pattern, none(), base.listeners);
    if (c.throws) {
      EXPECT_THROW(t.add(c.second.method, c.second.pattern, none(), c.second.listeners), std::invalid_argument);
      EXPECT_EQ(t.size(), 1u);
    } else {
      EXPECT_NO_THROW(t.add(c.second.method, c.second.pattern, none(), c.second.listeners));
      EXPECT_EQ(t.size(), 2u);
    }
  }
}

TEST(RouteTable, DisjointListenersDoNotConflict) {
  RouteTable t;
  t.add("GET", "/status/{x}", none(), kPlainListener);
  EXPECT_NO_THROW(t.add("GET", "/status/{y}", none(), kTlsListener));
  EXPECT_THROW(t.add("GET", "/status/{z}", none(), kAnyListener), std::invalid_argument);
  expectMatch(t, {"plain", "GET", "/status/1", "/status/{x}", {{"x", "1"}}});
  expectMatch(t, {"tls", "GET", "/status/1", "/status/{y}", {{"y", "1"}}, "", kTlsListener});
}

TEST(RouteTable, FactoryIsKept) {
  RouteTable t;
  int made = 0;
  t.add("GET", "/x", [&](HandlerRequest&& r) -> RequestHandler* {
    ++made;
    EXPECT_EQ(r.params.get("nothing"), "");
    return nullptr;
  });
  auto m = t.match("GET", "/x");
  ASSERT_NE(m.row, nullptr);
  EXPECT_EQ(m.row->make(HandlerRequest{}), nullptr);
  EXPECT_EQ(made, 1);
  EXPECT_EQ(m.row->segments, (std::vector<std::string>{"x"}));
}

// ----------------------------------------------------------- percentDecode

TEST(PercentDecode, Table) {
  struct Case {
    const char* in;
    bool ok;
    std::string want;
  } cases[] = {
      {"", true, ""},
      {"abc", true, "abc"},
      {"%41", true, "A"},
      {"%2f", true, "/"},
      {"%2F", true, "/"},
      {"a%20b", true, "a b"},
      {"%25", true, "%"},
      {"%2541", true, "%41"},  // decoded once
      {"%e2%82%AC", true, "\xe2\x82\xac"},
      {"+", true, "+"},
      {"%00", true, std::string(1, '\0')},
      {"%ff", true, "\xff"},
      {"%", false, ""},
      {"%4", false, ""},
      {"a%", false, ""},
      {"a%4", false, ""},
      {"%zz", false, ""},
      {"%4g", false, ""},
      {"%g4", false, ""},
      {"%%41", false, ""},
      {"% 41", false, ""},
      {"%-1", false, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    std::string out = "junk";
    EXPECT_EQ(percentDecode(c.in, &out), c.ok);
    if (c.ok) EXPECT_EQ(out, c.want);
  }
}

}  // namespace
}  // namespace orchard::server
