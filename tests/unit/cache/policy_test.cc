// Tests for cache/policy's appliance-core decisions, by tables (STYLE
// pattern 4): Cache-Control parsing (case, spaces, quoted arguments, commas
// inside quotes, invalid and huge delta-seconds), decideStore (method,
// status, no-store, private, Authorization, unknown length), currentAge per
// RFC 9111 §4.2.3, and the three HTTP-date forms with formatHttpDate.
#include "cache/policy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace orchard::cache {
namespace {

constexpr int64_t kMaxDelta = int64_t{1} << 31;  // RFC 9111 §1.2.2 saturation value

// One line per parsed directive set, so that a table row reads like the header.
std::string describe(const CacheControl& c) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += ' ';
    out += s;
  };
  if (c.noStore) add("no-store");
  if (c.noCache) add("no-cache");
  if (c.isPrivate) add("private");
  if (c.isPublic) add("public");
  if (c.mustRevalidate) add("must-revalidate");
  if (c.proxyRevalidate) add("proxy-revalidate");
  if (c.immutable) add("immutable");
  if (c.maxAge) add("max-age=" + std::to_string(*c.maxAge));
  if (c.sMaxAge) add("s-maxage=" + std::to_string(*c.sMaxAge));
  return out;
}

TEST(ParseCacheControl, Table) {
  struct Case {
    const char* in;
    const char* want;
  } cases[] = {
      {"", ""},
      {" , ,, ", ""},
      {"max-age=60", "max-age=60"},
      {"no-store", "no-store"},
      {"no-cache", "no-cache"},
      {"private", "private"},
      {"public", "public"},
      {"must-revalidate, proxy-revalidate, immutable", "must-revalidate proxy-revalidate immutable"},
      {"s-maxage=10", "s-maxage=10"},
      {"public, max-age=3600, s-maxage=7200", "public max-age=3600 s-maxage=7200"},
      // Directive names are case-insensitive.
      {"MAX-AGE=60, No-Store, PRIVATE", "no-store private max-age=60"},
      {"S-MaxAge=5, Public", "public s-maxage=5"},
      // Spaces and tabs around directives and around '='.
      {"  public ,  max-age = 3600  ", "public max-age=3600"},
      {"\tno-cache\t,\tmax-age=1\t", "no-cache max-age=1"},
      {",,,no-store,,,", "no-store"},
      // Quoted arguments.
      {"max-age=\"60\"", "max-age=60"},
      {"max-age = \"60\"", "max-age=60"},
      {"s-maxage=\"0\"", "s-maxage=0"},
      // Commas inside a quoted argument do not split directives.
      {"private=\"Set-Cookie, X-Foo\", max-age=5", "private max-age=5"},
      {"no-cache=\"a,b,no-store\"", "no-cache"},
      {"ext=\"x, no-store, private\", max-age=7", "max-age=7"},
      {"ext=\"a\\\"b, no-store\", max-age=1", "max-age=1"},  // escaped quote stays inside
      {"private=\"abc, max-age=5", "private"},               // unterminated quote runs to the end
      // Unknown directives and look-alikes are ignored.
      {"community=\"UCI\", s-maxage=10", "s-maxage=10"},
      {"no-storex, xno-store, max-agex=5", ""},
      {"max-stale, only-if-cached", ""},
      // Invalid delta-seconds leave the directive unset.
      {"max-age=abc", ""},
      {"max-age=-1", ""},
      {"max-age=+1", ""},
      {"max-age=", ""},
      {"max-age", ""},
      {"max-age=1.5", ""},
      {"max-age=60s", ""},
      {"max-age=6 0", ""},
      {"max-age=\"\"", ""},
      {"max-age=\"60", ""},
      {"max-age=abc, public", "public"},
      {"s-maxage=x, max-age=3", "max-age=3"},
      // Numbers: zero, leading zeros, and saturation at 2^31.
      {"max-age=0", "max-age=0"},
      {"max-age=007", "max-age=7"},
      {"max-age=2147483647", "max-age=2147483647"},
      {"max-age=2147483648", "max-age=2147483648"},
      {"max-age=2147483649", "max-age=2147483648"},
      {"max-age=99999999999", "max-age=2147483648"},
      {"max-age=99999999999999999999999999999999999999", "max-age=2147483648"},
      {"s-maxage=\"99999999999999999999999999\"", "s-maxage=2147483648"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    EXPECT_EQ(describe(parseCacheControl(c.in)), c.want);
  }
}

TEST(ParseCacheControl, SaturatedValueIsExactly2Pow31) {
  auto cc = parseCacheControl("max-age=18446744073709551616");  // 2^64: must not wrap
  ASSERT_TRUE(cc.maxAge.has_value());
  EXPECT_EQ(*cc.maxAge, kMaxDelta);
}

// ------------------------------------------------------------ decideStore

TEST(DecideStore, Table) {
  struct Case {
    const char* label;
    StoreInput in;
    StoreVerdict want;
  };
  auto get200 = [](const char* reqCc = "", const char* respCc = "", bool auth = false, bool lengthKnown = true) {
    StoreInput in;
    in.method = "GET";
    in.status = 200;
    in.requestCacheControl = reqCc;
    in.responseCacheControl = respCc;
    in.requestHasAuthorization = auth;
    in.lengthKnown = lengthKnown;
    return in;
  };
  auto with = [](StoreInput in, const char* method, uint16_t status, bool hasExpires = false) {
    in.method = method;
    in.status = status;
    in.hasExpires = hasExpires;
    return in;
  };
  const Case cases[] = {
      {"plain GET 200", get200(), StoreVerdict::Store},
      {"GET 200 public max-age", get200("", "public, max-age=3600"), StoreVerdict::Store},
      // Method.
      {"HEAD", with(get200(), "HEAD", 200), StoreVerdict::Method},
      {"POST", with(get200(), "POST", 200), StoreVerdict::Method},
      {"PUT public", with(get200("", "public"), "PUT", 200), StoreVerdict::Method},
      {"lower-case get", with(get200(), "get", 200), StoreVerdict::Method},  // methods are case-sensitive
      {"method beats no-store", with(get200("no-store"), "POST", 200), StoreVerdict::Method},
      // Status.
      {"206", with(get200(), "GET", 206), StoreVerdict::Status},
      {"206 even with max-age", with(get200("", "max-age=60"), "GET", 206), StoreVerdict::Status},
      {"304", with(get200(), "GET", 304), StoreVerdict::Status},
      {"100", with(get200(), "GET", 100), StoreVerdict::Status},
      {"302 without explicit freshness", with(get200(), "GET", 302), StoreVerdict::Status},
      {"500", with(get200(), "GET", 500), StoreVerdict::Status},
      {"503", with(get200(), "GET", 503), StoreVerdict::Status},
      {"302 with max-age", with(get200("", "max-age=60"), "GET", 302), StoreVerdict::Store},
      {"307 with Expires", with(get200(), "GET", 307, true), StoreVerdict::Store},
      {"302 public", with(get200("", "public"), "GET", 302), StoreVerdict::Store},
      {"302 invalid max-age is not explicit", with(get200("", "max-age=x"), "GET", 302), StoreVerdict::Status},
      {"203 by default", with(get200(), "GET", 203), StoreVerdict::Store},
      {"301 by default", with(get200(), "GET", 301), StoreVerdict::Store},
      {"404 by default", with(get200(), "GET", 404), StoreVerdict::Store},
      {"status beats no-store", with(get200("", "no-store"), "GET", 206), StoreVerdict::Status},
      // no-store in the request or the response.
      {"response no-store", get200("", "no-store"), StoreVerdict::NoStore},
      {"response NO-STORE with max-age", get200("", "max-age=60, NO-STORE"), StoreVerdict::NoStore},
      {"request no-store", get200("no-store", "public, max-age=60"), StoreVerdict::NoStore},
      {"no-store beats private", get200("", "private, no-store"), StoreVerdict::NoStore},
      {"no-store beats unknown length", get200("", "no-store", false, false), StoreVerdict::NoStore},
      {"no-store inside quotes is not no-store", get200("", "no-cache=\"no-store\""), StoreVerdict::Store},
      // must-understand (RFC 9111 §5.2.2.3): a status we know overrides no-store; one we do not is not stored.
      {"must-understand 200 over no-store", get200("", "max-age=3600, no-store, must-understand"),
       StoreVerdict::Store},
      {"must-understand 404 over no-store", with(get200("", "max-age=60, no-store, must-understand"), "GET", 404),
       StoreVerdict::Store},
      {"must-understand unknown status", with(get200("", "max-age=60, must-understand"), "GET", 299),
       StoreVerdict::Status},
      {"must-understand does not lift a request no-store", get200("no-store", "max-age=60, no-store, must-understand"),
       StoreVerdict::NoStore},
      // Request directives that do not forbid storing.
      {"request no-cache", get200("no-cache"), StoreVerdict::Store},
      {"request max-age=0", get200("max-age=0"), StoreVerdict::Store},
      {"response no-cache", get200("", "no-cache"), StoreVerdict::Store},
      // private.
      {"private", get200("", "private"), StoreVerdict::Private},
      {"private with public", get200("", "public, private"), StoreVerdict::Private},
      {"qualified private", get200("", "private=\"Set-Cookie\""), StoreVerdict::Private},
      {"PRIVATE", get200("", "max-age=60, PRIVATE"), StoreVerdict::Private},
      {"request private is not private", get200("private"), StoreVerdict::Store},
      // Authorization (RFC 9111 §3.5): public, s-maxage or must-revalidate make it shareable.
      {"auth, nothing", get200("", "", true), StoreVerdict::Authorization},
      {"auth, max-age only", get200("", "max-age=60", true), StoreVerdict::Authorization},
      {"auth, proxy-revalidate only", get200("", "proxy-revalidate", true), StoreVerdict::Authorization},
      {"auth, invalid s-maxage", get200("", "s-maxage=x", true), StoreVerdict::Authorization},
      {"auth, public", get200("", "public", true), StoreVerdict::Store},
      {"auth, s-maxage", get200("", "s-maxage=60", true), StoreVerdict::Store},
      {"auth, s-maxage=0", get200("", "s-maxage=0", true), StoreVerdict::Store},
      {"auth, must-revalidate", get200("", "must-revalidate", true), StoreVerdict::Store},
      {"auth, private beats public", get200("", "public, private", true), StoreVerdict::Private},
      {"auth beats unknown length", get200("", "", true, false), StoreVerdict::Authorization},
      // Close-delimited bodies.
      {"unknown length", get200("", "", false, false), StoreVerdict::UnknownLength},
      {"unknown length, public", get200("", "public, max-age=60", false, false), StoreVerdict::UnknownLength},
      {"unknown length, auth public", get200("", "public", true, false), StoreVerdict::UnknownLength},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    StoreVerdict v = decideStore(c.in);
    EXPECT_EQ(v, c.want) << storeVerdictName(v) << " != " << storeVerdictName(c.want);
  }
}

TEST(DecideStore, VerdictNames) {
  EXPECT_STREQ(storeVerdictName(StoreVerdict::Store), "store");
  EXPECT_STREQ(storeVerdictName(StoreVerdict::Method), "method");
  EXPECT_STREQ(storeVerdictName(StoreVerdict::Status), "status");
  EXPECT_STREQ(storeVerdictName(StoreVerdict::NoStore), "no-store");
  EXPECT_STREQ(storeVerdictName(StoreVerdict::Private), "private");
  EXPECT_STREQ(storeVerdictName(StoreVerdict::Authorization), "authorization");
  EXPECT_STREQ(storeVerdictName(StoreVerdict::UnknownLength), "unknown-length");
}

// ------------------------------------------------------------- currentAge

std::string httpDate(int64_t t) {
  char buf[30];
  formatHttpDate(t, buf);
  return buf;
}

TEST(CurrentAge, Rfc9111Section423) {
  constexpr int64_t T = 1'700'000'000;  // response_time in every row
  struct Case {
    const char* label;
    const char* age;       // Age header, nullptr if absent
    int64_t dateOffset;    // Date = T + dateOffset
    bool hasDate;
    int64_t requestTime;
    int64_t now;
    int64_t want;
  } cases[] = {
      {"nothing, just received", nullptr, 0, false, T, T, 0},
      {"resident time only", nullptr, 0, false, T, T + 100, 100},
      {"Date equal to response time", nullptr, 0, true, T, T + 100, 100},
      {"Age header", "60", 0, true, T, T, 60},
      {"Age plus resident time", "60", 0, true, T, T + 40, 100},
      {"Date in the past: apparent age", nullptr, -30, true, T, T, 30},
      {"Date in the past plus resident", nullptr, -30, true, T, T + 10, 40},
      {"Date in the future: apparent age 0", nullptr, +500, true, T, T + 10, 10},
      {"Date in the future with Age", "20", +500, true, T, T, 20},
      {"response delay adds to Age", "10", 0, true, T - 5, T, 15},
      {"response delay alone", nullptr, 0, true, T - 5, T, 5},
      {"apparent age wins over corrected Age", "10", -100, true, T - 5, T, 100},
      {"corrected Age wins over apparent age", "90", -100, true, T - 20, T, 110},
      {"all of it", "30", -20, true, T - 4, T + 1000, 1034},
      {"request after response: no negative delay", "10", 0, true, T + 50, T, 10},
      {"now before response time: no negative resident", "10", 0, true, T, T - 100, 10},
      {"invalid Age is 0", "abc", 0, true, T, T + 1, 1},
      {"negative Age is 0", "-50", 0, true, T, T, 0},
      {"Age with spaces", "  60  ", 0, true, T, T, 60},
      {"quoted Age is invalid", "\"60\"", 0, true, T, T, 0},
      {"float Age is invalid", "60.0", 0, true, T, T, 0},
      {"Age with a parameter is invalid", "60;foo=bar", 0, true, T, T, 0},
      {"a list: its first member (old first)", "7200, 0", 0, true, T, T, 7200},
      {"a list: its first member (0 first)", "0, 7200", 0, true, T, T, 0},
      {"2^31 exactly", "2147483648", 0, true, T, T, kMaxDelta},
      {"2^31 + 1 caps", "2147483649", 0, true, T, T, kMaxDelta},
      {"huge Age saturates", "99999999999999999999", 0, true, T, T + 1, kMaxDelta + 1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    ObjectMeta m;
    m.requestTime = c.requestTime;
    m.responseTime = T;
    if (c.hasDate) m.headers.emplace_back("Date", httpDate(T + c.dateOffset));
    if (c.age) m.headers.emplace_back("Age", c.age);
    EXPECT_EQ(currentAge(m, c.now), c.want);
  }
}

TEST(CurrentAge, InvalidDateFallsBackToResponseTime) {
  ObjectMeta m;
  m.requestTime = m.responseTime = 1'700'000'000;
  m.headers = {{"date", "yesterday"}, {"age", "5"}};
  EXPECT_EQ(currentAge(m, m.responseTime + 2), 7);
}

TEST(CurrentAge, HeaderNamesAreCaseInsensitive) {
  ObjectMeta m;
  m.requestTime = m.responseTime = 1'700'000'000;
  m.headers = {{"DATE", httpDate(m.responseTime - 100)}, {"aGe", "5"}};
  EXPECT_EQ(currentAge(m, m.responseTime), 100);
}

// ----------------------------------------------------------- HTTP dates

TEST(ParseHttpDate, ThreeFormsOfOneInstant) {
  constexpr int64_t kRfcExample = 784'111'777;  // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7)
  EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample);   // IMF-fixdate
  EXPECT_EQ(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), kRfcExample);  // RFC 850
  EXPECT_EQ(parseHttpDate("Sun Nov  6 08:49:37 1994"), kRfcExample);        // asctime
}

TEST(ParseHttpDate, ValidTable) {
  struct Case {
    const char* in;
    int64_t want;
  } cases[] = {
      {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
      {"Tue, 14 Nov 2023 22:13:20 GMT", 1'700'000'000},
      {"Thu, 29 Feb 2024 00:00:00 GMT", 1'709'164'800},  // leap day
      {"Fri, 31 Dec 1999 23:59:59 GMT", 946'684'799},
      {"Tue, 19 Jan 2038 03:14:08 GMT", 2'147'483'648},  // past 32-bit time_t
      {"Fri, 01 Jan 2100 00:00:00 GMT", 4'102'444'800},
      {"Sun, 06 NOV 1994 08:49:37 GMT", 784'111'777},     // names in another case (RFC 9110 §5.6.7)
      {"SUN, 06 nov 1994 08:49:37 gmt", 784'111'777},
      {"Sunday, 06-nOV-94 08:49:37 Gmt", 784'111'777},
      {"sun NOV  6 08:49:37 1994", 784'111'777},
      {"Sunday, 06-Nov-94 08:49:37 GMT", 784'111'777},
      {"Wednesday, 01-Jan-70 00:00:00 GMT", 0},            // 70 -> 1970
      {"Saturday, 01-Jan-00 00:00:00 GMT", 946'684'800},   // 00 -> 2000
      {"Tuesday, 14-Nov-23 22:13:20 GMT", 1'700'000'000},  // 23 -> 2023
      {"Thu Jan  1 00:00:00 1970", 0},
      {"Tue Nov 14 22:13:20 2023", 1'700'000'000},
      {"Thu Feb 29 00:00:00 2024", 1'709'164'800},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    auto t = parseHttpDate(c.in);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(*t, c.want);
  }
}

TEST(ParseHttpDate, InvalidTable) {
  for (const char* in : {
           "",
           "garbage",
           "0",
           "1700000000",
           "06 Nov 1994 08:49:37 GMT",        // no weekday
           "Sun, 06 Foo 1994 08:49:37 GMT",   // month
           "Sun, 6 Nov 1994 08:49:37 GMT",    // one-digit day
           "Sun, 06  Nov  1994 08:49:37 GMT", // several spaces
           "Sun,  06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37  GMT",
           " Sun, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37 UTC",   // another zone
           "Sun, 06 Nov 1994 08:49:37 AEST",
           "Sun 06 Nov 1994 08:49:37 GMT",    // no comma
           "Sun, 06-Nov-1994 08:49:37 GMT",   // dashes in IMF-fixdate
           "Sun, 06 Nov 1994 08.49.37 GMT",   // periods
           "Sun, 06 Nov 1994 8:49:37 GMT",    // one-digit hour
           "Xyz, 06 Nov 1994 08:49:37 GMT",   // weekday
           "Sun, 06 Nov 1994 08:49:37 GMT ",
           "Sunday, 06-Nov-1994 08:49:37 GMT",
           "Sundae, 06-Nov-94 08:49:37 GMT",
           "Sun Nov 6 08:49:37 1994",         // asctime day is space-padded
           "Sun, 06 November 1994 08:49:37 GMT",
           "Sun, 00 Nov 1994 08:49:37 GMT",   // day 0
           "Sun, 32 Nov 1994 08:49:37 GMT",   // day 32
           "Sun, 06 Nov 1994 24:00:00 GMT",   // hour 24
           "Sun, 06 Nov 1994 08:60:00 GMT",   // minute 60
           "Sun, 06 Nov 1994 08:49:61 GMT",   // second 61
           "Sun, 06 Nov 1969 08:49:37 GMT",   // before the epoch
           "Sun, 06 Nov 94 08:49:37 GMT",     // two-digit year in IMF-fixdate
           "Sun, 06 Nov 1994 08:49 GMT",      // no seconds
           "Sun, 06 Nov 1994",
           "Sunday, 06-Nov-94 08:49 GMT",
           "Sunday, 06-Xyz-94 08:49:37 GMT",
           "Sun Nov  6 08:49:37",             // asctime without year
           "Sun Nov 32 08:49:37 1994",
           "Sun Xyz  6 08:49:37 1994",
       }) {
    EXPECT_FALSE(parseHttpDate(in).has_value()) << in << " -> " << parseHttpDate(in).value_or(-1);
  }
}

// HTTP-date fields are DIGITs (RFC 9110 §5.6.7); sscanf's %2d also takes a
// sign, so negative fields must be refused by the range check.
TEST(ParseHttpDate, RejectsNegativeFields) {
  for (const char* in : {
           "Sun, 06 Nov 1994 -1:49:37 GMT",
           "Sun, 06 Nov 1994 08:-1:37 GMT",
           "Sun, 06 Nov 1994 08:49:-1 GMT",
           "Sunday, 06-Nov-94 -8:49:37 GMT",
           "Sun Nov  6 -1:49:37 1994",
       }) {
    EXPECT_FALSE(parseHttpDate(in).has_value()) << in << " -> " << parseHttpDate(in).value_or(-1);
  }
}

TEST(FormatHttpDate, ImfFixdate) {
  char buf[30];
  std::memset(buf, 'x', sizeof buf);
  formatHttpDate(784'111'777, buf);
  EXPECT_STREQ(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(std::strlen(buf), 29u);
  formatHttpDate(0, buf);
  EXPECT_STREQ(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
  formatHttpDate(1'709'164'800, buf);
  EXPECT_STREQ(buf, "Thu, 29 Feb 2024 00:00:00 GMT");
}

TEST(FormatHttpDate, RoundTrip) {
  for (int64_t t : {int64_t{0}, int64_t{1}, int64_t{784'111'777}, int64_t{951'782'400}, int64_t{1'700'000'000},
                    int64_t{1'709'164'799}, int64_t{2'147'483'647}, int64_t{2'147'483'648}, int64_t{4'102'444'799},
                    int64_t{253'402'300'799} /* Fri, 31 Dec 9999 23:59:59 */}) {
    char buf[30];
    formatHttpDate(t, buf);
    SCOPED_TRACE(buf);
    EXPECT_EQ(std::strlen(buf), 29u);
    EXPECT_EQ(parseHttpDate(buf), t);
  }
  // Every day of a leap year, at a time of day that moves with it.
  for (int64_t t = 1'704'067'200; t < 1'704'067'200 + 366 * 86400; t += 86400 + 3607) {
    char buf[30];
    formatHttpDate(t, buf);
    ASSERT_EQ(parseHttpDate(buf), t) << buf;
  }
}

}  // namespace
}  // namespace orchard::cache
