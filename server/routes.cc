// dispatch(); see routes.h for the order of the checks. Every refusal here
// is counted (denied, bad_requests) and answered with the JSON error body;
// counters for the proxy's own steps are added by the transaction.
#include "server/routes.h"

#include "server/context.h"
#include "server/http/local_handler.h"
#include "server/proxy/transaction.h"
#include "server/proxy/tunnel.h"

namespace orchard::server {
namespace {

void countTunnelRefusal(WorkerContext* wc, Route::Refusal why) {
  switch (why) {
    case Route::Refusal::None: return;
    case Route::Refusal::TunnelTarget: wc->counters.add(wc->counters.tunnels_refused_target); return;
    case Route::Refusal::TunnelPort: wc->counters.add(wc->counters.tunnels_refused_port); return;
    case Route::Refusal::TunnelHost: wc->counters.add(wc->counters.tunnels_refused_host); return;
  }
}

}  // namespace

RequestHandler* dispatch(ResponseWriter* w, RequestHead req) {
  WorkerContext* wc = w->wc();
  ServerContext* sc = wc->server;
  if (req.method == "CONNECT") {
    // Whatever the answer, what follows a CONNECT head on this connection
    // is not HTTP (a refused client may already be sending TLS).
    req.keepAlive = false;
    w->disableKeepAlive();
  }
  // Checked per request (a few CIDRs), so a reload of access.allow_clients
  // also applies to keep-alive connections opened before it.
  if (!config::anyContains(wc->config().allowClients, w->peer())) {
    wc->counters.add(wc->counters.denied);
    return FixedAnswer::error(w, std::move(req), 403, "client address not allowed");
  }
  RouteInput in;
  in.method = req.method;
  in.target = req.target;
  auto host = req.header("Host");
  in.host = host ? *host : std::string_view();
  auto mf = req.header("Max-Forwards");
  in.maxForwardsZero = mf && *mf == "0";
  Route route = server::route(in, wc->snapshot().router);
  switch (route.kind) {
    case Route::Kind::Probe:
      wc->counters.add(wc->counters.local);
      return new FixedAnswer(w, std::move(req), 200, "", "", "Accept-Ranges: bytes\r\n");
    case Route::Kind::Deny:
      wc->counters.add(wc->counters.denied);
      countTunnelRefusal(wc, route.refusal);
      return FixedAnswer::error(w, std::move(req), route.status, route.reason);
    case Route::Kind::Reject:
      wc->counters.add(wc->counters.bad_requests);
      countTunnelRefusal(wc, route.refusal);
      return FixedAnswer::error(w, std::move(req), route.status, route.reason);
    case Route::Kind::Tunnel:
      return Tunnel::handler(w, std::move(req), std::move(route));
    case Route::Kind::Local: {
      auto m = sc->routes.match(req.method, route.path, kPlainListener);
      if (m.row) {
        wc->counters.add(wc->counters.local);
        return m.row->make(HandlerRequest{w, std::move(req), std::move(m.params)});
      }
      wc->counters.add(wc->counters.denied);
      if (!m.allow.empty()) {
        std::string why = req.method + " is not allowed on " + route.path;
        return FixedAnswer::error(w, std::move(req), 405, why, "Allow: " + m.allow + "\r\n");
      }
      std::string why = route.host.empty() ? std::string("no upstream host named and not a local route")
                                           : "host not allowed: " + route.host;
      return FixedAnswer::error(w, std::move(req), 403, why);
    }
    case Route::Kind::Proxy:
      break;
  }
  for (const auto& [k, v] : req.headers) {
    if (iequals(k, "Via") && v.find(sc->viaName) != std::string::npos) {
      wc->counters.add(wc->counters.bad_requests);
      return FixedAnswer::error(w, std::move(req), 508, "this request already passed through this box");
    }
  }
  return new Transaction(w, std::move(req), std::move(route));
}

}  // namespace orchard::server
