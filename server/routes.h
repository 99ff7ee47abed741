// dispatch(): which handler owns a request, decided from its head alone.
//
//   the form router (server/proxy/router.h) says what the request is:
//     anything but local, from a client outside access.allow_clients -> 403
//       (unless it is the box's own request: a loopback peer with the
//       X-Orchard-Internal secret, server/proxy/internal_request.h)
//     probe (GET / with Max-Forwards: 0)         -> 200, Accept-Ranges
//     deny / reject                              -> its status (a CONNECT's:
//                                                   counted by reason)
//     tunnel (CONNECT to an allowed host:443)    -> the Tunnel (server/proxy/tunnel.h)
//   A CONNECT never leaves its connection open for another request.
//     proxy (intercept, absolute, ?source= form) -> 508 when it already passed
//                                                   through this box (Via), else
//                                                   the proxy Transaction
//     local (for the box itself)                 -> the route table row that
//                                                   matches method + path, 405
//                                                   with Allow for another method,
//                                                   403 when no row has the path;
//       first, the client list of the row (RouteAccess, route_table.h):
//         Clients (/pkgs, /manifests, unknown paths)  access.allow_clients,
//                                                     or the box's own request
//         Admin   (/metrics, /api/v1/status)          admin.allow_clients, else
//                                                     access.allow_clients
//         Token   (every other /api/v1 row)           admin.allow_clients, else
//                                                     anyone (the token decides)
//         outside it -> 403 (admin rows: counted as admin_denied);
//       then, a request carrying Authorization over plain HTTP from a client
//       not on the box (not loopback) -> 403 unless admin.allow_plain_http;
//       then the row's own check: a Token row's bearer token (401 unknown,
//       403 wrong scope; server/catalog/catalog_http.h: withToken).
//
// So an MDM server outside the branch's client ranges reaches the admin API
// (admin.allow_clients, or any address with a token), while the proxy and
// the Macs' routes stay with access.allow_clients.
//
// Where a new route goes: a row in ServerContext::routes, added by the
// registration function of the folder that owns the concern
// (server/admin/admin.h for the box's own documents), with a handler
// deriving from LocalHandler (server/http/local_handler.h). Nothing in the
// connection or the proxy changes for it.
#pragma once

#include "server/http/handler.h"
#include "server/http/message.h"

namespace orchard::server {

// Returns the handler for `req` (owned by the connection from now on).
RequestHandler* dispatch(ResponseWriter* w, RequestHead req);

}  // namespace orchard::server
