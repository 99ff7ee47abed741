// Pure HTTP caching decisions: functions of (request, response or stored
// metadata, now) with no I/O, tested by tables (STYLE pattern 4).
//
// This is the appliance-core subset: what may be stored and how old a stored
// answer is. Freshness, revalidation and Vary build on these types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/object_meta.h"

namespace orchard::cache {

struct CacheControl {
  // Response and request directives share the struct; each side reads its own.
  bool onlyIfCached = false;
  std::optional<int64_t> maxStale;  // request: present with kAnyStale when no value
  bool maxStalePresent = false;
  std::optional<int64_t> minFresh;
  std::optional<int64_t> staleWhileRevalidate;
  std::optional<int64_t> staleIfError;
  bool noStore = false;
  bool noCache = false;
  bool isPrivate = false;
  bool isPublic = false;
  bool mustRevalidate = false;
  bool proxyRevalidate = false;
  bool immutable = false;
  bool mustUnderstand = false;  // RFC 9111 §5.2.2.3
  std::optional<int64_t> maxAge;
  std::optional<int64_t> sMaxAge;
};

// Parses a Cache-Control field value (directives are case-insensitive,
// unknown ones ignored, quoted arguments accepted; an invalid delta-seconds
// leaves that directive unset).
CacheControl parseCacheControl(std::string_view value);

enum class StoreVerdict : uint8_t {
  Store,
  Method,         // only GET answers are stored
  Status,         // not a status this build stores
  NoStore,        // Cache-Control: no-store (request or response)
  Private,        // Cache-Control: private
  Authorization,  // request carried credentials and the answer is not marked shareable
  UnknownLength,  // close-delimited body: completeness cannot be proven
};
const char* storeVerdictName(StoreVerdict v);

struct StoreInput {
  std::string_view method;
  uint16_t status = 0;
  bool hasExpires = false;  // a valid Expires header (explicit freshness)
  std::string_view requestCacheControl;
  std::string_view responseCacheControl;
  // When set, the response's own fields are read instead of the two above:
  // a targeted field (cache/targeted_control.h) over Cache-Control and Expires.
  const HeaderList* responseHeaders = nullptr;
  bool requestHasAuthorization = false;
  bool lengthKnown = false;  // Content-Length or chunked framing
};

StoreVerdict decideStore(const StoreInput& in);

// Statuses a cache may store with heuristic freshness (RFC 9110 §15.1).
bool heuristicallyCacheable(uint16_t status);

struct FreshnessConfig {
  double heuristicFraction = 0.1;       // of (Date - Last-Modified), RFC 9111 §4.2.2
  int64_t heuristicMax = 7 * 86400;     // cap on a heuristic lifetime
};

// Freshness lifetime of a stored response (RFC 9111 §4.2.1) in seconds:
// s-maxage, then max-age, then Expires - Date, then the heuristic when
// allowed; 0 when none applies. `heuristic` is set when the heuristic was used.
int64_t freshnessLifetime(const ObjectMeta& meta, const FreshnessConfig& cfg, bool* heuristic = nullptr);

// What to do with a stored response for a request (RFC 9111 §4).
struct CachedDecision {
  enum class Action : uint8_t {
    Serve,                   // fresh enough for this request
    ServeStaleAndRevalidate, // stale-while-revalidate: answer now, refresh in the background
    Revalidate,              // conditional request to the origin first
  };
  Action action = Action::Revalidate;
  int64_t age = 0;
  int64_t lifetime = 0;
  bool stale = false;
  // When revalidation fails (origin down, 5xx): may the stale answer be used?
  bool staleIfErrorAllowed = false;
  // When the origin cannot be reached at all (no answer): may the stale
  // answer be used? RFC 9111 §4.2.4 allows it unless a directive forbids it.
  bool staleIfDisconnected = false;
  // Must not answer from the store without the origin (only-if-cached then 504).
  bool mustRevalidate = false;
};

CachedDecision decideCached(const ObjectMeta& meta, std::string_view requestCacheControl, bool requestPragmaNoCache,
                            int64_t now, const FreshnessConfig& cfg);

// Vary (RFC 9111 §4.1): the request fields a response varies on, lower
// case, in order, without duplicates; contains "*" when any value is "*".
std::vector<std::string> varyFields(const HeaderList& responseHeaders);
// The key of one variant: the primary key text plus each field's request
// value, normalised: repeated lines combined and list members trimmed
// ("1, 2" and " 1 ,2" are one value); Accept-Language also case-folded and
// ordered by preference (q) then name, so "en, de", "de, en" and "eN, De"
// select the same variant. Two requests select the same stored variant
// exactly when their keys are equal.
std::string variantKeyText(std::string_view primaryKey, const std::vector<std::string>& fields,
                           const HeaderList& requestHeaders);

// Client conditionals against a stored response (RFC 9110 §13.2.2): true
// when the answer is 304 Not Modified. If-None-Match (weak comparison)
// takes precedence over If-Modified-Since, which compares with the stored
// Last-Modified or, without one, its Date (RFC 9111 §4.3.2).
bool notModified(const HeaderList& requestHeaders, const ObjectMeta& meta);

// The headers of a stored response updated by a 304 (RFC 9111 §3.2): every
// header the 304 carries replaces the stored ones of that name, except the
// framing and Content-* headers that describe the body we keep.
HeaderList mergeNotModified(const HeaderList& stored, const HeaderList& fresh);

// Current age of a stored response per RFC 9111 §4.2.3, from the stored
// Date and Age headers and the request/response times recorded at fetch.
int64_t currentAge(const ObjectMeta& meta, int64_t now);
// The age_value of an Age field's first line (RFC 9111 §5.1): 0 when invalid,
// capped at 2^31.
int64_t parseAge(std::string_view firstLine);

// Parses an HTTP-date (IMF-fixdate, RFC 850 and asctime forms). nullopt if invalid.
std::optional<int64_t> parseHttpDate(std::string_view s);
// Formats unix seconds as IMF-fixdate into out (29 chars + NUL).
void formatHttpDate(int64_t t, char out[30]);

}  // namespace orchard::cache
