// The box's own documents: /metrics (Prometheus text exposition) and
// /api/v1/status (JSON with the keys an admin of Apple's content caching
// reads in `AssetCacheManagerUtil status`). Both read the per-loop counters
// (summed with relaxed loads: a scrape may be a few requests behind) and
// the store's stats and health; rendering never blocks on the store.
#include "server/admin/admin.h"

#include "server/net/tls_context.h"
#include "server/catalog/status_routes.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "cache/policy.h"
#include "server/admin/ops_routes.h"
#include "server/admin/release_metrics.h"
#include "server/admin/status_info.h"
#include "server/catalog/catalog_http.h"
#include "server/http/local_handler.h"
#include "server/proxy/fill_driver.h"

namespace orchard::server {

namespace {
// Fills the status page lists (largest first); FillsInFlight counts them all.
constexpr size_t kStatusFills = 50;
}  // namespace

// Parents or peers and their health (server/proxy/cache_nodes.h).
static nlohmann::ordered_json nodesJson(const std::vector<std::unique_ptr<CacheNodes::Node>>& nodes, int64_t nowMs) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& n : nodes) {
    nlohmann::ordered_json e;
    const bool up = n->up.load(std::memory_order_relaxed);
    e["id"] = n->id;
    e["url"] = std::string(n->addr.tls ? "https://" : "http://") + n->id;
    e["state"] = up ? "up" : "down";
    e["failures"] = n->failures.load(std::memory_order_relaxed);
    e["requests"] = n->requests.load(std::memory_order_relaxed);
    e["bytes"] = n->bytes.load(std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(n->mu);
      e["last_error"] = n->lastError.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(n->lastError);
      if (n->downSince) {
        char when[30];
        cache::formatHttpDate(n->downSince, when);
        e["last_failure"] = when;
      } else {
        e["last_failure"] = nullptr;
      }
    }
    const int64_t retry = n->retryAtMs.load(std::memory_order_relaxed) - nowMs;
    e["probe_in_ms"] = up ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(std::max<int64_t>(0, retry));
    out.push_back(std::move(e));
  }
  return out;
}

std::string renderStatus(const ServerContext& ctx, uint64_t configGeneration) {
  CounterTotals t = sumCounters(ctx.counters);
  auto st = ctx.store->stats();
  int64_t now = ctx.clock->nowSeconds();
  char since[30];
  cache::formatHttpDate(ctx.startedAt, since);
  uint64_t limit = ctx.store->cacheLimit();
  uint64_t freeBytes = limit > st.bytes ? limit - st.bytes : 0;
  uint64_t lookups = t.hits + t.misses + t.collapsed;
  // CacheStatus: DEGRADED while store writes fail (misses are passed
  // through uncached), else LOWSPACE when the cache or its disk is nearly
  // full, else OK. CacheProblems says why, always present (empty when OK).
  std::vector<std::string> problems;
  auto health = ctx.store->health().report(ctx.clock->monotonicMs());
  if (health.degraded) problems.push_back(health.reason);
  uint64_t diskAvail = 0, diskReserve = 0;
  const bool diskLow = storageBelowReserve(ctx.startConfig.storageDir, &diskAvail, &diskReserve);
  if (diskLow)
    problems.push_back("disk below reserve: " + std::to_string(diskAvail) + " bytes free, " +
                       std::to_string(diskReserve) + " kept for the index (fills pass through uncached)");
  const bool cacheLow = limit && freeBytes < limit / 20;
  if (cacheLow) problems.push_back("cache nearly full: " + std::to_string(freeBytes) + " of " + std::to_string(limit) +
                                   " bytes free under storage.cache_limit");
  // Keys in the order an admin of Apple's content caching reads them.
  nlohmann::ordered_json j;
  // Apple's byte counters, each byte in one of them: to Macs, to child
  // caches (a Via naming an Orchard), to peers (access.peer_clients); stored
  // from the origin, a parent or a peer.
  const uint64_t toCaches = t.bytes_to_children + t.bytes_to_peers;
  // Objects from a peer are relayed, not stored (the peer owning the key
  // stores it): TotalBytesStoredFromPeers stays 0 under peer_policy
  // url-path-hash; TotalBytesFromPeers says what peers sent.
  const uint64_t fromNodes = std::min(t.bytes_stored, t.stored_from_parents);
  const uint64_t received = t.bytes_from_origin + t.bytes_from_parents + t.bytes_from_peers;
  j["TotalBytesReturnedToClients"] = t.bytes_to_clients > toCaches ? t.bytes_to_clients - toCaches : 0;
  j["TotalBytesReturnedToChildren"] = t.bytes_to_children;
  j["TotalBytesReturnedToPeers"] = t.bytes_to_peers;
  j["TotalBytesStoredFromOrigin"] = t.bytes_stored - fromNodes;
  j["TotalBytesStoredFromParents"] = std::min(t.bytes_stored, t.stored_from_parents);
  j["TotalBytesStoredFromPeers"] = 0;
  j["TotalBytesFromPeers"] = t.bytes_from_peers;
  j["TotalBytesDropped"] = received > t.bytes_stored ? received - t.bytes_stored : 0;
  j["TotalBytesAreSince"] = since;
  j["CacheUsed"] = st.bytes;
  j["CacheFree"] = freeBytes;
  j["CacheLimit"] = limit;
  j["CacheStatus"] = health.degraded ? "DEGRADED" : (diskLow || cacheLow) ? "LOWSPACE" : "OK";
  j["CacheProblems"] = problems;
  // Apple's service keys. There is no registration with Apple (a Linux box
  // cannot join Apple's locator service), so RegistrationStatus says what
  // monitoring scripts written for Apple's caches read it for: 1 while the
  // box serves its clients, 0 while it drains. PublicAddress is left out:
  // the box asks no outside service what its WAN address is.
  const bool active = ctx.serving.load(std::memory_order_relaxed);
  std::string privateAddress;
  std::vector<std::string> privateAddresses;
  listenerAddresses(ctx.listeners, &privateAddress, &privateAddresses);
  uint16_t port = 0;
  for (const auto& l : ctx.listeners)
    if (!l.tls) {
      port = l.port;
      break;
    }
  if (port == 0 && !ctx.listeners.empty()) port = ctx.listeners.front().port;  // TLS listeners only
  j["Activated"] = true;
  j["Active"] = active;
  j["Port"] = port;
  j["PrivateAddress"] = privateAddress;
  j["PrivateAddresses"] = privateAddresses;
  j["RegistrationStatus"] = active ? 1 : 0;
  j["StartupStatus"] = "OK";  // a box that failed to start answers nothing
  j["Objects"] = st.objects;
  j["CorruptObjectsFound"] = st.corruptObjects;
  j["HitRatio"] = lookups ? static_cast<double>(t.hits) / static_cast<double>(lookups) : 0.0;
  // Bytes from stored files (hits, published packages) over every body
  // byte sent: what the WAN link was spared.
  j["ByteHitRatio"] = t.bytes_to_clients
                          ? static_cast<double>(std::min(t.bytes_from_store, t.bytes_to_clients)) /
                                static_cast<double>(t.bytes_to_clients)
                          : 0.0;
  if (ctx.nodes) {
    j["Parents"] = nodesJson(ctx.nodes->parents(), ctx.clock->monotonicMs());
    j["Peers"] = nodesJson(ctx.nodes->peers(), ctx.clock->monotonicMs());
    if (!ctx.nodes->self().empty()) j["PeerSelf"] = ctx.nodes->self();
  }
  j["FillsInFlight"] = ctx.fills->inFlight();
  nlohmann::ordered_json fills = nlohmann::ordered_json::array();
  for (const auto& f : ctx.fills->progress(kStatusFills)) {
    nlohmann::ordered_json e;
    e["url"] = f.key;
    e["received"] = f.received;
    e["length"] = f.length ? nlohmann::ordered_json(*f.length) : nlohmann::ordered_json(nullptr);
    e["clients"] = f.readers;
    fills.push_back(std::move(e));
  }
  j["Fills"] = std::move(fills);
  j["Connections"] = static_cast<uint64_t>(std::max<int64_t>(0, t.open_connections));
  j["UptimeSeconds"] = static_cast<uint64_t>(std::max<int64_t>(0, now - ctx.startedAt));
  j["Requests"] = t.requests;
  j["ConfigGeneration"] = configGeneration;  // 1 at start, +1 per reload that applied
  j["ConfigFile"] = ctx.configPath.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(ctx.configPath);
  j["Version"] = orchardVersion();
  if (ctx.catalog) {
    j["PackageVersions"] = ctx.catalog->versionCount();
    j["PackagesUsed"] = ctx.catalog->usedBytes();
    j["PackagesLimit"] = ctx.catalog->limit();
  }
  // Key texts are the origins' URLs: invalid UTF-8 is replaced, never thrown.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void registerAdminRoutes(RouteTable& routes, const ServerContext* ctx) {
  // Open documents of the admin API: no token, but the admin client list
  // (admin.allow_clients, else access.allow_clients; server/routes.h).
  // Rendered on the worker pool: the release gauges walk every device for
  // each package (tens of milliseconds at 10,000 devices), which would
  // stall every connection of the loop that took the scrape. Everything
  // renderMetrics reads is safe from any thread (relaxed counter loads,
  // the stores' own locks).
  routes.add("GET", "/metrics", [ctx](HandlerRequest&& r) -> RequestHandler* {
    return new OffLoopAnswer(r.writer, std::move(r.head), [ctx](std::string) {
      return OffLoopAnswer::Reply{200, renderMetrics(*ctx), {}, "text/plain; version=0.0.4"};
    });
  }, kAnyListener, RouteAccess::Admin);
  // The box's own CA, for an MDM certificate profile. Public to the
  // branch's clients: it is a trust anchor, not a secret, and Macs fetch it
  // before they trust the box.
  routes.add("GET", "/ca.pem", [](HandlerRequest&& r) -> RequestHandler* {
    const auto& t = r.writer->wc()->snapshot().tls;
    if (t->caPem.empty()) {
      const char* why = t->server ? "this box serves a configured certificate (tls.certificate): it has no CA of its own"
                                  : "HTTPS is off (tls.listen is empty): the box has no CA";
      return FixedAnswer::error(r.writer, std::move(r.head), 404, why);
    }
    return new FixedAnswer(r.writer, std::move(r.head), 200, "application/x-pem-file", t->caPem,
                           "Content-Disposition: attachment; filename=\"orchard-ca.pem\"\r\n");
  }, kAnyListener, RouteAccess::Clients);
  // Rendered on the worker pool too: it lists the fills in flight (each
  // fill's lock, briefly), asks statvfs about storage.dir and getifaddrs
  // about the box's addresses. The generation is the asking loop's.
  routes.add("GET", "/api/v1/status", [ctx](HandlerRequest&& r) -> RequestHandler* {
    const uint64_t generation = r.writer->wc()->snapshot().generation;
    return new OffLoopAnswer(r.writer, std::move(r.head), [ctx, generation](std::string) {
      return OffLoopAnswer::Reply{200, renderStatus(*ctx, generation), {}, "application/json"};
    });
  }, kAnyListener, RouteAccess::Admin);
  registerOpsRoutes(routes, ctx);
}

}  // namespace orchard::server
