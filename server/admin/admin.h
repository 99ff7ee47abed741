// The local routes every box has: /metrics, /api/v1/status, purge and reload. A new local
// route is a row added here (or in the registration function of its own
// folder, e.g. the catalog's) and a handler: see server/routes.h.
#pragma once

#include <string>

#include "server/context.h"
#include "server/http/route_table.h"

namespace orchard::server {

std::string renderMetrics(const ServerContext& ctx);
// `configGeneration`: the generation of the config the asking loop runs on.
std::string renderStatus(const ServerContext& ctx, uint64_t configGeneration);

// Adds GET /metrics, GET /api/v1/status and the operator routes
// (POST /api/v1/purge, POST /api/v1/reload: ops_routes.h). `ctx` outlives
// the table.
void registerAdminRoutes(RouteTable& routes, const ServerContext* ctx);

}  // namespace orchard::server
