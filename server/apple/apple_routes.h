// The routes of Apple's catalogs on the box (../shared/INTERFACE.md, "Apple
// content"), all answered off the loops (they read through the box itself):
//   GET    /api/v1/apple/products?kind=installer|update&q=&limit=&refresh=1   (read)
//   GET    /api/v1/apple/products/{id}                                          (read)
//   POST   /api/v1/apple/products/{id}/mirror   -> 202 the job                  (publish)
//   GET    /api/v1/apple/mirrors, /api/v1/apple/mirrors/{id}                    (read)
//   PUT    /api/v1/prewarm/{name}  {"urls","products","window","interval"}      (publish)
//   GET    /api/v1/prewarm, /api/v1/prewarm/{name} (with coverage)              (read)
//   DELETE /api/v1/prewarm/{name}                                               (publish)
//   GET    /apple/catalogs/{name}.sucatalog  (no token: for tools on the LAN)
//     name: "index" every product, "mirrored" the products mirrored here, or
//     a prewarm list's name (its products): URLs rewritten to the box in the
//     content-cache form, Digest removed.
#pragma once

#include "server/context.h"
#include "server/http/route_table.h"

namespace orchard::server {

void registerAppleRoutes(RouteTable& routes, const ServerContext* ctx);

}  // namespace orchard::server
