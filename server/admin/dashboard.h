// The dashboard: GET /dashboard (the page, server/admin/dashboard.html) and
// GET /dashboard/chart.js (Chart.js), both embedded at build time
// (dashboard_assets.h). Open documents like /api/v1/status: no token, but
// the admin client list (RouteAccess::Admin). The page reads the token
// routes itself with a token the user gives it (see the page's header).
// dispatch() (server/routes.cc) also sends a browser's GET / here: a
// request for "/" whose Accept names text/html and that is not Apple's
// probe (Max-Forwards: 0, answered before any route).
#pragma once

#include <string_view>

#include "server/http/route_table.h"

namespace orchard::server {

// Whether a GET / with this Accept header is a browser asking for a page.
bool acceptsHtml(std::string_view accept);

void registerDashboardRoutes(RouteTable& routes);

}  // namespace orchard::server
