// The proxy's steps and the pure decisions that choose them.
//
// ORCHARD_STEPS is the one table of what a proxied request can become: each
// step's name, the counter it adds to and its Cache-Status tokens. The
// transaction (server/proxy/transaction.cc) carries the chosen action out;
// it decides nothing itself.
//
// decide()      request facts + the stored record (or none) + now -> what
//               to do before any fill is involved: serve, revalidate, fetch,
//               pass, or answer 504 (only-if-cached);
// joinStep()    which step a fetch or revalidation became once the fill
//               table said whether this request leads it or joins it;
// decideOnHead() the fill's state when its head is known -> serve the
//               refreshed or the stale object, fail, fetch our own copy (the
//               answer is not for us), fetch another variant, or send it.
// All three are pure (no clock, no store, no I/O) and table-tested in
// tests/unit/cache/request_decision_test.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cache/object_meta.h"
#include "cache/policy.h"
#include "common/result.h"

namespace orchard::cache {

// X(step, counter, cache-status tokens after "orchard; ")
#define ORCHARD_STEPS(X)                                                 \
  X(Hit, hits, "hit")                                                    \
  X(HitStaleWhileRevalidate, hits, "hit; detail=stale-while-revalidate") \
  X(HitOnlyIfCached, hits, "hit; detail=only-if-cached")                 \
  X(HitStaleIfError, hits, "hit; detail=stale-if-error")                 \
  X(HitStaleDisconnected, hits, "hit; detail=origin-unreachable")        \
  X(Miss, misses, "fwd=miss")                                            \
  X(MissCollapsed, collapsed, "fwd=miss; collapsed")                     \
  X(Stale, misses, "fwd=stale")                                          \
  X(StaleCollapsed, collapsed, "fwd=stale; collapsed")                   \
  X(PassMethod, passes, "fwd=method")                                    \
  X(PassRequest, passes, "fwd=request")                                  \
  X(PassStale, passes, "fwd=stale")                                      \
  X(PassMiss, passes, "fwd=miss")                                        \
  X(NotStored, none, "fwd=miss")

enum class Step : uint8_t {
#define ORCHARD_STEP_ENUM(step, counter, tokens) step,
  ORCHARD_STEPS(ORCHARD_STEP_ENUM)
#undef ORCHARD_STEP_ENUM
};

const char* stepName(Step s) noexcept;
// "orchard; <tokens>", the Cache-Status value a step starts with.
std::string cacheStatusOf(Step s);

// What decide() needs to know about the request.
struct RequestFacts {
  enum class Method : uint8_t { Get, Head, Other };
  Method method = Method::Get;
  bool authorization = false;        // credentials: shared only what the origin marked shareable
  std::string_view cacheControl;     // the request's Cache-Control, joined
  bool pragmaNoCache = false;
  std::optional<uint64_t> rangeStart;  // first byte of a single-range request
  // The stored variant predates its URI's Vary stub (cache/object_meta.h:
  // a stub's requestTime): it must be validated before use (RFC 9111 §4.4).
  bool storedInvalidated = false;
};

struct Action {
  enum class Kind : uint8_t {
    ServeStored,     // answer from `stored`; if that fails (file gone, corrupt), fetch
    ServeAndRefresh, // answer from `stored` and refresh it in the background (GET only)
    Revalidate,      // join or start the one conditional request for `stored`
    Fetch,           // join or start the fill, from byte `startAt`
    Pass,            // a private exchange with the origin for this request alone
    Answer,          // a synthesized status (`status`, `reason`)
  };
  Kind kind = Kind::Fetch;
  Step step = Step::Miss;
  bool staleIfError = false;  // Revalidate: an origin failure may serve the stale object
  bool staleIfDisconnected = false;  // Revalidate: an origin that cannot be reached may too
  uint64_t startAt = 0;       // Fetch: where the first run starts
  bool leadOnly = false;      // Fetch: lead a new fill or pass; never join another's (credentials)
  int status = 0;             // Answer
  const char* reason = "";    // Answer
};

// A single range that starts this far in starts the fill there (the rest
// fills behind it); nearer starts fetch from 0 (== Fill::kLookahead).
inline constexpr uint64_t kRangeFillThreshold = 4ull << 20;

// `stored`: the complete record for the request's key (the variant, when the
// URI varies), or null.
Action decide(const RequestFacts& req, const ObjectMeta* stored, int64_t now, const FreshnessConfig& cfg = {});

// The step of a Fetch or Revalidate once the fill table answered: `created`
// means this request leads the fill.
Step joinStep(Step step, bool created) noexcept;

// A fill's state as a reader sees it when its head may be known.
struct FillFacts {
  enum class State : uint8_t { Pending, Streaming, Complete, Failed, Revalidated };
  State state = State::Pending;
  bool hasHead = false;
  bool leader = false;     // this request started the fill
  bool shared = true;      // a shared fill (not a pass)
  bool shareable = false;  // its answer may go to other requests
  Errc error = Errc::Io;   // Failed: why
  bool staleAvailable = false;  // a stale object is held (revalidation)
  bool staleIfError = false;    // and an origin failure may serve it
  bool staleIfDisconnected = false;  // and an origin that gave no answer at all may
  // For a varying answer: the fill's store key and the key this request selects.
  std::string_view fillStoreKey;
  std::string_view myVariantKey;  // "" when the answer does not vary
};

struct HeadAction {
  enum class Kind : uint8_t {
    Wait,           // no head yet
    ServeRefreshed, // the 304 refreshed the stored object: serve it (or the stale copy)
    ServeStale,     // the origin failed before its head; stale-if-error allows the stale object
    ServeDisconnected, // no answer from the origin at all; the stale object may be used (RFC 9111 §4.2.4)
    Fail,           // answer `status` (nothing sent yet) or cut the response (after head)
    FetchOwn,       // the answer is not for others: pass this request on its own
    FetchVariant,   // the answer varies and this request selects another variant
    Send,           // send the fill's head and follow its bytes
  };
  Kind kind = Kind::Wait;
  int status = 0;
};

HeadAction decideOnHead(const FillFacts& f) noexcept;

}  // namespace orchard::cache
