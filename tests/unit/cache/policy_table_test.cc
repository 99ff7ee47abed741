// Tables for the cache/policy functions that policy_test.cc leaves to the
// fuzzers: decideCached (RFC 9111 §4.2, §5.2, RFC 5861), notModified
// (RFC 9110 §13.1.2, §13.1.3, §13.2.2), varyFields and variantKeyText
// (RFC 9111 §4.1) and mergeNotModified (RFC 9111 §3.2).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cache/policy.h"

namespace orchard::cache {
namespace {

constexpr int64_t T = 1'700'000'000;
using A = CachedDecision::Action;

std::string httpDate(int64_t t) {
  char buf[30];
  formatHttpDate(t, buf);
  return buf;
}

const char* actionName(A a) {
  switch (a) {
    case A::Serve: return "Serve";
    case A::ServeStaleAndRevalidate: return "ServeStaleAndRevalidate";
    case A::Revalidate: return "Revalidate";
  }
  return "?";
}

// ----------------------------------------------------------- decideCached

struct CachedCase {
  const char* name;
  // The stored response: received at T (request sent at T - delay), Date
  // T + dateOffset, optional Age, Expires T + expiresIn, Last-Modified T - lmAgo.
  const char* respCc = "";
  int64_t dateOffset = 0;
  const char* ageHeader = nullptr;
  int64_t delay = 0;
  int64_t expiresIn = 0;
  const char* expiresRaw = nullptr;
  int64_t lmAgo = 0;
  uint16_t status = 200;
  // The request.
  const char* reqCc = "";
  bool pragma = false;
  int64_t resident = 0;  // now = T + resident
  // Expected.
  A action = A::Revalidate;
  int64_t age = 0;
  int64_t lifetime = 0;
  bool stale = false;
  bool sie = false;
  bool mustRevalidate = false;
};

TEST(DecideCached, Table) {
  const CachedCase cases[] = {
      // Age and lifetime.
      {.name = "max-age, just received", .respCc = "max-age=60", .action = A::Serve, .lifetime = 60},
      {.name = "max-age, resident 59 s", .respCc = "max-age=60", .resident = 59, .action = A::Serve, .age = 59,
       .lifetime = 60},
      {.name = "max-age, resident 60 s", .respCc = "max-age=60", .resident = 60, .age = 60, .lifetime = 60,
       .stale = true},
      {.name = "Age header counts", .respCc = "max-age=60", .ageHeader = "50", .resident = 10, .age = 60,
       .lifetime = 60, .stale = true},
      {.name = "Date in the past counts", .respCc = "max-age=60", .dateOffset = -30, .resident = 10,
       .action = A::Serve, .age = 40, .lifetime = 60},
      {.name = "response delay counts", .respCc = "max-age=60", .ageHeader = "0", .delay = 5, .resident = 10,
       .action = A::Serve, .age = 15, .lifetime = 60},
      {.name = "s-maxage first", .respCc = "max-age=600, s-maxage=6", .resident = 5, .action = A::Serve, .age = 5,
       .lifetime = 6, .mustRevalidate = true},
      {.name = "max-age=0", .respCc = "max-age=0", .lifetime = 0, .stale = true},
      {.name = "Expires - Date", .expiresIn = 300, .resident = 10, .action = A::Serve, .age = 10, .lifetime = 300},
      {.name = "Expires relative to Date, not to receipt", .dateOffset = -100, .expiresIn = 300, .resident = 10,
       .action = A::Serve, .age = 110, .lifetime = 300},
      {.name = "Expires before Date", .expiresIn = -10, .lifetime = 0, .stale = true},
      {.name = "invalid Expires is expired", .expiresRaw = "0", .lmAgo = 10000, .lifetime = 0, .stale = true},
      {.name = "max-age beats Expires", .respCc = "max-age=10", .expiresIn = 300, .resident = 20, .age = 20,
       .lifetime = 10, .stale = true},
      {.name = "heuristic: 10% since Last-Modified", .lmAgo = 1000, .resident = 99, .action = A::Serve, .age = 99,
       .lifetime = 100},
      {.name = "heuristic capped at a week", .lmAgo = 100 * 86400, .resident = 86400, .action = A::Serve,
       .age = 86400, .lifetime = 7 * 86400},
      {.name = "no heuristic for 302", .lmAgo = 1000, .status = 302, .lifetime = 0, .stale = true},
      {.name = "heuristic for a public 302", .respCc = "public", .lmAgo = 1000, .status = 302, .action = A::Serve,
       .lifetime = 100},
      {.name = "Last-Modified after Date: no heuristic", .lmAgo = -10, .lifetime = 0, .stale = true},
      {.name = "immutable alone gives no lifetime", .respCc = "immutable", .lifetime = 0, .stale = true},
      // Always revalidate.
      {.name = "response no-cache", .respCc = "no-cache, max-age=60", .lifetime = 60, .mustRevalidate = true},
      {.name = "qualified no-cache counts as no-cache", .respCc = "no-cache=\"Set-Cookie\", max-age=60",
       .lifetime = 60, .mustRevalidate = true},
      {.name = "request no-cache", .respCc = "max-age=60", .reqCc = "no-cache", .lifetime = 60},
      {.name = "Pragma without Cache-Control", .respCc = "max-age=60", .pragma = true, .lifetime = 60},
      {.name = "Pragma beside Cache-Control is ignored", .respCc = "max-age=60", .reqCc = "max-stale=1",
       .pragma = true, .action = A::Serve, .lifetime = 60},
      // must-revalidate and its shared-cache forms.
      {.name = "must-revalidate fresh", .respCc = "max-age=60, must-revalidate", .action = A::Serve, .lifetime = 60,
       .mustRevalidate = true},
      {.name = "proxy-revalidate stale", .respCc = "max-age=60, proxy-revalidate", .resident = 60, .age = 60,
       .lifetime = 60, .stale = true, .mustRevalidate = true},
      {.name = "s-maxage implies proxy-revalidate", .respCc = "s-maxage=60", .resident = 61, .age = 61,
       .lifetime = 60, .stale = true, .mustRevalidate = true},
      // Request freshness constraints.
      {.name = "request max-age exceeded by a fresh response", .respCc = "max-age=60", .reqCc = "max-age=9",
       .resident = 10, .age = 10, .lifetime = 60},
      {.name = "request max-age met", .respCc = "max-age=60", .reqCc = "max-age=10", .resident = 10,
       .action = A::Serve, .age = 10, .lifetime = 60},
      {.name = "min-fresh met", .respCc = "max-age=60", .reqCc = "min-fresh=50", .resident = 10, .action = A::Serve,
       .age = 10, .lifetime = 60},
      {.name = "min-fresh not met", .respCc = "max-age=60", .reqCc = "min-fresh=51", .resident = 10, .age = 10,
       .lifetime = 60},
      {.name = "max-stale, any", .respCc = "max-age=60", .reqCc = "max-stale", .resident = 1000, .action = A::Serve,
       .age = 1000, .lifetime = 60, .stale = true},
      {.name = "max-stale=0 at the lifetime", .respCc = "max-age=60", .reqCc = "max-stale=0", .resident = 60,
       .action = A::Serve, .age = 60, .lifetime = 60, .stale = true},
      {.name = "max-stale=0 past it", .respCc = "max-age=60", .reqCc = "max-stale=0", .resident = 61, .age = 61,
       .lifetime = 60, .stale = true},
      {.name = "max-stale=40 inside", .respCc = "max-age=60", .reqCc = "max-stale=40", .resident = 100,
       .action = A::Serve, .age = 100, .lifetime = 60, .stale = true},
      {.name = "max-stale=40 past", .respCc = "max-age=60", .reqCc = "max-stale=40", .resident = 101, .age = 101,
       .lifetime = 60, .stale = true},
      {.name = "max-stale, must-revalidate", .respCc = "max-age=60, must-revalidate", .reqCc = "max-stale",
       .resident = 61, .age = 61, .lifetime = 60, .stale = true, .mustRevalidate = true},
      {.name = "max-stale, request max-age exceeded", .respCc = "max-age=60", .reqCc = "max-stale, max-age=60",
       .resident = 61, .age = 61, .lifetime = 60, .stale = true},
      {.name = "max-stale, request max-age met", .respCc = "max-age=60", .reqCc = "max-stale, max-age=61",
       .resident = 61, .action = A::Serve, .age = 61, .lifetime = 60, .stale = true},
      // stale-while-revalidate.
      {.name = "swr", .respCc = "max-age=60, stale-while-revalidate=30", .resident = 90,
       .action = A::ServeStaleAndRevalidate, .age = 90, .lifetime = 60, .stale = true},
      {.name = "swr past", .respCc = "max-age=60, stale-while-revalidate=30", .resident = 91, .age = 91,
       .lifetime = 60, .stale = true},
      {.name = "swr, fresh is served", .respCc = "max-age=60, stale-while-revalidate=30", .resident = 10,
       .action = A::Serve, .age = 10, .lifetime = 60},
      {.name = "swr, proxy-revalidate", .respCc = "max-age=60, stale-while-revalidate=30, proxy-revalidate",
       .resident = 70, .age = 70, .lifetime = 60, .stale = true, .mustRevalidate = true},
      {.name = "swr, max-stale exceeded still swr", .respCc = "max-age=60, stale-while-revalidate=30",
       .reqCc = "max-stale=5", .resident = 80, .action = A::ServeStaleAndRevalidate, .age = 80, .lifetime = 60,
       .stale = true},
      {.name = "swr, min-fresh", .respCc = "max-age=60, stale-while-revalidate=30", .reqCc = "min-fresh=0",
       .resident = 80, .age = 80, .lifetime = 60, .stale = true},
      // stale-if-error.
      {.name = "sie when fresh", .respCc = "max-age=60, stale-if-error=10", .reqCc = "no-cache", .lifetime = 60,
       .sie = true},
      {.name = "response sie inside", .respCc = "max-age=60, stale-if-error=10", .resident = 70, .age = 70,
       .lifetime = 60, .stale = true, .sie = true},
      {.name = "response sie past", .respCc = "max-age=60, stale-if-error=10", .resident = 71, .age = 71,
       .lifetime = 60, .stale = true},
      {.name = "request sie extends it", .respCc = "max-age=60, stale-if-error=10", .reqCc = "stale-if-error=20",
       .resident = 80, .age = 80, .lifetime = 60, .stale = true, .sie = true},
      {.name = "request sie alone", .respCc = "max-age=60", .reqCc = "stale-if-error=20", .resident = 80, .age = 80,
       .lifetime = 60, .stale = true, .sie = true},
      {.name = "sie, must-revalidate", .respCc = "max-age=60, stale-if-error=10, must-revalidate",
       .reqCc = "stale-if-error=10", .resident = 61, .age = 61, .lifetime = 60, .stale = true,
       .mustRevalidate = true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ObjectMeta m;
    m.status = c.status;
    m.responseTime = T;
    m.requestTime = T - c.delay;
    m.headers.emplace_back("Date", httpDate(T + c.dateOffset));
    if (*c.respCc) m.headers.emplace_back("Cache-Control", c.respCc);
    if (c.ageHeader) m.headers.emplace_back("Age", c.ageHeader);
    if (c.expiresIn) m.headers.emplace_back("Expires", httpDate(T + c.dateOffset + c.expiresIn));
    if (c.expiresRaw) m.headers.emplace_back("Expires", c.expiresRaw);
    if (c.lmAgo) m.headers.emplace_back("Last-Modified", httpDate(T + c.dateOffset - c.lmAgo));
    CachedDecision d = decideCached(m, c.reqCc, c.pragma, T + c.resident, FreshnessConfig{});
    EXPECT_EQ(d.action, c.action) << actionName(d.action) << " != " << actionName(c.action);
    EXPECT_EQ(d.age, c.age);
    EXPECT_EQ(d.lifetime, c.lifetime);
    EXPECT_EQ(d.stale, c.stale);
    EXPECT_EQ(d.staleIfErrorAllowed, c.sie);
    EXPECT_EQ(d.mustRevalidate, c.mustRevalidate);
  }
}

// ------------------------------------------------------------ notModified

TEST(NotModified, Table) {
  const std::string LM = httpDate(T);
  struct Case {
    const char* name;
    HeaderList req;
    const char* etag;
    bool want;
  };
  const Case cases[] = {
      {"no conditionals", {}, "\"v1\"", false},
      // If-None-Match: weak comparison (RFC 9110 §8.8.3.2).
      {"INM same strong", {{"If-None-Match", "\"v1\""}}, "\"v1\"", true},
      {"INM weak vs stored strong", {{"If-None-Match", "W/\"v1\""}}, "\"v1\"", true},
      {"INM strong vs stored weak", {{"If-None-Match", "\"v1\""}}, "W/\"v1\"", true},
      {"INM weak vs weak", {{"If-None-Match", "W/\"v1\""}}, "W/\"v1\"", true},
      {"INM other tag", {{"If-None-Match", "\"v2\""}}, "\"v1\"", false},
      {"INM list with the tag", {{"If-None-Match", "\"a\", \"v1\" ,\"b\""}}, "\"v1\"", true},
      {"INM list without it", {{"If-None-Match", "\"a\", \"b\""}}, "\"v1\"", false},
      {"INM second field matches", {{"If-None-Match", "\"a\""}, {"if-none-match", "\"v1\""}}, "\"v1\"", true},
      {"INM *", {{"If-None-Match", "*"}}, "\"v1\"", true},
      {"INM * with spaces", {{"If-None-Match", "  *  "}}, "\"v1\"", true},
      {"INM * without a stored ETag", {{"If-None-Match", "*"}}, "", true},
      {"INM tag without a stored ETag", {{"If-None-Match", "\"v1\""}}, "", false},
      {"INM is case-sensitive in the tag", {{"If-None-Match", "\"V1\""}}, "\"v1\"", false},
      {"INM unquoted is another tag", {{"If-None-Match", "v1"}}, "\"v1\"", false},
      {"INM name case-insensitive", {{"IF-NONE-MATCH", "\"v1\""}}, "\"v1\"", true},
      // If-Modified-Since, only without If-None-Match (RFC 9110 §13.1.3).
      {"IMS equal", {{"If-Modified-Since", LM}}, "\"v1\"", true},
      {"IMS later", {{"If-Modified-Since", httpDate(T + 1)}}, "\"v1\"", true},
      {"IMS earlier", {{"If-Modified-Since", httpDate(T - 1)}}, "\"v1\"", false},
      {"IMS RFC 850 form", {{"If-Modified-Since", "Tuesday, 14-Nov-23 22:13:20 GMT"}}, "\"v1\"", true},
      {"IMS asctime form", {{"If-Modified-Since", "Tue Nov 14 22:13:20 2023"}}, "\"v1\"", true},
      {"IMS invalid", {{"If-Modified-Since", "yesterday"}}, "\"v1\"", false},
      {"IMS with two dates is invalid", {{"If-Modified-Since", LM + ", " + LM}}, "\"v1\"", false},
      {"IMS name case-insensitive", {{"if-modified-since", LM}}, "\"v1\"", true},
      {"IMS ignored when INM present and fails", {{"If-None-Match", "\"v2\""}, {"If-Modified-Since", LM}}, "\"v1\"",
       false},
      {"IMS ignored after INM, order reversed", {{"If-Modified-Since", LM}, {"If-None-Match", "\"v2\""}}, "\"v1\"",
       false},
      {"INM wins with IMS earlier", {{"If-None-Match", "\"v1\""}, {"If-Modified-Since", httpDate(T - 100)}},
       "\"v1\"", true},
      {"INM without stored ETag blocks IMS", {{"If-None-Match", "\"x\""}, {"If-Modified-Since", LM}}, "", false},
      // Without a stored Last-Modified, the stored Date stands in (RFC 9111 §4.3.2): see
      // NotModified.DateStandsInForLastModified.
      // Other preconditions are the origin's business.
      {"If-Match alone", {{"If-Match", "\"v1\""}}, "\"v1\"", false},
      {"If-Unmodified-Since alone", {{"If-Unmodified-Since", LM}}, "\"v1\"", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ObjectMeta m;
    m.etag = c.etag;
    m.lastModified = LM;
    EXPECT_EQ(notModified(c.req, m), c.want);
  }
}

TEST(NotModified, NoStoredLastModified) {
  ObjectMeta m;
  m.etag = "\"v1\"";
  EXPECT_FALSE(notModified({{"If-Modified-Since", httpDate(T)}}, m));
  m.lastModified = "not a date";
  EXPECT_FALSE(notModified({{"If-Modified-Since", httpDate(T)}}, m));
}

// ------------------------------------------------------------- varyFields

TEST(VaryFields, Table) {
  using F = std::vector<std::string>;
  struct Case {
    const char* name;
    HeaderList resp;
    F want;
  };
  const Case cases[] = {
      {"no Vary", {{"Cache-Control", "max-age=60"}}, {}},
      {"one field, lower-cased", {{"Vary", "Accept-Encoding"}}, {"accept-encoding"}},
      {"two fields, in order", {{"Vary", "User-Agent, Accept-Encoding"}}, {"user-agent", "accept-encoding"}},
      {"spaces and empty items", {{"Vary", " ,Accept ,, Accept-Language\t,"}}, {"accept", "accept-language"}},
      {"over two lines", {{"Vary", "Accept"}, {"vary", "Origin"}}, {"accept", "origin"}},
      {"duplicates dropped, case-insensitive", {{"Vary", "Accept, ACCEPT"}, {"VARY", "accept, Origin"}},
       {"accept", "origin"}},
      {"empty Vary", {{"Vary", ""}}, {}},
      {"*", {{"Vary", "*"}}, {"*"}},
      {"* among fields", {{"Vary", "Accept, *"}}, {"accept", "*"}},
      {"* on another line", {{"Vary", "Accept"}, {"Vary", "*"}}, {"accept", "*"}},
      {"not Vary", {{"X-Vary", "Accept"}}, {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(varyFields(c.resp), c.want);
  }
}

TEST(NotModified, DateStandsInForLastModified) {
  ObjectMeta m;
  m.headers = {{"Date", httpDate(T)}};
  EXPECT_TRUE(notModified({{"If-Modified-Since", httpDate(T)}}, m));
  EXPECT_TRUE(notModified({{"If-Modified-Since", httpDate(T + 5)}}, m));
  EXPECT_FALSE(notModified({{"If-Modified-Since", httpDate(T - 5)}}, m));
  m.headers = {};
  EXPECT_FALSE(notModified({{"If-Modified-Since", httpDate(T)}}, m));  // neither: never 304
}

// --------------------------------------------------------- variantKeyText

TEST(VariantKeyText, Table) {
  const std::string P = "http://example.com/a";
  const std::string S = "\x1f";
  struct Case {
    const char* name;
    std::vector<std::string> fields;
    HeaderList req;
    std::string want;
  };
  const Case cases[] = {
      {"no fields", {}, {{"Accept", "x"}}, P},
      {"one field", {"accept-encoding"}, {{"Accept-Encoding", "gzip"}}, P + S + "accept-encoding=gzip"},
      {"field absent", {"accept-encoding"}, {}, P + S + "accept-encoding=\x1e"},
      {"field present but empty", {"accept-encoding"}, {{"Accept-Encoding", ""}}, P + S + "accept-encoding="},
      {"list members trimmed", {"foo"}, {{"Foo", " 1 ,   2 "}}, P + S + "foo=1,2"},
      {"lines and members are one list", {"foo"}, {{"Foo", "1"}, {"Foo", "2"}}, P + S + "foo=1,2"},
      {"empty members dropped", {"foo"}, {{"Foo", "1,,2,"}}, P + S + "foo=1,2"},
      // Accept-Language: case, order of equal preference and spaces do not select another variant.
      {"languages by name", {"accept-language"}, {{"Accept-Language", "en, de"}}, P + S + "accept-language=de,en"},
      {"languages in another order", {"accept-language"}, {{"Accept-Language", "de, en"}},
       P + S + "accept-language=de,en"},
      {"languages in another case", {"accept-language"}, {{"Accept-Language", "eN, De"}},
       P + S + "accept-language=de,en"},
      {"languages with spaces", {"accept-language"}, {{"Accept-Language", " en ,   de"}},
       P + S + "accept-language=de,en"},
      {"languages by preference", {"accept-language"}, {{"Accept-Language", "fr;q=0.5, de;q=1.0, en"}},
       P + S + "accept-language=de,en,fr;q=500"},
      {"q=0 is kept", {"accept-language"}, {{"Accept-Language", "en, de;q=0"}},
       P + S + "accept-language=en,de;q=0"},
      {"a bad q is kept as text", {"accept-language"}, {{"Accept-Language", "en;q=2"}},
       P + S + "accept-language=en;q=2"},
      {"name case-insensitive", {"accept-encoding"}, {{"ACCEPT-ENCODING", "gzip"}}, P + S + "accept-encoding=gzip"},
      {"value trimmed", {"accept"}, {{"Accept", "  text/html\t"}}, P + S + "accept=text/html"},
      {"value case kept", {"accept"}, {{"Accept", "Text/HTML"}}, P + S + "accept=Text/HTML"},
      {"repeated lines combined", {"accept"}, {{"Accept", "a"}, {"Other", "z"}, {"accept", "b"}},
       P + S + "accept=a,b"},
      {"two fields in the given order", {"user-agent", "accept"}, {{"Accept", "a"}, {"User-Agent", "u"}},
       P + S + "user-agent=u" + S + "accept=a"},
      {"second field absent", {"accept", "origin"}, {{"Accept", "a"}}, P + S + "accept=a" + S + "origin=\x1e"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(variantKeyText(P, c.fields, c.req), c.want);
  }
}

// Requests select the same variant exactly when their keys are equal.
TEST(VariantKeyText, SelectsTheSameVariantExactlyWhenEqual) {
  const std::vector<std::string> f = {"accept-encoding", "accept-language"};
  const std::string a = variantKeyText("k", f, {{"Accept-Encoding", "gzip"}, {"Accept-Language", "en"}});
  EXPECT_EQ(a, variantKeyText("k", f, {{"accept-language", " en"}, {"accept-encoding", "gzip "}}));
  EXPECT_NE(a, variantKeyText("k", f, {{"Accept-Encoding", "br"}, {"Accept-Language", "en"}}));
  EXPECT_NE(a, variantKeyText("k", f, {{"Accept-Encoding", "gzip"}}));
  EXPECT_NE(a, variantKeyText("other", f, {{"Accept-Encoding", "gzip"}, {"Accept-Language", "en"}}));
  // The values of two fields never run into each other.
  EXPECT_NE(variantKeyText("k", f, {{"Accept-Encoding", "a"}, {"Accept-Language", "b"}}),
            variantKeyText("k", f, {{"Accept-Encoding", "ab"}}));
}

// ------------------------------------------------------- mergeNotModified

TEST(MergeNotModified, Table) {
  const HeaderList stored = {
      {"Date", "old"},
      {"ETag", "\"v1\""},
      {"Content-Type", "text/plain"},
      {"Cache-Control", "max-age=60"},
      {"Link", "<a>"},
      {"Link", "<b>"},
  };
  struct Case {
    const char* name;
    HeaderList fresh;
    HeaderList want;
  };
  const Case cases[] = {
      {"empty 304", {}, stored},
      {"replaces and keeps order of the rest",
       {{"Date", "new"}, {"Cache-Control", "max-age=120"}},
       {{"ETag", "\"v1\""}, {"Content-Type", "text/plain"}, {"Link", "<a>"}, {"Link", "<b>"}, {"Date", "new"},
        {"Cache-Control", "max-age=120"}}},
      {"names case-insensitive",
       {{"cache-control", "no-cache"}},
       {{"Date", "old"}, {"ETag", "\"v1\""}, {"Content-Type", "text/plain"}, {"Link", "<a>"}, {"Link", "<b>"},
        {"cache-control", "no-cache"}}},
      {"all lines of a name replaced",
       {{"Link", "<c>"}},
       {{"Date", "old"}, {"ETag", "\"v1\""}, {"Content-Type", "text/plain"}, {"Cache-Control", "max-age=60"},
        {"Link", "<c>"}}},
      {"repeated fresh lines all added",
       {{"Link", "<c>"}, {"Link", "<d>"}},
       {{"Date", "old"}, {"ETag", "\"v1\""}, {"Content-Type", "text/plain"}, {"Cache-Control", "max-age=60"},
        {"Link", "<c>"}, {"Link", "<d>"}}},
      {"new header added",
       {{"Expires", "x"}},
       {{"Date", "old"}, {"ETag", "\"v1\""}, {"Content-Type", "text/plain"}, {"Cache-Control", "max-age=60"},
        {"Link", "<a>"}, {"Link", "<b>"}, {"Expires", "x"}}},
      {"the body's description is kept",
       {{"Content-Length", "0"}, {"Content-Type", "text/html"}, {"Content-Encoding", "gzip"},
        {"Transfer-Encoding", "chunked"}, {"Content-Range", "bytes 0-0/1"}, {"connection", "close"}},
       stored},
      {"ETag replaced",
       {{"ETag", "\"v2\""}},
       {{"Date", "old"}, {"Content-Type", "text/plain"}, {"Cache-Control", "max-age=60"}, {"Link", "<a>"},
        {"Link", "<b>"}, {"ETag", "\"v2\""}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(mergeNotModified(stored, c.fresh), c.want);
  }
}

TEST(MergeNotModified, StoredFramingIsNeverReplaced) {
  const HeaderList stored = {{"Content-Encoding", "br"}, {"Content-Type", "application/json"}};
  EXPECT_EQ(mergeNotModified(stored, {{"CONTENT-ENCODING", "gzip"}, {"content-type", "text/html"}}), stored);
}

}  // namespace
}  // namespace orchard::cache
