// The operator's write routes of the admin API (token scope `admin`):
//
//   POST /api/v1/purge   {"url": "http://host/path?q"} | {"host": "name"} | {"all": true}
//     Removes stored objects so that the next request goes to the origin.
//     `url` is keyed exactly as the proxy keys a request for it (the form
//     router, server/proxy/router.h: the same ignored query parameters, the
//     same http/https sharing); a varying URI takes every variant its Vary
//     stub lists. `host` takes every object whose key names that host (any
//     port, any scheme), `all` every object: both scan the index on the
//     worker pool. Fills in flight for what is purged are cut off from new
//     requests and store nothing, while their readers keep reading
//     (cache::Fill::purge). Partial records (interrupted fills) go too, so
//     nothing is resumed from their bytes.
//     200 {"purged": N, "partials": N, "fills": N} (+ "key" for a url);
//     404 for a url with nothing stored and no fill in flight (a mistyped
//     URL says so instead of "0"); 400 for a body that is not one of the
//     three forms.
//   POST /api/v1/reload
//     Reloads the config file as SIGHUP does, on the server's control
//     thread (the handler's loop does not wait for it).
//     200 {"applied": true, "generation": N, "changed": [...], "restart_required": [...]};
//     422 {"error", "detail", "applied": false, "generation": N,
//          "problems": [{"key", "line", "message"}]} with the running
//     config unchanged; 409 when orchardd runs without a config file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "cache/fill.h"
#include "cache/store.h"
#include "server/context.h"
#include "server/http/route_table.h"

namespace orchard::server {

// What a purge removed.
struct PurgeCount {
  uint64_t objects = 0;   // complete objects (each Vary variant counts)
  uint64_t partials = 0;  // partial records dropped
  uint64_t fills = 0;     // fills in flight cut off
};

// Purges one URI's primary key: its fills in flight, its object (or its
// Vary stub and the variants it lists) and its partial record. Blocks on
// the store's key locks only; any thread.
PurgeCount purgeKey(cache::Store& store, cache::FillTable& fills, const cache::CacheKey& key);
// Purges every key whose text `match` accepts (fills first, then the
// index scan, Store::keysWhere). Blocks for the scan: off the loops.
Result<PurgeCount> purgeWhere(cache::Store& store, cache::FillTable& fills,
                              const std::function<bool(std::string_view)>& match);

// Adds POST /api/v1/purge and POST /api/v1/reload (scope admin).
void registerOpsRoutes(RouteTable& routes, const ServerContext* ctx);

}  // namespace orchard::server
