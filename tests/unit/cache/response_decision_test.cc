// Tests for cache/response_decision, by tables (STYLE pattern 4):
// invalidatedKeys (RFC 9111 §4.4), planStore (storable, shareable, oversize,
// Vary keys and stubs), parseContentRange (RFC 9110 §14.4), judgeFirstRun,
// judgeRun (If-Range continuation) and judgeRevalidation.
#include "cache/response_decision.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cache/key.h"

namespace orchard::cache {
namespace {

using Keys = std::vector<std::string>;

// -------------------------------------------------------- invalidatedKeys

TEST(InvalidatedKeys, Table) {
  const std::string P = "http://example.com/a?x=1";  // the request's own key
  struct Case {
    const char* name;
    const char* method;
    int status;
    HeaderList headers;
    Keys want;
    std::vector<std::string> ignore = {};
  };
  const Case cases[] = {
      // Safe methods never invalidate.
      {"GET 200", "GET", 200, {{"Location", "/b"}}, {}},
      {"HEAD 200", "HEAD", 200, {{"Content-Location", "/b"}}, {}},
      {"OPTIONS 200", "OPTIONS", 200, {{"Location", "/b"}}, {}},
      {"TRACE 200", "TRACE", 200, {}, {}},
      // Unsafe methods, by status: only non-error answers (2xx, 3xx).
      {"POST 200", "POST", 200, {}, {P}},
      {"PUT 204", "PUT", 204, {}, {P}},
      {"DELETE 200", "DELETE", 200, {}, {P}},
      {"PATCH 301", "PATCH", 301, {}, {P}},
      {"POST 399", "POST", 399, {}, {P}},
      {"POST 100", "POST", 100, {}, {}},
      {"POST 199", "POST", 199, {}, {}},
      {"POST 400", "POST", 400, {}, {}},
      {"POST 404", "POST", 404, {}, {}},
      {"POST 500", "POST", 500, {}, {}},
      {"POST 503 with Location", "POST", 503, {{"Location", "/b"}}, {}},
      // Location and Content-Location on the same host, relative or absolute.
      {"Location relative", "POST", 201, {{"Location", "/b"}}, {P, "http://example.com/b"}},
      {"Content-Location relative", "PUT", 200, {{"Content-Location", "/c"}}, {P, "http://example.com/c"}},
      {"both, Location first", "POST", 201, {{"Content-Location", "/c"}, {"Location", "/b"}},
       {P, "http://example.com/b", "http://example.com/c"}},
      {"header names case-insensitive", "POST", 201, {{"location", "/b"}}, {P, "http://example.com/b"}},
      {"Location absolute, same host", "POST", 201, {{"Location", "http://example.com/d"}},
       {P, "http://example.com/d"}},
      {"Location absolute, same host, with query", "POST", 201, {{"Location", "http://example.com/d?q=1"}},
       {P, "http://example.com/d?q=1"}},
      {"Location naming the request itself", "POST", 201, {{"Location", "/a?x=1"}}, {P, P}},
      // Another host (or scheme) is never invalidated.
      {"Location other host", "POST", 201, {{"Location", "http://other.com/d"}}, {P}},
      {"Content-Location other host", "POST", 201, {{"Content-Location", "https://other.com/d"}}, {P}},
      {"Location other scheme", "POST", 201, {{"Location", "https://example.com/d"}}, {P}},
      {"Location host with a suffix", "POST", 201, {{"Location", "http://example.com.evil.net/d"}}, {P}},
      {"Location host with userinfo trick", "POST", 201, {{"Location", "http://example.com@evil.net/d"}}, {P}},
      {"Location absolute, default port named", "POST", 201, {{"Location", "http://example.com:80/d"}},
       {P, "http://example.com/d"}},
      {"Location absolute, upper-case scheme and host", "POST", 201, {{"Location", "HTTP://EXAMPLE.com/d"}},
       {P, "http://example.com/d"}},
      {"Location absolute, other port", "POST", 201, {{"Location", "http://example.com:8080/d"}}, {P}},
      {"Location absolute, bad port", "POST", 201, {{"Location", "http://example.com:x/d"}}, {P}},
      // Not a path.
      {"Location network-path reference", "POST", 201, {{"Location", "//other.com/b"}}, {P}},
      {"Location without a slash", "POST", 201, {{"Location", "b"}}, {P}},
      {"Location empty", "POST", 201, {{"Location", ""}}, {P}},
      {"Location host only", "POST", 201, {{"Location", "http://example.com"}}, {P}},
      // Keys are normalised like any other: ignore_query and source params dropped.
      {"ignore_query applied", "POST", 201, {{"Location", "/e?sig=abc&k=2"}}, {P, "http://example.com/e?k=2"},
       {"sig"}},
      {"ignore_query applied to absolute", "POST", 201, {{"Location", "http://example.com/e?sig=abc"}},
       {P, "http://example.com/e"}, {"sig"}},
      {"source always dropped", "POST", 201, {{"Content-Location", "/e?source=x.example&k=2"}},
       {P, "http://example.com/e?k=2"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(invalidatedKeys(c.method, c.status, c.headers, P, "example.com", 80, c.ignore), c.want);
  }
}

TEST(InvalidatedKeys, NonDefaultPortKeepsThePort) {
  const std::string P = normaliseKey("http", "example.com", 8080, "/a", {});
  ASSERT_EQ(P, "http://example.com:8080/a");
  EXPECT_EQ(invalidatedKeys("POST", 201, {{"Location", "/b"}}, P, "example.com", 8080, {}),
            (Keys{P, "http://example.com:8080/b"}));
  // Another port is another origin; the same one named is ours.
  EXPECT_EQ(invalidatedKeys("POST", 201, {{"Location", "http://example.com:9090/b"}}, P, "example.com", 8080, {}),
            Keys{P});
  EXPECT_EQ(invalidatedKeys("POST", 201, {{"Location", "http://example.com:8080/b"}}, P, "example.com", 8080, {}),
            (Keys{P, "http://example.com:8080/b"}));
}

// -------------------------------------------------------------- planStore

struct PlanCase {
  const char* name;
  const char* method = "GET";
  int status = 200;
  HeaderList resp = {{"Cache-Control", "max-age=60"}};
  HeaderList req = {};
  const char* reqCc = "";
  bool auth = false;
  bool body = false;
  bool lengthKnown = true;
  std::optional<uint64_t> length = 100;
  bool primaryShared = true;
  // Expected.
  bool cacheable = false;
  bool shareable = false;
  bool oversize = false;
  std::optional<std::string> storeKey = {};
  std::optional<std::string> varyStub = {};
};

TEST(PlanStore, Table) {
  const std::string P = "http://example.com/a";
  const std::string AE = P + "\x1f" "accept-encoding=gzip";
  const PlanCase cases[] = {
      {.name = "GET 200 max-age", .cacheable = true, .shareable = true},
      {.name = "GET 200 heuristic", .resp = {}, .cacheable = true, .shareable = true},
      {.name = "GET 404 heuristic", .status = 404, .resp = {}, .cacheable = true, .shareable = true},
      {.name = "POST", .method = "POST"},
      {.name = "HEAD", .method = "HEAD"},
      {.name = "206", .status = 206},
      {.name = "304", .status = 304},
      {.name = "302 without freshness", .status = 302, .resp = {}},
      {.name = "302 max-age", .status = 302, .cacheable = true, .shareable = true},
      {.name = "302 with Expires", .status = 302, .resp = {{"Expires", "Tue, 14 Nov 2023 22:13:20 GMT"}},
       .cacheable = true, .shareable = true},
      {.name = "500", .status = 500, .resp = {}},
      {.name = "response no-store", .resp = {{"Cache-Control", "no-store"}}},
      {.name = "request no-store", .reqCc = "no-store"},
      {.name = "private", .resp = {{"Cache-Control", "private, max-age=60"}}},
      {.name = "Cache-Control over two lines", .resp = {{"Cache-Control", "max-age=60"}, {"Cache-Control", "private"}}},
      // Credentials (RFC 9111 §3.5).
      {.name = "Authorization, max-age only", .auth = true},
      {.name = "Authorization, public", .resp = {{"Cache-Control", "public, max-age=60"}}, .auth = true,
       .cacheable = true, .shareable = true},
      {.name = "Authorization, s-maxage", .resp = {{"Cache-Control", "s-maxage=60"}}, .auth = true,
       .cacheable = true, .shareable = true},
      {.name = "Authorization, must-revalidate", .resp = {{"Cache-Control", "max-age=60, must-revalidate"}},
       .auth = true, .cacheable = true, .shareable = true},
      // A request body: never stored, never shared.
      {.name = "GET with a body", .body = true},
      {.name = "GET with a body, public", .resp = {{"Cache-Control", "public, max-age=60"}}, .body = true},
      // Size.
      {.name = "length equal to the max", .length = 1000, .cacheable = true, .shareable = true},
      {.name = "length over the max", .length = 1001, .shareable = true, .oversize = true},
      {.name = "oversize private is just private", .resp = {{"Cache-Control", "private"}}, .length = 1001},
      {.name = "chunked: length known, not declared", .length = std::nullopt, .cacheable = true, .shareable = true},
      {.name = "end unknown", .lengthKnown = false, .length = std::nullopt},
      // Vary: stored and shared under the variant key; stub only for the primary's shared fill.
      {.name = "Vary, primary shared", .resp = {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}},
       .req = {{"Accept-Encoding", "gzip"}}, .cacheable = true, .shareable = true, .storeKey = AE,
       .varyStub = "accept-encoding"},
      {.name = "Vary, not the primary's fill",
       .resp = {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}}, .req = {{"Accept-Encoding", "gzip"}},
       .primaryShared = false, .cacheable = true, .shareable = true, .storeKey = AE},
      {.name = "Vary, two fields over two lines",
       .resp = {{"Vary", "Accept-Encoding, User-Agent"}, {"vary", "accept-encoding"}},
       .req = {{"User-Agent", "ua"}, {"Accept-Encoding", "gzip"}}, .cacheable = true, .shareable = true,
       .storeKey = P + "\x1f" "accept-encoding=gzip\x1f" "user-agent=ua", .varyStub = "accept-encoding,user-agent"},
      {.name = "Vary, field absent from the request", .resp = {{"Vary", "Accept-Language"}}, .cacheable = true,
       .shareable = true, .storeKey = P + "\x1f" "accept-language=\x1e", .varyStub = "accept-language"},
      {.name = "Vary: *", .resp = {{"Cache-Control", "max-age=60"}, {"Vary", "*"}}},
      {.name = "Vary: Accept, *", .resp = {{"Cache-Control", "max-age=60"}, {"Vary", "Accept, *"}}},
      {.name = "Vary on a private answer", .resp = {{"Cache-Control", "private"}, {"Vary", "Accept-Encoding"}}},
      {.name = "Vary on an oversize answer: not shared either",
       .resp = {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}}, .length = 1001, .oversize = true},
      {.name = "empty Vary is no Vary", .resp = {{"Cache-Control", "max-age=60"}, {"Vary", " , "}}, .cacheable = true,
       .shareable = true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ResponseFacts f;
    f.method = c.method;
    f.status = c.status;
    f.requestCacheControl = c.reqCc;
    f.responseHeaders = &c.resp;
    f.requestHeaders = &c.req;
    f.requestHasAuthorization = c.auth;
    f.requestHadBody = c.body;
    f.lengthKnown = c.lengthKnown;
    f.length = c.length;
    f.maxStoredObject = 1000;
    f.primaryKey = P;
    f.primaryShared = c.primaryShared;
    StorePlan p = planStore(f);
    EXPECT_EQ(p.cacheable, c.cacheable);
    EXPECT_EQ(p.shareable, c.shareable);
    EXPECT_EQ(p.oversize, c.oversize);
    EXPECT_EQ(p.storeKey, c.storeKey);
    EXPECT_EQ(p.varyStub, c.varyStub);
  }
}

// ------------------------------------------------------ parseContentRange

TEST(ParseContentRange, Table) {
  struct Case {
    const char* in;
    bool ok;
    uint64_t first = 0;
    uint64_t total = 0;
  } cases[] = {
      {"bytes 0-99/100", true, 0, 100},
      {"bytes 10-10/11", true, 10, 11},
      {"bytes 4194304-8388607/10000000", true, 4194304, 10000000},
      {"bytes 0-0/1", true, 0, 1},
      {"bytes 5000000000-5000000009/6000000000", true, 5000000000ull, 6000000000ull},
      // b < a, b >= total.
      {"bytes 5-4/10", false},
      {"bytes 0-100/100", false},
      {"bytes 0-200/100", false},
      {"bytes 0-0/0", false},
      // Malformed.
      {"", false},
      {"bytes", false},
      {"bytes 0-99", false},
      {"bytes 0-99/", false},
      {"bytes 0-99/*", false},  // unknown complete length: no total to check against
      {"bytes */100", false},   // the unsatisfied-range form
      {"bytes=0-99/100", false},
      {"items 0-99/100", false},
      {"Bytes 0-99/100", false},
      {" bytes 0-99/100", false},
      {"bytes -99/100", false},
      {"bytes 0-/100", false},
      // Trailing junk.
      {"bytes 0-99/100x", false},
      {"bytes 0-99/100 ", false},
      {"bytes 0-99/100, bytes 0-9/100", false},
      // Digits only (sscanf took these): a sign, inner spaces, overflow.
      {"bytes 0-5/-1", false},
      {"bytes +0-5/10", false},
      {"bytes 0- 5/10", false},
      {"bytes 0-5/ 10", false},
      {"bytes 0-5/99999999999999999999", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    uint64_t first = 77, total = 77;
    EXPECT_EQ(parseContentRange(c.in, &first, &total), c.ok);
    if (c.ok) {
      EXPECT_EQ(first, c.first);
      EXPECT_EQ(total, c.total);
    } else {
      EXPECT_EQ(first, 77u) << "outputs untouched on failure";
      EXPECT_EQ(total, 77u);
    }
  }
}

// ---------------------------------------------------------- judgeFirstRun

TEST(JudgeFirstRun, Table) {
  using FK = FirstRun::Kind;
  constexpr uint64_t S = 5'000'000;
  struct Case {
    const char* name;
    int status;
    HeaderList headers;
    uint64_t start;
    FK want;
    uint64_t total = 0;
  };
  const Case cases[] = {
      {"200, no range asked", 200, {}, 0, FK::Whole},
      {"200 to a range", 200, {{"Content-Range", "bytes 0-9/10"}}, S, FK::Whole},
      {"206, no range asked", 206, {{"Content-Range", "bytes 0-9/10"}}, 0, FK::Whole},
      {"206 the range asked", 206, {{"Content-Range", "bytes 5000000-9999999/10000000"}}, S, FK::Offset, 10'000'000},
      {"206 the range asked, lower-case name", 206, {{"content-range", "bytes 5000000-5000000/5000001"}}, S,
       FK::Offset, 5'000'001},
      {"206 another start", 206, {{"Content-Range", "bytes 0-9999999/10000000"}}, S, FK::Mismatch},
      {"206 without Content-Range", 206, {}, S, FK::Mismatch},
      {"206 malformed Content-Range", 206, {{"Content-Range", "bytes 5000000-/10000000"}}, S, FK::Mismatch},
      {"206 unknown total", 206, {{"Content-Range", "bytes 5000000-9999999/*"}}, S, FK::Mismatch},
      {"304 to a range", 304, {}, S, FK::Whole},
      {"416 to a range", 416, {{"Content-Range", "bytes */10"}}, S, FK::Whole},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    FirstRun r = judgeFirstRun(c.status, c.headers, c.start);
    EXPECT_EQ(r.kind, c.want) << static_cast<int>(r.kind);
    EXPECT_EQ(r.total, c.total);
  }
}

// --------------------------------------------------------------- judgeRun

TEST(JudgeRun, Table) {
  using V = RunVerdict;
  constexpr uint64_t L = 1000;  // the object's length
  struct Case {
    const char* name;
    int status;
    HeaderList headers;
    std::optional<uint64_t> contentLength;
    const char* storedEtag;
    const char* storedLm;
    uint64_t start;
    std::optional<uint64_t> length;
    V want;
  };
  const char* E = "\"v1\"";
  const char* LM = "Tue, 14 Nov 2023 22:13:20 GMT";
  const Case cases[] = {
      // 206: exactly the run asked for, of an object of the same length.
      {"206 exact", 206, {{"Content-Range", "bytes 500-999/1000"}}, 500, E, LM, 500, L, V::Continue},
      {"206 exact, shorter run", 206, {{"Content-Range", "bytes 500-599/1000"}}, 100, E, LM, 500, L, V::Continue},
      {"206 other start", 206, {{"Content-Range", "bytes 400-999/1000"}}, 600, E, LM, 500, L, V::Changed},
      {"206 other total", 206, {{"Content-Range", "bytes 500-999/2000"}}, 500, E, LM, 500, L, V::Changed},
      {"206, length unknown", 206, {{"Content-Range", "bytes 500-999/1000"}}, 500, E, LM, 500, std::nullopt,
       V::Changed},
      {"206 without Content-Range", 206, {}, 500, E, LM, 500, L, V::Changed},
      {"206 malformed Content-Range", 206, {{"Content-Range", "bytes 500-999"}}, 500, E, LM, 500, L, V::Changed},
      // 200: the same representation (by ETag, else by Last-Modified) of the same length.
      {"200 same ETag", 200, {{"ETag", E}}, L, E, LM, 500, L, V::Discard},
      {"200 same ETag and Last-Modified", 200, {{"ETag", E}, {"Last-Modified", LM}}, L, E, LM, 500, L, V::Discard},
      {"200 same ETag, length differs", 200, {{"ETag", E}}, 999, E, LM, 500, L, V::Changed},
      {"200 same ETag, no Content-Length", 200, {{"ETag", E}}, std::nullopt, E, LM, 500, L, V::Changed},
      {"200 same ETag, length unknown", 200, {{"ETag", E}}, L, E, LM, 500, std::nullopt, V::Changed},
      {"200 other ETag", 200, {{"ETag", "\"v2\""}}, L, E, LM, 500, L, V::Changed},
      {"200 other ETag, same Last-Modified", 200, {{"ETag", "\"v2\""}, {"Last-Modified", LM}}, L, E, LM, 500, L,
       V::Changed},
      {"200 no ETag, same Last-Modified, stored has ETag", 200, {{"Last-Modified", LM}}, L, E, LM, 500, L, V::Changed},
      {"200 weak form of a strong stored ETag", 200, {{"ETag", "W/\"v1\""}}, L, E, LM, 500, L, V::Changed},
      {"200 same weak ETag", 200, {{"ETag", "W/\"v1\""}}, L, "W/\"v1\"", LM, 500, L, V::Changed},
      {"200 same Last-Modified, no ETags", 200, {{"Last-Modified", LM}}, L, "", LM, 500, L, V::Discard},
      {"200 other Last-Modified, no ETags", 200, {{"Last-Modified", "Wed, 15 Nov 2023 22:13:20 GMT"}}, L, "", LM,
       500, L, V::Changed},
      {"200 Last-Modified, stored has no validators", 200, {{"Last-Modified", LM}}, L, "", "", 500, L, V::Changed},
      {"200 no validators at all", 200, {}, L, "", "", 500, L, V::Changed},
      {"200 same Last-Modified, length differs", 200, {{"Last-Modified", LM}}, 10, "", LM, 500, L, V::Changed},
      // Anything else.
      {"304", 304, {{"ETag", E}}, std::nullopt, E, LM, 500, L, V::Changed},
      {"416", 416, {{"Content-Range", "bytes */1000"}}, 0, E, LM, 500, L, V::Changed},
      {"404", 404, {}, 0, E, LM, 500, L, V::Changed},
      {"500", 500, {{"ETag", E}}, L, E, LM, 500, L, V::Changed},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ObjectMeta stored;
    stored.etag = c.storedEtag;
    stored.lastModified = c.storedLm;
    stored.size = L;
    RunVerdict v = judgeRun(c.status, c.headers, c.contentLength, stored, c.start, c.length);
    EXPECT_EQ(v, c.want) << static_cast<int>(v);
  }
}

// ------------------------------------------------------ judgeRevalidation

TEST(JudgeRevalidation, Table) {
  using V = RevalidationVerdict;
  struct Case {
    int status;
    V want;
  } cases[] = {
      {304, V::Refresh}, {200, V::Replace}, {203, V::Replace}, {206, V::Replace}, {301, V::Replace},
      {302, V::Replace}, {400, V::Replace}, {404, V::Replace}, {410, V::Replace}, {499, V::Replace},
      {500, V::Fail},    {502, V::Fail},    {503, V::Fail},    {504, V::Fail},    {599, V::Fail},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.status);
    EXPECT_EQ(judgeRevalidation(c.status), c.want);
  }
}

}  // namespace
}  // namespace orchard::cache

namespace orchard::cache {
namespace {

TEST(StubVariants, ListedOnceAndBounded) {
  ObjectMeta stub;
  stub.kind = ObjectMeta::Kind::VaryStub;
  EXPECT_TRUE(stubVariants(stub).empty());
  EXPECT_TRUE(addStubVariant(&stub, "k\x1f" "a=1"));
  EXPECT_FALSE(addStubVariant(&stub, "k\x1f" "a=1"));  // listed already
  EXPECT_TRUE(addStubVariant(&stub, "k\x1f" "a=2"));
  EXPECT_FALSE(addStubVariant(&stub, ""));
  EXPECT_FALSE(addStubVariant(&stub, "bad\nkey"));  // the separator never enters a key
  EXPECT_EQ(stubVariants(stub), (std::vector<std::string>{"k\x1f" "a=1", "k\x1f" "a=2"}));
  for (size_t i = 2; i < kMaxListedVariants; ++i) EXPECT_TRUE(addStubVariant(&stub, std::to_string(i)));
  EXPECT_FALSE(addStubVariant(&stub, "one too many"));
  EXPECT_EQ(stubVariants(stub).size(), kMaxListedVariants);

  ObjectMeta object;  // not a stub: lists nothing, takes nothing
  object.blocks = "\x01";
  EXPECT_TRUE(stubVariants(object).empty());
  EXPECT_FALSE(addStubVariant(&object, "k"));
}

}  // namespace
}  // namespace orchard::cache
