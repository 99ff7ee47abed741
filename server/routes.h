// dispatch(): which handler owns a request, decided from its head alone.
//
//   client address not in access.allow_clients  -> 403
//   the form router (server/proxy/router.h) says what the request is:
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
//                                                   403 when no row has the path
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
