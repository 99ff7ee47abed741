// Tests for cache/targeted_control (RFC 9213 CDN-Cache-Control and this
// box's Orchard-Cache-Control), by tables: which values are valid
// Structured Field Dictionaries (RFC 8941 §3.2) and what they say, which
// field governs a response, and what that does to storing and freshness
// (the targeted field overrides Cache-Control and Expires).
#include "cache/targeted_control.h"

#include <gtest/gtest.h>

#include "cache/policy.h"

namespace orchard::cache {
namespace {

constexpr int64_t T = 1'700'000'000;
constexpr int64_t kMaxDelta = int64_t{1} << 31;

std::string httpDate(int64_t t) {
  char buf[30];
  formatHttpDate(t, buf);
  return buf;
}

TEST(ParseTargetedControl, ValidDictionaries) {
  struct Case {
    const char* in;
    std::optional<int64_t> maxAge;
    bool noStore = false, noCache = false, isPrivate = false, isPublic = false;
  } cases[] = {
      {"max-age=3600", 3600},
      {"  max-age=3600  ", 3600},                   // leading and trailing SP are discarded
      {"foobar, max-age=3600", 3600},               // unknown members are ignored
      {"max-age=3600, foo=\"bar\", baz=?0", 3600},  // of any type
      {"max-age=1, max-age=5", 5},                  // the last of a repeated key wins
      {"max-age=2147483648", kMaxDelta},
      {"max-age=99999999999", kMaxDelta},           // an Integer, capped
      {"max-age=3600;foo=bar", 3600},               // parameters are allowed and ignored
      {"max-age=\"3600\"", std::nullopt},           // a String is the wrong type: that member alone is ignored
      {"max-age=1.5", std::nullopt},                // so is a Decimal
      {"max-age=-1", std::nullopt},                 // and a negative Integer
      {"max-age=?1", std::nullopt},
      {"private", std::nullopt, false, false, true},
      {"no-store", std::nullopt, true},
      {"no-cache, max-age=10", 10, false, true},
      {"no-cache=?0, max-age=10", 10},              // explicitly false
      {"no-store=\"x\"", std::nullopt, true},       // a restriction with another type still restricts
      {"public, max-age=10", 10, false, false, false, true},
      {"public=\"x\", max-age=10", 10},             // a permission must be a plain true
      {"max-age=10, a=(1 2 \"x\");q=1, b=:aGk=:", 10},  // inner lists and byte sequences parse
      {"max-age=10,\tother", 10},                   // OWS around commas
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    auto cc = parseTargetedControl(c.in);
    ASSERT_TRUE(cc.has_value());
    EXPECT_EQ(cc->maxAge, c.maxAge);
    EXPECT_EQ(cc->noStore, c.noStore);
    EXPECT_EQ(cc->noCache, c.noCache);
    EXPECT_EQ(cc->isPrivate, c.isPrivate);
    EXPECT_EQ(cc->isPublic, c.isPublic);
  }
}

TEST(ParseTargetedControl, InvalidDictionariesAreIgnoredWhole) {
  for (const char* in : {
           "",
           "   ",
           "max-age =100",        // no space before '='
           "max-age= 100",        // nor after it
           "MaX-aGe=3600",        // keys are lower case
           "max-age=10, &&&&&",   // not a key
           "max-age=10,",         // trailing comma
           ", max-age=10",
           "max-age=10 private",  // no comma
           "max-age=1234567890123456",  // 16 digits: too long for an Integer
           "max-age=10, x=\"open",      // unterminated String
           "max-age=10, x=\"\\q\"",     // bad escape
           "max-age=10, x=:not base64!:",
           "max-age=10, x=?2",
           "max-age=10, x=(1 2",
           "max-age=10, x=1.",
           "max-age=10, x=1.2345",
           "1max-age=10",
       }) {
    SCOPED_TRACE(in);
    EXPECT_FALSE(parseTargetedControl(in).has_value());
  }
}

TEST(ResponseControls, Precedence) {
  struct Case {
    const char* name;
    HeaderList headers;
    bool targeted;
    std::optional<int64_t> maxAge;
    bool noStore;
  } cases[] = {
      {"Cache-Control alone", {{"Cache-Control", "max-age=5"}}, false, 5, false},
      {"CDN over Cache-Control", {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=60"}}, true, 60,
       false},
      {"Orchard over CDN",
       {{"CDN-Cache-Control", "no-store"}, {"Orchard-Cache-Control", "max-age=7"}, {"Cache-Control", "max-age=1"}},
       true, 7, false},
      {"invalid Orchard: CDN next", {{"Orchard-Cache-Control", "MAX-AGE=7"}, {"CDN-Cache-Control", "max-age=60"}},
       true, 60, false},
      {"invalid CDN: Cache-Control", {{"CDN-Cache-Control", "max-age=1, &&&"}, {"Cache-Control", "no-store"}},
       false, std::nullopt, true},
      {"empty CDN: Cache-Control", {{"CDN-Cache-Control", ""}, {"Cache-Control", "max-age=9"}}, false, 9, false},
      {"repeated CDN lines are one dictionary",
       {{"CDN-Cache-Control", "max-age=60"}, {"cdn-cache-control", "no-store"}}, true, 60, true},
      {"field names are case-insensitive", {{"cdn-CACHE-control", "max-age=60"}}, true, 60, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ResponseControls rc = responseControls(c.headers);
    EXPECT_EQ(rc.targeted, c.targeted);
    EXPECT_EQ(rc.cc.maxAge, c.maxAge);
    EXPECT_EQ(rc.cc.noStore, c.noStore);
  }
}

// The cache-tests.fyi CDN-Cache-Control cases, as decideStore and
// decideCached see them.
TEST(TargetedControl, StoringAndFreshness) {
  struct Case {
    const char* name;
    HeaderList extra;  // besides Date
    bool stored;
    int64_t lifetime;
  } cases[] = {
      {"CDN max-age", {{"CDN-Cache-Control", "max-age=3600"}}, true, 3600},
      {"CDN max-age over a past Expires", {{"CDN-Cache-Control", "max-age=3600"}, {"Expires", httpDate(T - 10000)}},
       true, 3600},
      {"CDN max-age over an invalid Expires", {{"CDN-Cache-Control", "max-age=3600"}, {"Expires", "0"}}, true, 3600},
      {"CDN max-age=0 over a future Expires", {{"CDN-Cache-Control", "max-age=0"}, {"Expires", httpDate(T + 10000)}},
       true, 0},
      {"CDN longer than Cache-Control", {{"Cache-Control", "max-age=1"}, {"CDN-Cache-Control", "max-age=3600"}},
       true, 3600},
      {"CDN shorter than Cache-Control", {{"Cache-Control", "max-age=3600"}, {"CDN-Cache-Control", "max-age=1"}},
       true, 1},
      {"CDN private", {{"CDN-Cache-Control", "private"}, {"Cache-Control", "max-age=10000"}}, false, 0},
      {"CDN no-store, Cache-Control fresh", {{"Cache-Control", "max-age=10000"}, {"CDN-Cache-Control", "no-store"}},
       false, 0},
      {"CDN fresh, Cache-Control no-store", {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=10000"}},
       true, 10000},
      {"a targeted field without freshness ignores Expires",
       {{"CDN-Cache-Control", "public"}, {"Expires", httpDate(T + 10000)}}, true, 0},
      {"invalid CDN: Cache-Control no-store", {{"CDN-Cache-Control", "max-age=10000, &&&&&"},
                                                {"Cache-Control", "no-store"}},
       false, 0},
      {"Orchard-Cache-Control over both", {{"Orchard-Cache-Control", "max-age=5"},
                                           {"CDN-Cache-Control", "no-store"}, {"Cache-Control", "no-store"}},
       true, 5},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ObjectMeta m;
    m.status = 200;
    m.requestTime = m.responseTime = T;
    m.headers.emplace_back("Date", httpDate(T));
    for (const auto& kv : c.extra) m.headers.push_back(kv);
    StoreInput in;
    in.method = "GET";
    in.status = 200;
    in.lengthKnown = true;
    in.responseHeaders = &m.headers;
    EXPECT_EQ(decideStore(in) == StoreVerdict::Store, c.stored) << storeVerdictName(decideStore(in));
    if (c.stored) {
      EXPECT_EQ(freshnessLifetime(m, FreshnessConfig{}), c.lifetime);
    }
  }
}

TEST(TargetedControl, NoCacheForcesRevalidation) {
  ObjectMeta m;
  m.status = 200;
  m.requestTime = m.responseTime = T;
  m.headers = {{"Date", httpDate(T)}, {"CDN-Cache-Control", "no-cache"}, {"Cache-Control", "max-age=10000"}};
  CachedDecision d = decideCached(m, "", false, T + 1, FreshnessConfig{});
  EXPECT_EQ(d.action, CachedDecision::Action::Revalidate);
  EXPECT_TRUE(d.mustRevalidate);
  EXPECT_FALSE(d.staleIfDisconnected);
}

}  // namespace
}  // namespace orchard::cache
