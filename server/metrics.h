// Counters: one block per worker loop, written only by that loop's thread
// (relaxed atomics so readers on other threads are well-defined), summed
// when /metrics or /api/v1/status is read. The Server has one more block of
// its own for what its control thread counts (config reloads).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace orchard::server {

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
  X(bytes_from_cache, "body bytes of answers served from stored objects (hits)")   \
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
  X(config_reload_failures, "config reloads refused (invalid file): the running config stays")

struct Counters {
#define ORCHARD_FIELD(name, help) std::atomic<uint64_t> name{0};
  ORCHARD_COUNTERS(ORCHARD_FIELD)
#undef ORCHARD_FIELD
  std::atomic<int64_t> open_connections{0};
  std::atomic<uint64_t> none{0};  // what the ORCHARD_STEPS steps that count nothing add to (not exported)

  void add(std::atomic<uint64_t>& c, uint64_t n = 1) { c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
};

struct CounterTotals {
#define ORCHARD_FIELD(name, help) uint64_t name = 0;
  ORCHARD_COUNTERS(ORCHARD_FIELD)
#undef ORCHARD_FIELD
  int64_t open_connections = 0;
};

CounterTotals sumCounters(const std::vector<const Counters*>& blocks);

}  // namespace orchard::server
