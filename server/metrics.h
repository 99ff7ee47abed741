// Counters: one block per worker loop, written only by that loop's thread
// (relaxed atomics so readers on other threads are well-defined), summed
// when /metrics or /api/v1/status is read. The Server has one more block of
// its own for what its control thread counts (config reloads).
//
// Besides the plain counters (ORCHARD_COUNTERS) a block holds the labelled
// families: responses by result and form, origin errors by kind, and the
// latency histograms (Histogram: fixed buckets, one relaxed add to a bucket
// and one to the sum per observation; no lock, no allocation).
#pragma once

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace orchard::server {

// X(enumerator, label): what a request became, counted when its response
// ends (orchard_responses_total{result}, orchard_time_to_first_byte_seconds).
#define ORCHARD_RESULTS(X)                                                              \
  X(Hit, "hit")                 /* a fresh stored object */                             \
  X(Miss, "miss")               /* fetched into the cache (led or joined a fill) */     \
  X(Stale, "stale")             /* a stale object served (while-revalidate, if-error) */ \
  X(Revalidated, "revalidated") /* stale, the origin said 304, the refreshed object */  \
  X(Pass, "pass")               /* passed to the origin, not cached */                  \
  X(Error, "error")             /* no usable answer from the origin (502/504), or cut */ \
  X(Local, "local")             /* the box's own routes and probes */                   \
  X(Refused, "refused")         /* refused by the box (403, 400, 405, 508) */           \
  X(Tunnel, "tunnel")           /* a CONNECT tunnel opened */

enum class RequestResult : uint8_t {
#define ORCHARD_RESULT_ENUM(e, label) e,
  ORCHARD_RESULTS(ORCHARD_RESULT_ENUM)
#undef ORCHARD_RESULT_ENUM
};
constexpr size_t kResults = 0
#define ORCHARD_RESULT_COUNT(e, label) +1
    ORCHARD_RESULTS(ORCHARD_RESULT_COUNT)
#undef ORCHARD_RESULT_COUNT
    ;
const char* resultLabel(RequestResult r) noexcept;

// How a request reached the box (orchard_responses_total{form}).
#define ORCHARD_FORMS(X)                                          \
  X(Intercept, "intercept") /* Host names an upstream (DNS) */    \
  X(Forward, "forward")     /* absolute URI, CONNECT (a proxy) */ \
  X(Source, "source")       /* Apple's ?source= form */           \
  X(Local, "local")         /* for the box itself */

enum class RequestForm : uint8_t {
#define ORCHARD_FORM_ENUM(e, label) e,
  ORCHARD_FORMS(ORCHARD_FORM_ENUM)
#undef ORCHARD_FORM_ENUM
};
constexpr size_t kForms = 0
#define ORCHARD_FORM_COUNT(e, label) +1
    ORCHARD_FORMS(ORCHARD_FORM_COUNT)
#undef ORCHARD_FORM_COUNT
    ;
const char* formLabel(RequestForm f) noexcept;

// X(enumerator, label): why an origin exchange failed, or that it answered
// 5xx (orchard_origin_errors_by_kind_total{kind}).
#define ORCHARD_ORIGIN_ERRORS(X)                                        \
  X(Resolve, "resolve")       /* DNS failed, or only refused addresses */ \
  X(Connect, "connect")       /* the connection was refused or failed */  \
  X(Timeout, "timeout")       /* connect, TLS handshake or read timeout */ \
  X(Tls, "tls")               /* handshake or certificate check failed */ \
  X(Protocol, "protocol")     /* the origin broke HTTP */                 \
  X(Reset, "reset")           /* closed or reset before the answer ended */ \
  X(Status5xx, "status_5xx")  /* answered with a 5xx status */            \
  X(Other, "other")

enum class OriginErrorKind : uint8_t {
#define ORCHARD_OE_ENUM(e, label) e,
  ORCHARD_ORIGIN_ERRORS(ORCHARD_OE_ENUM)
#undef ORCHARD_OE_ENUM
};
constexpr size_t kOriginErrorKinds = 0
#define ORCHARD_OE_COUNT(e, label) +1
    ORCHARD_ORIGIN_ERRORS(ORCHARD_OE_COUNT)
#undef ORCHARD_OE_COUNT
    ;
const char* originErrorLabel(OriginErrorKind k) noexcept;

// Monotonic nanoseconds for latencies (the vDSO clock: no system call).
inline uint64_t monotonicNs() noexcept {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Histogram buckets: upper bounds in nanoseconds (Prometheus `le`, an
// observation lands in the first bucket whose bound it does not exceed),
// 0.5 ms to 60 s, then +Inf.
inline constexpr uint64_t kBucketBoundsNs[] = {
    500'000,       1'000'000,     2'500'000,      5'000'000,      10'000'000,     25'000'000,
    50'000'000,    100'000'000,   250'000'000,    500'000'000,    1'000'000'000,  2'500'000'000,
    5'000'000'000, 10'000'000'000, 30'000'000'000, 60'000'000'000};
constexpr size_t kBuckets = sizeof(kBucketBoundsNs) / sizeof(kBucketBoundsNs[0]) + 1;  // + the +Inf bucket

// The bucket an observation of `ns` falls in (kBuckets - 1: +Inf). The
// bounds are scanned from the smallest: a small hit stops at the first.
inline size_t bucketOf(uint64_t ns) noexcept {
  size_t i = 0;
  while (i < kBuckets - 1 && ns > kBucketBoundsNs[i]) ++i;
  return i;
}

// One histogram of a loop: per-bucket counts (not cumulative; the scrape
// adds them up) and the sum of the observations. Single writer.
struct Histogram {
  std::atomic<uint64_t> counts[kBuckets] = {};
  std::atomic<uint64_t> sumNs{0};
  void record(uint64_t ns) noexcept {
    std::atomic<uint64_t>& c = counts[bucketOf(ns)];
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sumNs.store(sumNs.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
  }
};

struct HistogramTotals {
  uint64_t counts[kBuckets] = {};  // per bucket, not cumulative
  uint64_t sumNs = 0;
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t c : counts) n += c;
    return n;
  }
  void add(const Histogram& h) {
    for (size_t i = 0; i < kBuckets; ++i) counts[i] += h.counts[i].load(std::memory_order_relaxed);
    sumNs += h.sumNs.load(std::memory_order_relaxed);
  }
};

// X(name, help): the table that yields field names, metric names and help text.
#define ORCHARD_COUNTERS(X)                                                        \
  X(requests, "client requests parsed")                                            \
  X(hits, "requests answered from a complete stored object")                       \
  X(misses, "cacheable requests that started a fill")                              \
  X(collapsed, "cacheable requests that joined a fill in flight")                  \
  X(passes, "requests passed to the origin without caching")                       \
  X(local, "requests for local routes and probes")                                 \
  X(denied, "requests refused with 403")                                           \
  X(admin_denied, "admin API requests (/api/v1, /metrics) refused with 403: client outside admin.allow_clients") \
  X(unauthorized, "admin API requests refused with 401: no token, or not one of the box's") \
  X(scope_denied, "admin API requests refused with 403: the token's scope does not reach the route") \
  X(plain_http_tokens, "requests refused with 403: a token over plain HTTP from another host") \
  X(bad_requests, "requests refused as malformed (400/414/431)")                   \
  X(uri_too_long, "requests refused with 414: target longer than server.max_uri_length") \
  X(heads_too_large, "requests refused with 431: head over server.max_header_bytes or server.max_header_count") \
  X(header_timeouts, "connections answered 408 and closed: no whole request head within server.header_timeout") \
  X(client_limit_refusals, "connections answered 503 and closed: the address had server.max_connections_per_client open") \
  X(uploads_too_large, "publishes refused with 413: Content-Length over catalog.max_upload") \
  X(origin_requests, "requests sent to origins")                                   \
  X(origin_errors, "origin exchanges that failed")                                 \
  X(bytes_to_clients, "body bytes sent to clients")                                \
  X(bytes_from_origin, "body bytes received from origins")                         \
  X(bytes_stored, "body bytes of objects committed to the store")                  \
  X(bytes_from_store, "body bytes sent to clients from stored files (cache hits, published packages), not from fills or origins") \
  X(truncated_responses, "client responses ended without a clean end of message")  \
  X(connections_accepted, "client connections accepted")                          \
  X(oversize_passes, "answers passed through uncached: larger than storage.max_object_size") \
  X(send_timeouts, "client connections closed at server.send_timeout (stopped reading)") \
  X(bounded_writes, "body writes cut to 16 KiB queued under buffer pressure (slow clients)") \
  X(bytes_kernel_path, "body bytes sent from stored files by the kernel path (sendfile), no user-space copy") \
  X(disk_reads_off_loop, "stored-file reads done on the thread pool (not in the page cache, or blocks to verify)") \
  X(kernel_path_fallbacks, "bodies that fell back to copying: the kernel path refused the file or socket") \
  X(upstream_address_refusals, "origin connections refused: the name resolved only to loopback, private, link-local, CGNAT, multicast, unspecified or the box's own addresses (fetches and tunnels; upstream.allow_private)") \
  X(tunnels_opened, "CONNECT tunnels opened (200 sent, bytes relayed)")             \
  X(tunnels_refused_host, "CONNECT refused with 403: host not in upstream.tunnel_allow") \
  X(tunnels_refused_port, "CONNECT refused with 403: a port other than 443")        \
  X(tunnels_refused_address, "CONNECT refused with 403: the host resolved only to non-public addresses") \
  X(tunnels_refused_target, "CONNECT refused with 400: a target that is not host:port") \
  X(tunnels_failed, "CONNECT answered 502/504: the origin could not be resolved or connected") \
  X(tunnel_idle_timeouts, "CONNECT tunnels closed at upstream.tunnel_idle_timeout (no byte either way)") \
  X(tunnel_bytes_up, "bytes clients sent through CONNECT tunnels to origins")      \
  X(tunnel_bytes_down, "bytes origins sent through CONNECT tunnels to clients")    \
  X(config_reloads, "config reloads (SIGHUP) applied")                             \
  X(config_reload_failures, "config reloads refused (invalid file): the running config stays") \
  X(fills_started, "shared fills started: origin fetches whose answer may be stored (misses, revalidations, background refreshes)") \
  X(fill_bytes, "body bytes from origins written into shared fills")                 \
  X(parent_requests, "requests sent to parent caches (upstream.parents)")           \
  X(peer_requests, "requests sent to peer caches (upstream.peers)")                 \
  X(node_failovers, "exchanges moved to the next parent or peer, or to the origin, after one failed") \
  X(bytes_from_parents, "body bytes received from parent caches")                   \
  X(bytes_from_peers, "body bytes received from peer caches")                       \
  X(stored_from_parents, "body bytes from parent caches written into shared fills") \
  X(bytes_to_children, "body bytes sent to child caches (requests whose Via names an Orchard)") \
  X(bytes_to_peers, "body bytes sent to peer caches (access.peer_clients)")         \
  X(hop_refusals, "requests refused with 508: more Via entries than upstream.max_hops") \
  X(response_bytes, "bytes of responses (heads and bodies) written to clients, as the access log counts them") \
  X(access_log_lines, "access log lines written")                                    \
  X(access_log_dropped, "access log lines dropped: the log could not be written (full disk, closed pipe) or fell too far behind")

struct Counters {
#define ORCHARD_FIELD(name, help) std::atomic<uint64_t> name{0};
  ORCHARD_COUNTERS(ORCHARD_FIELD)
#undef ORCHARD_FIELD
  std::atomic<int64_t> open_connections{0};
  std::atomic<uint64_t> none{0};  // what the ORCHARD_STEPS steps that count nothing add to (not exported)
  std::atomic<uint64_t> responses[kResults][kForms] = {};
  std::atomic<uint64_t> origin_errors_by_kind[kOriginErrorKinds] = {};
  Histogram ttfb[kResults];  // request head parsed -> first response byte written, by result
  Histogram duration;        // request head parsed -> response ended (tunnels not included)

  void add(std::atomic<uint64_t>& c, uint64_t n = 1) { c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void addResponse(RequestResult r, RequestForm f) { add(responses[static_cast<size_t>(r)][static_cast<size_t>(f)]); }
  void addOriginError(OriginErrorKind k) { add(origin_errors_by_kind[static_cast<size_t>(k)]); }
};

struct CounterTotals {
#define ORCHARD_FIELD(name, help) uint64_t name = 0;
  ORCHARD_COUNTERS(ORCHARD_FIELD)
#undef ORCHARD_FIELD
  int64_t open_connections = 0;
  uint64_t responses[kResults][kForms] = {};
  uint64_t origin_errors_by_kind[kOriginErrorKinds] = {};
  HistogramTotals ttfb[kResults];
  HistogramTotals duration;
};

CounterTotals sumCounters(const std::vector<const Counters*>& blocks);

}  // namespace orchard::server
