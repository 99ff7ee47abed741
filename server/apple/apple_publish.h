// POST /api/v1/apple/products/{id}/publish (scope publish): a mirrored
// macOS installer published into the catalog as package "macOS", version
// the product's, so MDM targets it with the same rules, rings and
// deadlines as in-house packages. The bytes are not copied: the mirrored
// object is imported from the cache (server/catalog/import.h), its
// manifest's chunk hashes computed from the bytes stored.
//
//   404  no such product in Apple's catalog
//   409  the product is not an installer, or its mirror is not complete (the why)
//   400  the product has no version
//   503  the Apple service is not running
//   201  the publish's JSON plus "source_url" (200: published already)
//
// Registered by the Server next to the Apple routes (not by
// registerCatalogRoutes: it needs the AppleService).
#pragma once

#include "server/context.h"
#include "server/http/route_table.h"

namespace orchard::server {

void registerApplePublishRoute(RouteTable& routes, const ServerContext* ctx);

}  // namespace orchard::server
