// The catalog's routes (../shared/INTERFACE.md, "Catalog API" and the
// /pkgs and /manifests local routes), registered by the Server beside the
// admin ones:
//   PUT    /api/v1/packages/{name}/{version}/{filename}  publish (publish_handler.cc)
//   POST   /api/v1/packages/{name}/{version}/from-url    import from the cache (import.cc)
//   GET    /api/v1/packages                              every package, latest version first
//   GET    /api/v1/packages/{name}                       its versions, newest first
//   DELETE /api/v1/packages/{name}/{version}
//   PATCH  /api/v1/packages/{name}/{version}             its metadata (JSON), bytes unchanged
//   GET    /api/v1/audit?after=&limit=                   the audit log, oldest first, paged
//   GET    /pkgs/{name}/{version}/{filename}             the bytes (package_sender.cc)
//   GET    /manifests/{name}/{version}.plist             the InstallEnterpriseApplication manifest
// Every /api/v1 route here needs the bearer token; /pkgs and /manifests do not.
#pragma once

#include "server/context.h"
#include "server/http/route_table.h"

namespace orchard::server {

void registerCatalogRoutes(RouteTable& routes, const ServerContext* ctx);

// Release control's routes (fleet_routes.cc): devices, targeting, rings,
// rollout, pins, installs and declarations.
void registerFleetRoutes(RouteTable& routes, const ServerContext* ctx);
// Delivery reports (status_routes.cc): POST/GET /api/v1/devices/{serial}/status.
void registerStatusRoutes(RouteTable& routes, const ServerContext* ctx);

// Publish once at a hub (hub_routes.cc): GET /api/v1/catalog/changes and
// /api/v1/catalog/sync, PUT /api/v1/sites/{site}, GET /api/v1/sites.
void registerHubRoutes(RouteTable& routes, const ServerContext* ctx);

// OS targets per ring (os_target_routes.cc), registered by registerFleetRoutes:
//   PUT / GET / DELETE /api/v1/os-targets/{ring},  GET /api/v1/os-targets
void registerOsTargetRoutes(RouteTable& routes, const ServerContext* ctx);

// POST /api/v1/test/clock {"advance_seconds": N} (test_clock_route.cc):
// moves the box's wall clock ahead. Registered by orchardd only when it was
// started with --test-clock-offset (ctx->clock is then an OffsetClock);
// never part of a normal start.
void registerTestClockRoute(RouteTable& routes, const ServerContext* ctx);

// Made by the publish and package routes (their own files).
RequestHandler* makePublishHandler(HandlerRequest&& r, const ServerContext* ctx);
RequestHandler* makePackageSender(HandlerRequest&& r, const ServerContext* ctx);

}  // namespace orchard::server
