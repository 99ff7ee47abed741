// History: the pure half of the per-minute traffic history (GET
// /api/v1/history). A Sample is what the box did in one wall-clock minute;
// this file says how one is keyed and encoded in the database, how minutes
// add up into the `step` buckets an answer is made of, and how the query's
// from/to/step are read. No I/O: db/history_store.h keeps the samples,
// server/admin/history.h takes them and answers the route.
//
// Record layout (family "history", db/history_store.h):
//   key    8 bytes: the minute number (unix seconds / 60), big-endian, so
//          key order is time order and a range delete drops old minutes
//   value  41 bytes: a version byte (1), then five uint64 little-endian:
//          bytes_from_cache, bytes_from_origin, requests, hits, cache_used
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orchard::history {

// One minute's traffic. The first four are counts within the minute
// (deltas of the cumulative counters); cache_used is a gauge: the store's
// bytes when the minute was last sampled.
struct Sample {
  uint64_t bytesFromCache = 0;   // body bytes of answers served from stored objects
  uint64_t bytesFromOrigin = 0;  // body bytes received from origins
  uint64_t requests = 0;         // proxied requests: hits, misses, collapsed and passes (no local routes)
  uint64_t hits = 0;             // requests answered from a stored object
  uint64_t cacheUsed = 0;        // bytes of complete objects in the store
  bool operator==(const Sample&) const = default;
};

inline constexpr size_t kKeySize = 8;
inline constexpr size_t kValueSize = 41;
inline constexpr uint8_t kValueVersion = 1;

// The key of minute `minute` (unix seconds / 60).
std::string encodeKey(int64_t minute);
// The minute of a key; nullopt for a key that is not 8 bytes.
std::optional<int64_t> decodeKey(std::string_view key);
std::string encodeValue(const Sample& s);
// nullopt for a value of another size or version (skipped by readers).
std::optional<Sample> decodeValue(std::string_view value);

// The counts of `later` since `earlier` (cumulative counters). A counter
// that went down (a restart in between) counts from zero: its later value.
uint64_t counterDelta(uint64_t earlier, uint64_t later);
// Adds the counts of b into a; cache_used becomes b's (the later gauge).
void accumulate(Sample& a, const Sample& b);

// One bucket of an answer: its start (unix seconds, a multiple of the
// step) and its minutes added up (cache_used: the last minute's).
struct Point {
  int64_t t = 0;
  Sample sample;
  bool operator==(const Point&) const = default;
};

struct MinuteSample {
  int64_t minute = 0;
  Sample sample;
};

// Buckets of `stepSeconds` (a multiple of 60) from minutes given in
// ascending order; buckets without a minute are left out (the answer is
// sparse: a box that was off has no points then).
std::vector<Point> aggregate(const std::vector<MinuteSample>& minutes, int64_t stepSeconds);

// A time as the query gives it: Unix seconds ("1764806400") or RFC 3339
// ("2025-12-04T00:00:00Z", "2025-12-04T01:00:00+01:00", fractions of a
// second allowed and dropped). nullopt when it is neither.
std::optional<int64_t> parseTime(std::string_view text);

// The query's limits.
inline constexpr int64_t kMinStep = 60;
inline constexpr int64_t kMaxPoints = 1500;          // the default step keeps an answer under this
inline constexpr int64_t kMaxBuckets = 100000;       // a given step may not make more than this
inline constexpr int64_t kMaxRange = 400LL * 86400;  // a longer from..to is refused
inline constexpr int64_t kDefaultRange = 86400;      // from defaults to to - 24 h

// The smallest multiple of 60 s that splits `rangeSeconds` into at most
// kMaxPoints buckets.
int64_t defaultStep(int64_t rangeSeconds);

// The query resolved: [from, to] in unix seconds and the step.
struct Query {
  int64_t from = 0;
  int64_t to = 0;
  int64_t step = 0;
};
struct QueryError {
  std::string param;   // "from", "to" or "step"
  std::string detail;  // what is wrong, for the 400
};
// Reads from/to/step (each nullopt when absent) against `now`. Errors
// name the parameter: unreadable, from after to, a range over kMaxRange,
// a step under 60 s, not a multiple of 60 or making over kMaxBuckets.
struct QueryResult {
  std::optional<Query> query;
  QueryError error;
};
QueryResult parseQuery(const std::optional<std::string>& from, const std::optional<std::string>& to,
                       const std::optional<std::string>& step, int64_t now);

}  // namespace orchard::history
