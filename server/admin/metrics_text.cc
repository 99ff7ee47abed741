// /metrics: the Prometheus text exposition (format 0.0.4) of the per-loop
// counters (summed with relaxed loads: a scrape may be a few requests
// behind), the labelled families and histograms (server/metrics.h), the
// store's stats and health, TLS, the catalog and Apple's OS-version feed.
// Every family has HELP and TYPE lines; `promtool check metrics` passes
// (tests/blackbox/test_metrics.py).
//
// Names follow Prometheus' conventions: orchard_ prefix, counters end in
// _total, units are suffixes (_bytes, _seconds). Names from before those
// rules were kept (dashboards use them) and the conventional name was added
// beside them for the same value (kAliases, README "Metrics").
#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "server/admin/admin.h"
#include "server/admin/release_metrics.h"
#include "server/apple/os_feed.h"
#include "server/apple/apple_service.h"
#include "server/apple/mirror.h"
#include "server/proxy/cache_nodes.h"
#include "server/catalog/status_routes.h"
#include "server/net/tls_context.h"
#include "server/proxy/fill_driver.h"

namespace orchard::server {
namespace {

// Conventional names for counters whose old name put the unit first.
struct Alias {
  uint64_t CounterTotals::*field;
  const char* name;
  const char* help;
};
const Alias kAliases[] = {
    {&CounterTotals::bytes_to_clients, "client_body_bytes_total", "body bytes sent to clients (= bytes_to_clients_total)"},
    {&CounterTotals::bytes_from_origin, "origin_body_bytes_total",
     "body bytes received from origins (= bytes_from_origin_total)"},
    {&CounterTotals::bytes_stored, "stored_body_bytes_total",
     "body bytes of objects committed to the store (= bytes_stored_total)"},
    {&CounterTotals::bytes_kernel_path, "kernel_path_body_bytes_total",
     "body bytes sent from stored files by the kernel path (= bytes_kernel_path_total)"},
    {&CounterTotals::tunnel_bytes_up, "tunnel_up_bytes_total",
     "bytes clients sent through CONNECT tunnels to origins (= tunnel_bytes_up_total)"},
    {&CounterTotals::tunnel_bytes_down, "tunnel_down_bytes_total",
     "bytes origins sent through CONNECT tunnels to clients (= tunnel_bytes_down_total)"},
};

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void family(const char* name, const char* help, const char* type) {
    *out_ += "# HELP orchard_";
    *out_ += name;
    *out_ += ' ';
    *out_ += help;
    *out_ += "\n# TYPE orchard_";
    *out_ += name;
    *out_ += ' ';
    *out_ += type;
    *out_ += '\n';
  }
  // One sample: orchard_<name><suffix>{<labels>} <value>.
  void sample(const char* name, const char* suffix, const std::string& labels, uint64_t v) {
    start(name, suffix, labels);
    *out_ += std::to_string(v);
    *out_ += '\n';
  }
  void sampleSeconds(const char* name, const char* suffix, const std::string& labels, uint64_t ns) {
    start(name, suffix, labels);
    char b[48];
    std::snprintf(b, sizeof b, "%" PRIu64 ".%09" PRIu64, ns / 1'000'000'000u, ns % 1'000'000'000u);
    *out_ += b;
    *out_ += '\n';
  }
  void single(const char* name, const char* help, const char* type, uint64_t v) {
    family(name, help, type);
    sample(name, "", {}, v);
  }
  // The _bucket (cumulative, le in seconds), _sum and _count lines of one
  // histogram; `labels` without braces ("" or `result="hit"`).
  void histogram(const char* name, const std::string& labels, const HistogramTotals& h) {
    uint64_t cumulative = 0;
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < kBuckets; ++i) {
      cumulative += h.counts[i];
      char le[32];
      if (i + 1 == kBuckets) std::snprintf(le, sizeof le, "+Inf");
      else std::snprintf(le, sizeof le, "%g", static_cast<double>(kBucketBoundsNs[i]) / 1e9);
      sample(name, "_bucket", labels + sep + "le=\"" + le + "\"", cumulative);
    }
    sampleSeconds(name, "_sum", labels, h.sumNs);
    sample(name, "_count", labels, cumulative);
  }

 private:
  void start(const char* name, const char* suffix, const std::string& labels) {
    *out_ += "orchard_";
    *out_ += name;
    *out_ += suffix;
    if (!labels.empty()) {
      *out_ += '{';
      *out_ += labels;
      *out_ += '}';
    }
    *out_ += ' ';
  }
  std::string* out_;
};

// The result/form pairs that exist by design, exported even at 0 (a
// series that appears only on its first event breaks rate()); any other
// pair is exported once it is not 0.
bool expectedPair(RequestResult r, RequestForm f) {
  if (f == RequestForm::Local) return r == RequestResult::Local || r == RequestResult::Refused;
  if (r == RequestResult::Local) return false;
  if (r == RequestResult::Tunnel) return f == RequestForm::Forward;
  return true;
}

}  // namespace

std::string renderMetrics(const ServerContext& ctx) {
  CounterTotals t = sumCounters(ctx.counters);
  std::string out;
  out.reserve(32 * 1024);
  Writer w(&out);
#define ORCHARD_METRIC(name, help) w.single(#name "_total", help, "counter", t.name);
  ORCHARD_COUNTERS(ORCHARD_METRIC)
#undef ORCHARD_METRIC
  for (const Alias& a : kAliases) w.single(a.name, a.help, "counter", t.*a.field);

  w.family("responses_total",
           "requests answered, counted when the response ends: result = what the request became (hit, miss, "
           "stale, revalidated, pass, error, local, refused, tunnel), form = how it reached the box (intercept, "
           "forward, source, local)",
           "counter");
  for (size_t r = 0; r < kResults; ++r)
    for (size_t f = 0; f < kForms; ++f) {
      const auto rr = static_cast<RequestResult>(r);
      const auto ff = static_cast<RequestForm>(f);
      if (t.responses[r][f] == 0 && !expectedPair(rr, ff)) continue;
      w.sample("responses_total", "",
               std::string("result=\"") + resultLabel(rr) + "\",form=\"" + formLabel(ff) + "\"", t.responses[r][f]);
    }
  w.family("origin_errors_by_kind_total",
           "origin exchanges that failed, by kind (resolve, connect, timeout, tls, protocol, reset, other), and "
           "origin answers with a 5xx status (status_5xx); the kinds other than status_5xx add up to "
           "origin_errors_total",
           "counter");
  for (size_t k = 0; k < kOriginErrorKinds; ++k)
    w.sample("origin_errors_by_kind_total", "",
             std::string("kind=\"") + originErrorLabel(static_cast<OriginErrorKind>(k)) + "\"",
             t.origin_errors_by_kind[k]);
  w.family("time_to_first_byte_seconds",
           "from the request head parsed to the first response byte handed to the socket, by result (requests "
           "whose client left before any byte are not observed)",
           "histogram");
  for (size_t r = 0; r < kResults; ++r)
    w.histogram("time_to_first_byte_seconds", std::string("result=\"") + resultLabel(static_cast<RequestResult>(r)) + "\"",
                t.ttfb[r]);
  w.family("request_duration_seconds",
           "from the request head parsed to the end of its response (the last byte handed to the socket, or the "
           "connection's end); CONNECT tunnels are not observed",
           "histogram");
  w.histogram("request_duration_seconds", {}, t.duration);

  w.single("open_connections", "client connections open", "gauge",
           static_cast<uint64_t>(std::max<int64_t>(0, t.open_connections)));
  w.single("start_time_seconds", "when the server started, in seconds since the Unix epoch", "gauge",
           static_cast<uint64_t>(std::max<int64_t>(0, ctx.startedAt)));
  auto st = ctx.store->stats();
  w.single("store_objects", "complete objects in the store", "gauge", st.objects);
  w.single("store_bytes", "bytes of complete objects in the store", "gauge", st.bytes);
  w.single("store_partial_objects", "partial (resumable) objects in the store", "gauge", st.partials);
  w.single("store_partial_bytes", "bytes of the partial objects' durable blocks", "gauge", st.partialBytes);
  w.single("store_evictions_total", "objects (complete or partial) evicted since start", "counter", st.evictions);
  w.single("store_evicted_bytes_total", "bytes of the objects evicted since start", "counter", st.evictedBytes);
  w.single("store_corrupt_objects_total", "objects dropped because a block failed its checksum (hit or scrub)",
           "counter", st.corruptObjects);
  w.single("store_scrub_passes_total", "background scrub passes finished", "counter", st.scrubPasses);
  w.single("store_limit_bytes", "storage.cache_limit", "gauge", ctx.store->cacheLimit());
  w.single("fills_in_flight", "shared origin fetches in progress", "gauge", ctx.fills->inFlight());
  auto health = ctx.store->health().report(ctx.clock->monotonicMs());
  w.single("store_write_errors_total",
           "store writes (object and temp files, syncs, index records) that failed; each fill hit passed through "
           "uncached",
           "counter", health.writeErrors);
  w.single("store_degraded", "1 while store writes are failing (see CacheProblems in /api/v1/status)", "gauge",
           health.degraded ? 1 : 0);
  if (ctx.catalog) {
    w.single("catalog_versions", "published package versions", "gauge", ctx.catalog->versionCount());
    w.single("catalog_bytes", "bytes of published packages (distinct files) and uploads in progress", "gauge",
             ctx.catalog->usedBytes());
    w.single("catalog_limit_bytes", "catalog.limit", "gauge", ctx.catalog->limit());
  }
  {
    const tls::Counters& c = tls::counters();
    auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    w.single("tls_handshakes_total", "TLS handshakes completed (HTTPS clients and HTTPS origins)", "counter",
             get(c.handshakes));
    w.single("tls_handshake_failures_total", "TLS handshakes that failed (both roles)", "counter",
             get(c.handshake_failures));
    w.single("tls_resumed_total", "TLS handshakes completed by session resumption (both ends count)", "counter",
             get(c.resumed));
    w.single("tls_origin_verify_failures_total", "HTTPS origins whose certificate was refused (502)", "counter",
             get(c.verify_failures));
    w.single("tls_errors_total", "OpenSSL error queue entries drained", "counter", get(c.errors));
    w.single("tls_userspace_connections_total", "TLS connections whose records were encrypted in user space",
             "counter", get(c.userspace_connections));
    w.single("tls_ktls_connections_total", "TLS connections whose records were encrypted by the kernel", "counter",
             get(c.ktls_connections));
    w.single("tls_kernel_available", "1 when the kernel offers the tls ULP (kTLS)", "gauge",
             tls::kernelTlsAvailable() ? 1 : 0);
  }
  if (ctx.osFeed) {
    const OsFeed::State feed = ctx.osFeed->state();
    if (feed.feed)
      w.single("apple_os_feed_age_seconds",
               "seconds since the OS-version feed copy served was fetched (absent before any good copy)", "gauge",
               static_cast<uint64_t>(std::max<int64_t>(0, ctx.clock->nowSeconds() - feed.fetchedAt)));
    w.family("apple_os_feed_fetches_total",
             "fetches of Apple's OS-version feed by result: ok (the copy served was replaced), fetch_error "
             "(transport, TLS or HTTP status), invalid (does not parse), empty (no macOS release); only ok "
             "replaces the copy served",
             "counter");
    for (size_t o = 0; o < OsFeed::kOutcomes; ++o) {
      const auto outcome = static_cast<OsFeed::Outcome>(o);
      w.sample("apple_os_feed_fetches_total", "", std::string("result=\"") + OsFeed::outcomeLabel(outcome) + "\"",
               ctx.osFeed->fetches(outcome));
    }
  }
  if (ctx.apple) {
    // Apple's catalog and the mirror/prewarm jobs (from memory: no store walk).
    auto cat = ctx.apple->catalogIfLoaded();
    w.single("apple_catalog_products", "products in Apple's catalog as last loaded (0 before a good load)", "gauge",
             cat ? cat->catalog.products.size() : 0);
    w.single("apple_catalog_loaded_seconds", "when Apple's catalog was last loaded, seconds since the Unix epoch",
             "gauge", cat ? static_cast<uint64_t>(cat->loadedAt) : 0);
    uint64_t byState[catalog::apple::kJobStates] = {};
    uint64_t verified = 0;
    for (const JobView& v : ctx.apple->mirrors()->jobs()) {
      ++byState[static_cast<size_t>(v.job.state)];
      for (const auto& i : v.job.items)
        if (i.state == catalog::apple::JobState::Done) verified += i.size;
    }
    w.family("apple_jobs", "mirror and prewarm jobs by state", "gauge");
    for (size_t i = 0; i < catalog::apple::kJobStates; ++i)
      w.sample("apple_jobs", "",
               std::string("state=\"") + catalog::apple::jobStateName(static_cast<catalog::apple::JobState>(i)) + "\"",
               byState[i]);
    w.single("apple_verified_bytes", "bytes of mirror and prewarm items verified (size and chunklist) by their last run",
             "gauge", verified);
  }
  if (ctx.nodes && (!ctx.nodes->parents().empty() || !ctx.nodes->peers().empty())) {
    // Parents and peers (node ids are "host:port" as parsed at load: no
    // character that needs escaping in a label).
    auto perNode = [&](const char* name, const char* help, const char* type,
                       uint64_t (*value)(const CacheNodes::Node&)) {
      w.family(name, help, type);
      for (const auto* list : {&ctx.nodes->parents(), &ctx.nodes->peers()})
        for (const auto& n : *list)
          w.sample(name, "",
                   std::string("kind=\"") + (n->kind == CacheNodes::Kind::Parent ? "parent" : "peer") +
                       "\",node=\"" + n->id + "\"",
                   value(*n));
    };
    perNode("upstream_node_up", "1 while a parent or peer is used, 0 while it is down (skipped, probed)", "gauge",
            [](const CacheNodes::Node& n) -> uint64_t { return n.up.load(std::memory_order_relaxed) ? 1 : 0; });
    perNode("upstream_node_requests_total", "requests sent to each parent or peer", "counter",
            [](const CacheNodes::Node& n) -> uint64_t { return n.requests.load(std::memory_order_relaxed); });
    perNode("upstream_node_failures_total", "times each parent or peer was marked down", "counter",
            [](const CacheNodes::Node& n) -> uint64_t { return n.failures.load(std::memory_order_relaxed); });
  }
  if (ctx.catalog && ctx.fleet) appendReleaseMetrics(out, *ctx.catalog, *ctx.fleet, ctx.clock->nowSeconds());
  appendReleaseHealthMetrics(out, ctx, ctx.clock->nowSeconds());
  return out;
}

}  // namespace orchard::server
