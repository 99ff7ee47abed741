// dispatch(); see routes.h for the order of the checks. Every refusal here
// is counted (denied, bad_requests) and answered with the JSON error body;
// counters for the proxy's own steps are added by the transaction.
#include "server/routes.h"

#include <algorithm>

#include "server/admin/dashboard.h"
#include "server/context.h"
#include "server/http/local_handler.h"
#include "server/proxy/internal_request.h"
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

namespace {

// Whether the client may reach a local row of this access class (routes.h).
bool clientMayReach(const config::Config& cfg, RouteAccess access, const struct sockaddr* peer) {
  switch (access) {
    case RouteAccess::Clients: return config::anyContains(cfg.allowClients, peer);
    case RouteAccess::Admin:
      return config::anyContains(cfg.adminAllowClients.empty() ? cfg.allowClients : cfg.adminAllowClients, peer);
    case RouteAccess::Token: return cfg.adminAllowClients.empty() || config::anyContains(cfg.adminAllowClients, peer);
  }
  return false;
}

}  // namespace

RequestHandler* dispatch(ResponseWriter* w, RequestHead req) {
  WorkerContext* wc = w->wc();
  ServerContext* sc = wc->server;
  const config::Config& cfg = wc->config();
  if (req.method == "CONNECT") {
    // Whatever the answer, what follows a CONNECT head on this connection
    // is not HTTP (a refused client may already be sending TLS).
    req.keepAlive = false;
    w->disableKeepAlive();
  }
  RouteInput in;
  in.method = req.method;
  in.target = req.target;
  auto host = req.header("Host");
  in.host = host ? *host : std::string_view();
  auto mf = req.header("Max-Forwards");
  in.maxForwardsZero = mf && *mf == "0";
  Route route = server::route(in, wc->snapshot().router);
  w->noteForm(route.form);
  // Checked per request (a few CIDRs), so a reload of access.allow_clients
  // or admin.allow_clients also applies to keep-alive connections opened
  // before it. The proxy (and every refusal of the router) answers the
  // clients of access.allow_clients; a local route, the list of its row.
  // The box's own requests (internal_request.h) are not held to it; their
  // header is looked at only here, where the request would be refused.
  if (route.kind != Route::Kind::Local && !config::anyContains(cfg.allowClients, w->peer()) &&
      internalKind(sc->internalSecret, req, w->peer()) == InternalKind::None) {
    wc->counters.add(wc->counters.denied);
    w->noteOutcome(RequestResult::Refused);
    return FixedAnswer::error(w, std::move(req), 403, "client address not allowed");
  }
  switch (route.kind) {
    case Route::Kind::Probe:
      wc->counters.add(wc->counters.local);
      return new FixedAnswer(w, std::move(req), 200, "", "", "Accept-Ranges: bytes\r\n");
    case Route::Kind::Deny:
      wc->counters.add(wc->counters.denied);
      countTunnelRefusal(wc, route.refusal);
      w->noteOutcome(RequestResult::Refused);
      return FixedAnswer::error(w, std::move(req), route.status, route.reason);
    case Route::Kind::Reject:
      wc->counters.add(wc->counters.bad_requests);
      countTunnelRefusal(wc, route.refusal);
      w->noteOutcome(RequestResult::Refused);
      return FixedAnswer::error(w, std::move(req), route.status, route.reason);
    case Route::Kind::Tunnel:
      return Tunnel::handler(w, std::move(req), std::move(route));
    case Route::Kind::Local: {
      // A browser opening the box's address gets the dashboard (Apple's
      // probe, GET / with Max-Forwards: 0, was answered above).
      if (route.path == "/" && (req.method == "GET" || req.method == "HEAD")) {
        auto accept = req.header("Accept");
        if (accept && acceptsHtml(*accept)) route.path = "/dashboard";
      }
      auto m = sc->routes.match(req.method, route.path, w->secure() ? kTlsListener : kPlainListener);
      if (!clientMayReach(cfg, m.access, w->peer()) &&
          !(m.access == RouteAccess::Clients && internalKind(sc->internalSecret, req, w->peer()) != InternalKind::None)) {
        wc->counters.add(wc->counters.denied);
        w->noteOutcome(RequestResult::Refused);
        if (m.access == RouteAccess::Clients)
          return FixedAnswer::error(w, std::move(req), 403, "client address not allowed");
        wc->counters.add(wc->counters.admin_denied);
        return FixedAnswer::error(w, std::move(req), 403,
                                  cfg.adminAllowClients.empty() ? "client address not allowed"
                                                                : "client address not in admin.allow_clients");
      }
      if (m.row) {
        // A token that crossed a network in the clear is refused before it
        // is even looked at: refusing only wrong ones would make plain HTTP
        // a place to guess them.
        if (!w->secure() && !cfg.adminAllowPlainHttp && req.header("Authorization") && !config::anyContains(cfg.adminLocalClients, w->peer())) {
          wc->counters.add(wc->counters.denied);
          wc->counters.add(wc->counters.plain_http_tokens);
          w->noteOutcome(RequestResult::Refused);
          return FixedAnswer::error(w, std::move(req), 403,
                                    "tokens are not accepted over plain HTTP from other hosts; use HTTPS or set "
                                    "admin.allow_plain_http");
        }
        wc->counters.add(wc->counters.local);
        return m.row->make(HandlerRequest{w, std::move(req), std::move(m.params), {}});
      }
      wc->counters.add(wc->counters.denied);
      if (!m.allow.empty()) {
        std::string why = req.method + " is not allowed on " + route.path;
        w->noteOutcome(RequestResult::Refused);
        return FixedAnswer::error(w, std::move(req), 405, why, "Allow: " + m.allow + "\r\n");
      }
      std::string why = route.host.empty() ? std::string("no upstream host named and not a local route")
                                           : "host not allowed: " + route.host;
      w->noteOutcome(RequestResult::Refused);
      return FixedAnswer::error(w, std::move(req), 403, why);
    }
    case Route::Kind::Proxy:
      break;
  }
  // Loops and chains: our own pseudonym in Via is a loop; more Via entries
  // than upstream.max_hops a chain too long (or a loop through boxes that
  // are not ours). A Via naming an Orchard makes the client a cache: a
  // child, or a peer from access.peer_clients (never sent on to a peer).
  size_t hops = 0;
  bool viaOrchard = false;
  for (const auto& [k, v] : req.headers) {
    if (!iequals(k, "Via")) continue;
    if (v.find(sc->viaName) != std::string::npos) {
      wc->counters.add(wc->counters.bad_requests);
      w->noteOutcome(RequestResult::Refused);
      return FixedAnswer::error(w, std::move(req), 508, "this request already passed through this box");
    }
    hops += 1 + static_cast<size_t>(std::count(v.begin(), v.end(), ','));
    viaOrchard = viaOrchard || v.find("orchard-") != std::string::npos;
  }
  if (hops > static_cast<size_t>(cfg.maxHops)) {
    wc->counters.add(wc->counters.hop_refusals);
    w->noteOutcome(RequestResult::Refused);
    return FixedAnswer::error(w, std::move(req), 508,
                              "the request passed through " + std::to_string(hops) +
                                  " caches already (Via), more than upstream.max_hops");
  }
  CacheClient client = CacheClient::None;
  if (viaOrchard) client = config::anyContains(cfg.peerClients, w->peer()) ? CacheClient::Peer : CacheClient::Child;
  return new Transaction(w, std::move(req), std::move(route), client);
}

}  // namespace orchard::server
