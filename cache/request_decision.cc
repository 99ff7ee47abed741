// The proxy's decisions; see request_decision.h. Freshness itself is
// cache/policy.cc (decideCached): this file maps its verdict, the request's
// method and directives onto the steps, in the order RFC 9111 asks for
// them: credentials and unsafe methods first (never shared), then what is
// stored, then only-if-cached, then the fetch.
#include "cache/request_decision.h"

#include "cache/targeted_control.h"

namespace orchard::cache {

const char* stepName(Step s) noexcept {
  switch (s) {
#define ORCHARD_STEP_NAME(step, counter, tokens) \
  case Step::step:                               \
    return #step;
    ORCHARD_STEPS(ORCHARD_STEP_NAME)
#undef ORCHARD_STEP_NAME
  }
  return "?";
}

std::string cacheStatusOf(Step s) {
  switch (s) {
#define ORCHARD_STEP_STATUS(step, counter, tokens) \
  case Step::step:                                 \
    return "orchard; " tokens;
    ORCHARD_STEPS(ORCHARD_STEP_STATUS)
#undef ORCHARD_STEP_STATUS
  }
  return "orchard";
}

namespace {

Action make(Action::Kind kind, Step step) {
  Action a;
  a.kind = kind;
  a.step = step;
  return a;
}

Action answer504(Step step, const char* reason) {
  Action a = make(Action::Kind::Answer, step);
  a.status = 504;
  a.reason = reason;
  return a;
}

// Only the paths that can end in 504 read only-if-cached: a fresh hit never
// parses the request's Cache-Control twice (decideCached parses it too).
bool onlyIfCached(const RequestFacts& req) { return parseCacheControl(req.cacheControl).onlyIfCached; }

bool reusableWithCredentials(const ObjectMeta& stored) {
  const CacheControl cc = responseControls(stored.headers).cc;
  return cc.isPublic || cc.sMaxAge || cc.mustRevalidate;
}

}  // namespace

Action decide(const RequestFacts& req, const ObjectMeta* stored, int64_t now, const FreshnessConfig& cfg) {
  using M = RequestFacts::Method;
  using K = Action::Kind;
  if (req.method == M::Other) return make(K::Pass, Step::PassMethod);
  // RFC 9111 §3.5: a request with credentials may be answered from the
  // store only by a response that says it is for everyone (public,
  // s-maxage, must-revalidate); otherwise it goes to the origin in a fill
  // of its own, whose answer is stored and shared only when it says so.
  if (req.authorization && stored && !reusableWithCredentials(*stored)) stored = nullptr;
  if (stored && req.storedInvalidated) {
    if (onlyIfCached(req)) return answer504(Step::HitOnlyIfCached, "only-if-cached: no usable stored response");
    if (req.method == M::Head) return make(K::Pass, Step::PassStale);
    return make(K::Revalidate, Step::Stale);  // never served stale: it was invalidated
  }
  if (stored) {
    auto d = decideCached(*stored, req.cacheControl, req.pragmaNoCache, now, cfg);
    switch (d.action) {
      case CachedDecision::Action::Serve:
        return make(K::ServeStored, Step::Hit);
      case CachedDecision::Action::ServeStaleAndRevalidate:
        // A HEAD cannot refresh a body: it is served stale, nothing more.
        return make(req.method == M::Get ? K::ServeAndRefresh : K::ServeStored, Step::HitStaleWhileRevalidate);
      case CachedDecision::Action::Revalidate:
        if (onlyIfCached(req)) {
          if (!d.mustRevalidate) return make(K::ServeStored, Step::HitOnlyIfCached);
          return answer504(Step::HitOnlyIfCached, "only-if-cached: no usable stored response");
        }
        // A shared revalidation must be a GET (followers want the body).
        if (req.method == M::Head) return make(K::Pass, Step::PassStale);
        Action a = make(K::Revalidate, Step::Stale);
        a.staleIfError = d.staleIfErrorAllowed;
        a.staleIfDisconnected = d.staleIfDisconnected;
        return a;
    }
  }
  if (onlyIfCached(req)) return answer504(Step::NotStored, "only-if-cached: not stored");
  if (req.method == M::Head) return make(K::Pass, req.authorization ? Step::PassRequest : Step::PassMiss);
  Action a = make(K::Fetch, Step::Miss);
  a.leadOnly = req.authorization;
  if (req.rangeStart && *req.rangeStart >= kRangeFillThreshold) a.startAt = *req.rangeStart;
  return a;
}

Step joinStep(Step step, bool created) noexcept {
  if (step == Step::Stale) return created ? Step::Stale : Step::StaleCollapsed;
  return created ? Step::Miss : Step::MissCollapsed;
}

HeadAction decideOnHead(const FillFacts& f) noexcept {
  using S = FillFacts::State;
  HeadAction h;
  switch (f.state) {
    case S::Pending:
      return h;
    case S::Revalidated:
      h.kind = HeadAction::Kind::ServeRefreshed;
      return h;
    case S::Failed:
      if (!f.hasHead && f.staleAvailable && f.staleIfError) {
        h.kind = HeadAction::Kind::ServeStale;
        return h;
      }
      // Busy is an origin that answered (5xx): only stale-if-error covers it.
      if (!f.hasHead && f.staleAvailable && f.staleIfDisconnected && f.error != Errc::Busy) {
        h.kind = HeadAction::Kind::ServeDisconnected;
        return h;
      }
      h.kind = HeadAction::Kind::Fail;
      // Before its head the origin failed: 504 for a timeout, else 502; and
      // 504 when a stale object is held that a directive (must-revalidate,
      // no-cache, ...) forbids without the origin (RFC 9111 §5.2.2.2).
      h.status = !f.hasHead && (f.error == Errc::Timeout ||
                                (f.staleAvailable && !f.staleIfDisconnected && f.error != Errc::Busy))
                     ? 504
                     : 502;
      return h;
    case S::Streaming:
    case S::Complete:
      if (!f.leader && f.shared && !f.shareable) {
        h.kind = HeadAction::Kind::FetchOwn;  // private, Vary: *, ...: not for other clients
        return h;
      }
      if (!f.leader && f.shared && !f.myVariantKey.empty() && f.myVariantKey != f.fillStoreKey) {
        h.kind = HeadAction::Kind::FetchVariant;
        return h;
      }
      h.kind = HeadAction::Kind::Send;
      return h;
  }
  return h;
}

}  // namespace orchard::cache
