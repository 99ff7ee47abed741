// Tests for cache/request_decision, by tables (STYLE pattern 4): decide()
// over every Action kind and Step (unsafe methods, credentials, fresh and
// stale records under max-age / s-maxage / Expires / heuristic / no-cache /
// must-revalidate / stale-while-revalidate / stale-if-error, the request's
// max-age / min-fresh / max-stale / no-cache / Pragma / only-if-cached, HEAD,
// the range fill threshold), joinStep(), decideOnHead(), and the step table's
// names and Cache-Status values.
#include "cache/request_decision.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace orchard::cache {
namespace {

constexpr int64_t T = 1'700'000'000;  // every record's request, response and Date time
using M = RequestFacts::Method;
using K = Action::Kind;

std::string httpDate(int64_t t) {
  char buf[30];
  formatHttpDate(t, buf);
  return buf;
}

const char* kindName(K k) {
  switch (k) {
    case K::ServeStored: return "ServeStored";
    case K::ServeAndRefresh: return "ServeAndRefresh";
    case K::Revalidate: return "Revalidate";
    case K::Fetch: return "Fetch";
    case K::Pass: return "Pass";
    case K::Answer: return "Answer";
  }
  return "?";
}

// A record received at T with Date T, so its age at T + a is a.
// `expiresIn` / `lastModifiedAgo` add those headers when non-zero.
ObjectMeta record(const char* cc, int64_t expiresIn = 0, int64_t lastModifiedAgo = 0) {
  ObjectMeta m;
  m.requestTime = m.responseTime = T;
  m.headers.emplace_back("Date", httpDate(T));
  if (cc && *cc) m.headers.emplace_back("Cache-Control", cc);
  if (expiresIn) m.headers.emplace_back("Expires", httpDate(T + expiresIn));
  if (lastModifiedAgo) {
    m.lastModified = httpDate(T - lastModifiedAgo);
    m.headers.emplace_back("Last-Modified", m.lastModified);
  }
  return m;
}

// ----------------------------------------------------------------- decide

struct DecideCase {
  const char* name;
  // Request.
  M method = M::Get;
  bool auth = false;
  const char* reqCc = "";
  bool pragma = false;
  std::optional<uint64_t> range = std::nullopt;
  bool invalidated = false;  // the variant predates its stub
  // Stored record (none when stored is false).
  bool stored = false;
  const char* respCc = "";
  int64_t expiresIn = 0;
  int64_t lastModifiedAgo = 0;
  int64_t age = 0;
  // Expected action.
  K kind = K::Fetch;
  Step step = Step::Miss;
  bool staleIfError = false;
  std::optional<bool> staleIfDisconnected = std::nullopt;  // checked when given
  bool leadOnly = false;
  uint64_t startAt = 0;
  int status = 0;
};

TEST(Decide, Table) {
  constexpr uint64_t R = kRangeFillThreshold;
  const DecideCase cases[] = {
      // Unsafe methods and credentials come first: never shared, whatever is stored.
      {.name = "POST, nothing stored", .method = M::Other, .kind = K::Pass, .step = Step::PassMethod},
      {.name = "POST, fresh record", .method = M::Other, .stored = true, .respCc = "max-age=60",
       .kind = K::Pass, .step = Step::PassMethod},
      {.name = "POST, only-if-cached", .method = M::Other, .reqCc = "only-if-cached", .kind = K::Pass,
       .step = Step::PassMethod},
      // Credentials (RFC 9111 §3.5): a fill of its own, never joined; a stored
      // answer only when it says public, s-maxage or must-revalidate.
      {.name = "Authorization, nothing stored", .auth = true, .kind = K::Fetch, .step = Step::Miss,
       .leadOnly = true},
      {.name = "Authorization, fresh public record", .auth = true, .stored = true, .respCc = "public, max-age=60",
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "Authorization, fresh s-maxage record", .auth = true, .stored = true, .respCc = "s-maxage=60",
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "Authorization, fresh must-revalidate record", .auth = true, .stored = true,
       .respCc = "max-age=60, must-revalidate", .kind = K::ServeStored, .step = Step::Hit},
      {.name = "Authorization, fresh plain record is not for it", .auth = true, .stored = true,
       .respCc = "max-age=60", .kind = K::Fetch, .step = Step::Miss, .leadOnly = true},
      {.name = "Authorization, stale public record revalidates", .auth = true, .stored = true,
       .respCc = "public, max-age=60", .age = 70, .kind = K::Revalidate, .step = Step::Stale,
       .staleIfDisconnected = true},
      {.name = "Authorization, HEAD", .method = M::Head, .auth = true, .kind = K::Pass, .step = Step::PassRequest},
      {.name = "unsafe method beats Authorization", .method = M::Other, .auth = true, .kind = K::Pass,
       .step = Step::PassMethod},

      // Miss.
      {.name = "GET miss", .kind = K::Fetch, .step = Step::Miss},
      {.name = "GET miss, request no-cache", .reqCc = "no-cache", .kind = K::Fetch, .step = Step::Miss},

      // Fresh and stale by the response's freshness lifetime (RFC 9111 §4.2.1).
      {.name = "max-age fresh", .stored = true, .respCc = "max-age=60", .age = 10, .kind = K::ServeStored,
       .step = Step::Hit},
      {.name = "max-age: age == lifetime is stale", .stored = true, .respCc = "max-age=60", .age = 60,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "max-age=0", .stored = true, .respCc = "max-age=0", .kind = K::Revalidate, .step = Step::Stale},
      {.name = "s-maxage beats a shorter max-age", .stored = true, .respCc = "max-age=10, s-maxage=100", .age = 50,
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "s-maxage beats a longer max-age", .stored = true, .respCc = "max-age=100, s-maxage=10", .age = 50,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "Expires fresh", .stored = true, .expiresIn = 100, .age = 50, .kind = K::ServeStored,
       .step = Step::Hit},
      {.name = "Expires reached", .stored = true, .expiresIn = 100, .age = 100, .kind = K::Revalidate,
       .step = Step::Stale},
      {.name = "Expires in the past", .stored = true, .expiresIn = -100, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "max-age beats Expires", .stored = true, .respCc = "max-age=10", .expiresIn = 1000, .age = 50,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "heuristic fresh (10% of 1000 s)", .stored = true, .lastModifiedAgo = 1000, .age = 50,
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "heuristic stale", .stored = true, .lastModifiedAgo = 1000, .age = 150, .kind = K::Revalidate,
       .step = Step::Stale},
      {.name = "no freshness information", .stored = true, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "response no-cache, fresh", .stored = true, .respCc = "no-cache, max-age=60", .kind = K::Revalidate,
       .step = Step::Stale},
      {.name = "must-revalidate, fresh", .stored = true, .respCc = "max-age=60, must-revalidate", .age = 10,
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "must-revalidate, stale", .stored = true, .respCc = "max-age=60, must-revalidate", .age = 70,
       .kind = K::Revalidate, .step = Step::Stale, .staleIfDisconnected = false},
      // A variant from before its URI's stub (invalidated, or its stub evicted): validated first.
      {.name = "invalidated fresh variant revalidates", .invalidated = true, .stored = true, .respCc = "max-age=600",
       .age = 1, .kind = K::Revalidate, .step = Step::Stale, .staleIfDisconnected = false},
      {.name = "invalidated variant, HEAD", .method = M::Head, .invalidated = true, .stored = true,
       .respCc = "max-age=600", .kind = K::Pass, .step = Step::PassStale},
      {.name = "invalidated variant, only-if-cached", .reqCc = "only-if-cached", .invalidated = true,
       .stored = true, .respCc = "max-age=600", .kind = K::Answer, .step = Step::HitOnlyIfCached, .status = 504},
      {.name = "invalidated, nothing stored", .invalidated = true, .kind = K::Fetch, .step = Step::Miss},
      // An origin that cannot be reached: stale allowed unless a directive forbids it (RFC 9111 §4.2.4).
      {.name = "stale, plain max-age: usable when disconnected", .stored = true, .respCc = "max-age=60", .age = 70,
       .kind = K::Revalidate, .step = Step::Stale, .staleIfDisconnected = true},
      {.name = "stale, proxy-revalidate", .stored = true, .respCc = "max-age=60, proxy-revalidate", .age = 70,
       .kind = K::Revalidate, .step = Step::Stale, .staleIfDisconnected = false},
      {.name = "stale, s-maxage", .stored = true, .respCc = "s-maxage=60", .age = 70, .kind = K::Revalidate,
       .step = Step::Stale, .staleIfDisconnected = false},
      {.name = "stale, no-cache", .stored = true, .respCc = "max-age=60, no-cache", .age = 70,
       .kind = K::Revalidate, .step = Step::Stale, .staleIfDisconnected = false},
      {.name = "no-cache with stale-if-error: no stale", .stored = true,
       .respCc = "max-age=60, no-cache, stale-if-error=600", .age = 70, .kind = K::Revalidate,
       .step = Step::Stale, .staleIfError = false, .staleIfDisconnected = false},

      // stale-while-revalidate (RFC 5861 §3).
      {.name = "swr inside the window", .stored = true, .respCc = "max-age=60, stale-while-revalidate=30",
       .age = 80, .kind = K::ServeAndRefresh, .step = Step::HitStaleWhileRevalidate},
      {.name = "swr at the window's end", .stored = true, .respCc = "max-age=60, stale-while-revalidate=30",
       .age = 90, .kind = K::ServeAndRefresh, .step = Step::HitStaleWhileRevalidate},
      {.name = "swr past the window", .stored = true, .respCc = "max-age=60, stale-while-revalidate=30", .age = 91,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "swr, HEAD is served stale without refresh", .method = M::Head, .stored = true,
       .respCc = "max-age=60, stale-while-revalidate=30", .age = 80, .kind = K::ServeStored,
       .step = Step::HitStaleWhileRevalidate},
      {.name = "swr ignored under must-revalidate", .stored = true,
       .respCc = "max-age=60, stale-while-revalidate=30, must-revalidate", .age = 80, .kind = K::Revalidate,
       .step = Step::Stale},
      {.name = "swr ignored under s-maxage", .stored = true, .respCc = "s-maxage=60, stale-while-revalidate=30",
       .age = 80, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "swr ignored when the request has max-age", .reqCc = "max-age=1000", .stored = true,
       .respCc = "max-age=60, stale-while-revalidate=30", .age = 80, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "swr ignored when the request has min-fresh", .reqCc = "min-fresh=1", .stored = true,
       .respCc = "max-age=60, stale-while-revalidate=30", .age = 80, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "swr, response no-cache wins", .stored = true,
       .respCc = "no-cache, max-age=60, stale-while-revalidate=30", .age = 80, .kind = K::Revalidate,
       .step = Step::Stale},

      // stale-if-error (RFC 5861 §4) rides on the revalidation.
      {.name = "sie inside the window", .stored = true, .respCc = "max-age=60, stale-if-error=100", .age = 100,
       .kind = K::Revalidate, .step = Step::Stale, .staleIfError = true},
      {.name = "sie at the window's end", .stored = true, .respCc = "max-age=60, stale-if-error=100", .age = 160,
       .kind = K::Revalidate, .step = Step::Stale, .staleIfError = true},
      {.name = "sie past the window", .stored = true, .respCc = "max-age=60, stale-if-error=100", .age = 161,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "sie under must-revalidate", .stored = true, .respCc = "max-age=60, stale-if-error=100, must-revalidate",
       .age = 100, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "sie under s-maxage", .stored = true, .respCc = "s-maxage=60, stale-if-error=100", .age = 100,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "request sie", .reqCc = "stale-if-error=50", .stored = true, .respCc = "max-age=60", .age = 100,
       .kind = K::Revalidate, .step = Step::Stale, .staleIfError = true},
      {.name = "request sie too short", .reqCc = "stale-if-error=10", .stored = true, .respCc = "max-age=60",
       .age = 100, .kind = K::Revalidate, .step = Step::Stale},

      // Request directives (RFC 9111 §5.2.1).
      {.name = "request max-age below the age", .reqCc = "max-age=5", .stored = true, .respCc = "max-age=60",
       .age = 10, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "request max-age equal to the age", .reqCc = "max-age=10", .stored = true, .respCc = "max-age=60",
       .age = 10, .kind = K::ServeStored, .step = Step::Hit},
      {.name = "request max-age=0", .reqCc = "max-age=0", .stored = true, .respCc = "max-age=60", .age = 1,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "min-fresh satisfied", .reqCc = "min-fresh=20", .stored = true, .respCc = "max-age=60", .age = 40,
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "min-fresh not satisfied", .reqCc = "min-fresh=20", .stored = true, .respCc = "max-age=60",
       .age = 41, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "max-stale without value", .reqCc = "max-stale", .stored = true, .respCc = "max-age=60",
       .age = 100000, .kind = K::ServeStored, .step = Step::Hit},
      {.name = "max-stale=10 inside", .reqCc = "max-stale=10", .stored = true, .respCc = "max-age=60", .age = 70,
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "max-stale=10 past", .reqCc = "max-stale=10", .stored = true, .respCc = "max-age=60", .age = 71,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "max-stale under must-revalidate", .reqCc = "max-stale", .stored = true,
       .respCc = "max-age=60, must-revalidate", .age = 70, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "max-stale under proxy-revalidate", .reqCc = "max-stale", .stored = true,
       .respCc = "max-age=60, proxy-revalidate", .age = 70, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "max-stale under s-maxage", .reqCc = "max-stale", .stored = true, .respCc = "s-maxage=60", .age = 70,
       .kind = K::Revalidate, .step = Step::Stale},
      {.name = "max-stale with a max-age the age exceeds", .reqCc = "max-stale, max-age=65", .stored = true,
       .respCc = "max-age=60", .age = 70, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "max-stale with response no-cache", .reqCc = "max-stale", .stored = true,
       .respCc = "no-cache, max-age=60", .age = 70, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "request no-cache on a fresh record", .reqCc = "no-cache", .stored = true, .respCc = "max-age=60",
       .age = 1, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "Pragma: no-cache without Cache-Control", .pragma = true, .stored = true, .respCc = "max-age=60",
       .age = 1, .kind = K::Revalidate, .step = Step::Stale},
      {.name = "Pragma ignored beside Cache-Control (RFC 9111 §5.4)", .reqCc = "max-age=100", .pragma = true,
       .stored = true, .respCc = "max-age=60", .age = 1, .kind = K::ServeStored, .step = Step::Hit},
      {.name = "request no-cache on HEAD", .method = M::Head, .reqCc = "no-cache", .stored = true,
       .respCc = "max-age=60", .age = 1, .kind = K::Pass, .step = Step::PassStale},

      // only-if-cached (RFC 9111 §5.2.1.7): stored or 504, never the origin. A
      // stale record is used as a disconnected cache may (§4.2.4), except
      // where the origin forbade that (must-revalidate, proxy-revalidate,
      // s-maxage, no-cache: §5.2.2.2).
      {.name = "only-if-cached, nothing stored", .reqCc = "only-if-cached", .kind = K::Answer,
       .step = Step::NotStored, .status = 504},
      {.name = "only-if-cached, HEAD, nothing stored", .method = M::Head, .reqCc = "only-if-cached",
       .kind = K::Answer, .step = Step::NotStored, .status = 504},
      {.name = "only-if-cached, fresh", .reqCc = "only-if-cached", .stored = true, .respCc = "max-age=60",
       .age = 10, .kind = K::ServeStored, .step = Step::Hit},
      {.name = "only-if-cached, stale", .reqCc = "only-if-cached", .stored = true, .respCc = "max-age=60",
       .age = 70, .kind = K::ServeStored, .step = Step::HitOnlyIfCached},
      {.name = "only-if-cached, HEAD, stale", .method = M::Head, .reqCc = "only-if-cached", .stored = true,
       .respCc = "max-age=60", .age = 70, .kind = K::ServeStored, .step = Step::HitOnlyIfCached},
      {.name = "only-if-cached, stale, must-revalidate", .reqCc = "only-if-cached", .stored = true,
       .respCc = "max-age=60, must-revalidate", .age = 70, .kind = K::Answer, .step = Step::HitOnlyIfCached,
       .status = 504},
      {.name = "only-if-cached, stale, s-maxage", .reqCc = "only-if-cached", .stored = true, .respCc = "s-maxage=60",
       .age = 70, .kind = K::Answer, .step = Step::HitOnlyIfCached, .status = 504},
      {.name = "only-if-cached, response no-cache", .reqCc = "only-if-cached", .stored = true,
       .respCc = "no-cache, max-age=60", .age = 1, .kind = K::Answer, .step = Step::HitOnlyIfCached, .status = 504},
      {.name = "only-if-cached, fresh, must-revalidate", .reqCc = "only-if-cached", .stored = true,
       .respCc = "max-age=60, must-revalidate", .age = 1, .kind = K::ServeStored, .step = Step::Hit},
      {.name = "only-if-cached with max-stale", .reqCc = "only-if-cached, max-stale", .stored = true,
       .respCc = "max-age=60", .age = 70, .kind = K::ServeStored, .step = Step::Hit},
      {.name = "only-if-cached, case-insensitive", .reqCc = "Only-If-Cached", .kind = K::Answer,
       .step = Step::NotStored, .status = 504},

      // HEAD: a shared revalidation or fill must be a GET.
      {.name = "HEAD fresh", .method = M::Head, .stored = true, .respCc = "max-age=60", .age = 1,
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "HEAD stale", .method = M::Head, .stored = true, .respCc = "max-age=60", .age = 70, .kind = K::Pass,
       .step = Step::PassStale},
      {.name = "HEAD stale with sie", .method = M::Head, .stored = true, .respCc = "max-age=60, stale-if-error=100",
       .age = 70, .kind = K::Pass, .step = Step::PassStale},
      {.name = "HEAD miss", .method = M::Head, .kind = K::Pass, .step = Step::PassMiss},
      {.name = "HEAD miss, range past the threshold", .method = M::Head, .range = R + 1, .kind = K::Pass,
       .step = Step::PassMiss},

      // The range fill threshold: nearer starts fill from 0.
      {.name = "range 0", .range = 0, .kind = K::Fetch, .step = Step::Miss, .startAt = 0},
      {.name = "range below the threshold", .range = R - 1, .kind = K::Fetch, .step = Step::Miss, .startAt = 0},
      {.name = "range at the threshold", .range = R, .kind = K::Fetch, .step = Step::Miss, .startAt = R},
      {.name = "range above the threshold", .range = R + 1, .kind = K::Fetch, .step = Step::Miss, .startAt = R + 1},
      {.name = "range far above", .range = uint64_t{5} << 30, .kind = K::Fetch, .step = Step::Miss,
       .startAt = uint64_t{5} << 30},
      {.name = "range on a fresh record", .range = R + 1, .stored = true, .respCc = "max-age=60", .age = 1,
       .kind = K::ServeStored, .step = Step::Hit},
      {.name = "range on a stale record revalidates", .range = R + 1, .stored = true, .respCc = "max-age=60",
       .age = 70, .kind = K::Revalidate, .step = Step::Stale},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RequestFacts req;
    req.method = c.method;
    req.authorization = c.auth;
    req.cacheControl = c.reqCc;
    req.pragmaNoCache = c.pragma;
    req.rangeStart = c.range;
    req.storedInvalidated = c.invalidated;
    ObjectMeta m = record(c.respCc, c.expiresIn, c.lastModifiedAgo);
    Action a = decide(req, c.stored ? &m : nullptr, T + c.age);
    EXPECT_EQ(a.kind, c.kind) << kindName(a.kind) << " != " << kindName(c.kind);
    EXPECT_EQ(a.step, c.step) << stepName(a.step) << " != " << stepName(c.step);
    EXPECT_EQ(a.staleIfError, c.staleIfError);
    if (c.staleIfDisconnected) {
      EXPECT_EQ(a.staleIfDisconnected, *c.staleIfDisconnected);
    }
    EXPECT_EQ(a.leadOnly, c.leadOnly);
    EXPECT_EQ(a.startAt, c.startAt);
    EXPECT_EQ(a.status, c.status);
    if (c.kind == K::Answer) {
      EXPECT_NE(std::string(a.reason).find("only-if-cached"), std::string::npos) << a.reason;
    }
  }
}

TEST(Decide, AnswerReasonsNameWhy) {
  RequestFacts req;
  req.cacheControl = "only-if-cached";
  EXPECT_STREQ(decide(req, nullptr, T).reason, "only-if-cached: not stored");
  ObjectMeta m = record("max-age=60, must-revalidate");
  EXPECT_STREQ(decide(req, &m, T + 70).reason, "only-if-cached: no usable stored response");
}

TEST(Decide, FreshnessConfigReachesTheHeuristic) {
  RequestFacts req;
  ObjectMeta m = record("", 0, 1000);  // heuristic lifetime 100 s at 10%
  EXPECT_EQ(decide(req, &m, T + 150).step, Step::Stale);
  FreshnessConfig cfg;
  cfg.heuristicFraction = 0.5;  // 500 s
  EXPECT_EQ(decide(req, &m, T + 150, cfg).step, Step::Hit);
  cfg.heuristicMax = 100;  // capped
  EXPECT_EQ(decide(req, &m, T + 150, cfg).step, Step::Stale);
}

// --------------------------------------------------------------- joinStep

TEST(JoinStep, Table) {
  struct Case {
    const char* name;
    Step in;
    bool created;
    Step want;
  } cases[] = {
      {"miss, leader", Step::Miss, true, Step::Miss},
      {"miss, follower", Step::Miss, false, Step::MissCollapsed},
      {"stale, leader", Step::Stale, true, Step::Stale},
      {"stale, follower", Step::Stale, false, Step::StaleCollapsed},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Step s = joinStep(c.in, c.created);
    EXPECT_EQ(s, c.want) << stepName(s);
  }
}

// Every Fetch and Revalidate decide() returns joins to a collapsed step of its own kind.
TEST(JoinStep, FollowsDecide) {
  RequestFacts req;
  Action miss = decide(req, nullptr, T);
  ASSERT_EQ(miss.kind, K::Fetch);
  EXPECT_EQ(joinStep(miss.step, false), Step::MissCollapsed);
  ObjectMeta m = record("max-age=60");
  Action stale = decide(req, &m, T + 70);
  ASSERT_EQ(stale.kind, K::Revalidate);
  EXPECT_EQ(joinStep(stale.step, false), Step::StaleCollapsed);
}

// ------------------------------------------------------------ decideOnHead

TEST(DecideOnHead, Table) {
  using S = FillFacts::State;
  using H = HeadAction::Kind;
  struct Case {
    const char* name;
    FillFacts f;
    H want;
    int status = 0;
  };
  auto fill = [](S state, bool hasHead, bool leader, bool shared, bool shareable) {
    FillFacts f;
    f.state = state;
    f.hasHead = hasHead;
    f.leader = leader;
    f.shared = shared;
    f.shareable = shareable;
    return f;
  };
  auto failed = [](bool hasHead, Errc e, bool staleAvailable, bool staleIfError, bool disconnected = false) {
    FillFacts f;
    f.state = S::Failed;
    f.hasHead = hasHead;
    f.error = e;
    f.staleAvailable = staleAvailable;
    f.staleIfError = staleIfError;
    f.staleIfDisconnected = disconnected;
    return f;
  };
  auto varying = [](FillFacts f, std::string_view fillKey, std::string_view mine) {
    f.fillStoreKey = fillKey;
    f.myVariantKey = mine;
    return f;
  };
  const Case cases[] = {
      {"pending", fill(S::Pending, false, false, true, false), H::Wait},
      {"pending, leader", fill(S::Pending, false, true, true, true), H::Wait},
      {"revalidated", fill(S::Revalidated, true, false, true, true), H::ServeRefreshed},
      {"revalidated, leader", fill(S::Revalidated, false, true, true, false), H::ServeRefreshed},
      // Failures.
      {"failed before head", failed(false, Errc::Io, false, false), H::Fail, 502},
      {"failed before head, protocol", failed(false, Errc::Protocol, false, false), H::Fail, 502},
      {"failed before head, timeout", failed(false, Errc::Timeout, false, false), H::Fail, 504},
      {"failed after head", failed(true, Errc::Io, false, false), H::Fail, 502},
      {"failed after head, timeout", failed(true, Errc::Timeout, false, false), H::Fail, 502},
      {"failed before head, stale + sie", failed(false, Errc::Io, true, true), H::ServeStale},
      {"failed before head, timeout, stale + sie", failed(false, Errc::Timeout, true, true), H::ServeStale},
      {"failed before head, stale without sie", failed(false, Errc::Timeout, true, false), H::Fail, 504},
      {"failed before head, sie without stale", failed(false, Errc::Io, false, true), H::Fail, 502},
      {"failed after head, stale + sie", failed(true, Errc::Io, true, true), H::Fail, 502},
      // No answer at all from the origin: the stale object unless a directive forbids it (§4.2.4).
      {"closed before head, stale allowed", failed(false, Errc::Closed, true, false, true), H::ServeDisconnected},
      {"refused before head, stale allowed", failed(false, Errc::Io, true, false, true), H::ServeDisconnected},
      {"timeout before head, stale allowed", failed(false, Errc::Timeout, true, false, true), H::ServeDisconnected},
      {"garbage before head, stale allowed", failed(false, Errc::Protocol, true, false, true), H::ServeDisconnected},
      {"5xx is an answer: not disconnected", failed(false, Errc::Busy, true, false, true), H::Fail, 502},
      {"5xx with sie", failed(false, Errc::Busy, true, true, true), H::ServeStale},
      {"closed before head, stale forbidden: 504", failed(false, Errc::Closed, true, false, false), H::Fail, 504},
      {"5xx, stale forbidden: 502", failed(false, Errc::Busy, true, false, false), H::Fail, 502},
      {"closed after head, stale allowed", failed(true, Errc::Closed, true, false, true), H::Fail, 502},
      {"closed before head, nothing stale", failed(false, Errc::Closed, false, false, true), H::Fail, 502},
      // A head: send it, unless it is not for this follower.
      {"streaming, leader", fill(S::Streaming, true, true, true, false), H::Send},
      {"complete, leader", fill(S::Complete, true, true, true, false), H::Send},
      {"streaming, follower, shareable", fill(S::Streaming, true, false, true, true), H::Send},
      {"complete, follower, shareable", fill(S::Complete, true, false, true, true), H::Send},
      {"streaming, follower, not shareable", fill(S::Streaming, true, false, true, false), H::FetchOwn},
      {"complete, follower, not shareable", fill(S::Complete, true, false, true, false), H::FetchOwn},
      {"pass fill, not shareable", fill(S::Streaming, true, false, false, false), H::Send},
      {"variant, same key", varying(fill(S::Streaming, true, false, true, true), "k\x1f" "a=1", "k\x1f" "a=1"),
       H::Send},
      {"variant, other key", varying(fill(S::Streaming, true, false, true, true), "k\x1f" "a=1", "k\x1f" "a=2"),
       H::FetchVariant},
      {"variant, other key, complete", varying(fill(S::Complete, true, false, true, true), "k\x1f" "a=1", "k\x1f" "a=2"),
       H::FetchVariant},
      {"variant, answer does not vary for me", varying(fill(S::Streaming, true, false, true, true), "k", ""), H::Send},
      {"variant, leader", varying(fill(S::Streaming, true, true, true, true), "k\x1f" "a=1", "k\x1f" "a=2"), H::Send},
      {"variant, pass fill", varying(fill(S::Streaming, true, false, false, true), "k\x1f" "a=1", "k\x1f" "a=2"),
       H::Send},
      {"not shareable beats the variant check",
       varying(fill(S::Streaming, true, false, true, false), "k\x1f" "a=1", "k\x1f" "a=2"), H::FetchOwn},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    HeadAction h = decideOnHead(c.f);
    EXPECT_EQ(h.kind, c.want) << static_cast<int>(h.kind);
    EXPECT_EQ(h.status, c.status);
  }
}

// ------------------------------------------------ stepName / cacheStatusOf

TEST(Steps, NamesAndCacheStatus) {
  struct Case {
    Step step;
    const char* name;
    const char* status;
  } cases[] = {
      {Step::Hit, "Hit", "orchard; hit"},
      {Step::HitStaleWhileRevalidate, "HitStaleWhileRevalidate", "orchard; hit; detail=stale-while-revalidate"},
      {Step::HitOnlyIfCached, "HitOnlyIfCached", "orchard; hit; detail=only-if-cached"},
      {Step::HitStaleIfError, "HitStaleIfError", "orchard; hit; detail=stale-if-error"},
      {Step::HitStaleDisconnected, "HitStaleDisconnected", "orchard; hit; detail=origin-unreachable"},
      {Step::Miss, "Miss", "orchard; fwd=miss"},
      {Step::MissCollapsed, "MissCollapsed", "orchard; fwd=miss; collapsed"},
      {Step::Stale, "Stale", "orchard; fwd=stale"},
      {Step::StaleCollapsed, "StaleCollapsed", "orchard; fwd=stale; collapsed"},
      {Step::PassMethod, "PassMethod", "orchard; fwd=method"},
      {Step::PassRequest, "PassRequest", "orchard; fwd=request"},
      {Step::PassStale, "PassStale", "orchard; fwd=stale"},
      {Step::PassMiss, "PassMiss", "orchard; fwd=miss"},
      {Step::NotStored, "NotStored", "orchard; fwd=miss"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_STREQ(stepName(c.step), c.name);
    EXPECT_EQ(cacheStatusOf(c.step), c.status);
  }
}

// Every row of ORCHARD_STEPS: a unique name, a status starting "orchard; ",
// and the table above lists them all.
TEST(Steps, EveryStepOfTheTable) {
  const std::vector<Step> all = {
#define ORCHARD_TEST_STEP(step, counter, tokens) Step::step,
      ORCHARD_STEPS(ORCHARD_TEST_STEP)
#undef ORCHARD_TEST_STEP
  };
  EXPECT_EQ(all.size(), 14u) << "a step was added: add its row to Steps.NamesAndCacheStatus";
  std::set<std::string> names;
  for (Step s : all) {
    SCOPED_TRACE(stepName(s));
    EXPECT_STRNE(stepName(s), "?");
    EXPECT_TRUE(names.insert(stepName(s)).second) << "duplicate name";
    const std::string status = cacheStatusOf(s);
    EXPECT_EQ(status.rfind("orchard; ", 0), 0u) << status;
    EXPECT_GT(status.size(), std::string("orchard; ").size());
  }
}

}  // namespace
}  // namespace orchard::cache
