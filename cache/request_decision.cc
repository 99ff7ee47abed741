// The proxy's decisions; see request_decision.h. Freshness itself is
// cache/policy.cc (decideCached): this file maps its verdict, the request's
// method and directives onto the steps, in the order RFC 9111 asks for
// them: credentials and unsafe methods first (never shared), then what is
// stored, then only-if-cached, then the fetch.
#include "cache/request_decision.h"

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

Action decide(const RequestFacts& req, const ObjectMeta* stored, int64_t now, const FreshnessConfig& cfg) {
  using M = RequestFacts::Method;
  Action a;
  if (req.method == M::Other) {
    a.kind = Action::Kind::Pass;
    a.step = Step::PassMethod;
    return a;
  }
  if (req.authorization) {
    a.kind = Action::Kind::Pass;
    a.step = Step::PassRequest;
    return a;
  }
  const CacheControl cc = parseCacheControl(req.cacheControl);
  if (stored) {
    auto d = decideCached(*stored, req.cacheControl, req.pragmaNoCache, now, cfg);
    switch (d.action) {
      case CachedDecision::Action::Serve:
        a.kind = Action::Kind::ServeStored;
        a.step = Step::Hit;
        return a;
      case CachedDecision::Action::ServeStaleAndRevalidate:
        // A HEAD cannot refresh a body: it is served stale, nothing more.
        a.kind = req.method == M::Get ? Action::Kind::ServeAndRefresh : Action::Kind::ServeStored;
        a.step = Step::HitStaleWhileRevalidate;
        return a;
      case CachedDecision::Action::Revalidate:
        if (cc.onlyIfCached) {
          if (!d.mustRevalidate) {
            a.kind = Action::Kind::ServeStored;
            a.step = Step::HitOnlyIfCached;
            return a;
          }
          a.kind = Action::Kind::Answer;
          a.step = Step::HitOnlyIfCached;
          a.status = 504;
          a.reason = "only-if-cached: no usable stored response";
          return a;
        }
        if (req.method == M::Head) {
          // A shared revalidation must be a GET (followers want the body).
          a.kind = Action::Kind::Pass;
          a.step = Step::PassStale;
          return a;
        }
        a.kind = Action::Kind::Revalidate;
        a.step = Step::Stale;
        a.staleIfError = d.staleIfErrorAllowed;
        return a;
    }
  }
  if (cc.onlyIfCached) {
    a.kind = Action::Kind::Answer;
    a.step = Step::NotStored;
    a.status = 504;
    a.reason = "only-if-cached: not stored";
    return a;
  }
  if (req.method == M::Head) {
    a.kind = Action::Kind::Pass;
    a.step = Step::PassMiss;
    return a;
  }
  a.kind = Action::Kind::Fetch;
  a.step = Step::Miss;
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
      h.kind = HeadAction::Kind::Fail;
      // Before its head the origin failed: 504 for a timeout, else 502.
      h.status = !f.hasHead && f.error == Errc::Timeout ? 504 : 502;
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
