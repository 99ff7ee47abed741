// Router: the pure decision of what a request is, from its head alone.
//
//   Probe      GET / with Max-Forwards: 0 (Apple clients looking for a cache)
//   Proxy      an allowed upstream named by intercept (Host), forward-proxy
//              (absolute URI) or content-cache (?source=) form
//   Local      a request for the box itself (metrics, status, ...)
//   Tunnel     CONNECT <host>:443 to a host upstream.tunnel_allow allows
//              (server/proxy/tunnel.h relays it, uncached)
//   Deny       403: a host that is not allowed (never an open proxy), a
//              CONNECT to another port or to the box itself
//   Reject     a fixed error status (400 bad target, 501 unsupported)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "server/metrics.h"

namespace orchard::server {

struct RouteInput {
  std::string_view method;
  std::string_view target;   // request-target as received
  std::string_view host;     // Host header value ("" if absent)
  bool maxForwardsZero = false;
};

struct RouterConfig {
  std::function<bool(std::string_view host)> allowHost;  // host without port, lower case
  std::vector<std::string> ignoreQuery;                   // upstream.ignore_query
  // True when host:port is this box itself (one of its listeners): such a
  // request is for the box, never proxied back to it.
  std::function<bool(std::string_view host, uint16_t port)> isSelf;
  // True for a host in upstream.scheme_in_key: its https answers are keyed
  // apart from its http ones. Elsewhere an https fetch is keyed as http
  // (port 443 as 80), so a Mac on plain HTTP by DNS intercept and a mirror
  // fetching over HTTPS share one object. Null: never.
  std::function<bool(std::string_view host)> schemeInKey;
  // CONNECT hosts (upstream.tunnel_allow); null: allowHost.
  std::function<bool(std::string_view host)> allowTunnelHost;
};

struct Route {
  enum class Kind : uint8_t { Probe, Proxy, Local, Tunnel, Deny, Reject };
  // Why a CONNECT was refused (each has its counter).
  enum class Refusal : uint8_t { None, TunnelTarget, TunnelPort, TunnelHost };
  Kind kind = Kind::Reject;
  int status = 400;            // Reject/Deny: the status to answer
  std::string reason;          // Reject/Deny: why (for the error body and the log)
  Refusal refusal = Refusal::None;
  // How the request named what it wants (metrics and the access log):
  // Local for the box's own routes and probes, Forward for an absolute URI
  // or a CONNECT, Source for ?source=, Intercept otherwise; refusals keep
  // the form they were parsed as.
  RequestForm form = RequestForm::Intercept;
  // Proxy (and Tunnel: host and port):
  std::string scheme;          // "http" or "https" (fetched over TLS)
  std::string host;            // lower case, no port
  uint16_t port = 80;
  std::string upstreamTarget;  // origin-form target sent upstream (source params removed)
  std::string hostHeader;      // Host header sent upstream
  std::string keyText;         // normalised cache key
  // Local:
  std::string path;            // origin-form path without query
};

Route route(const RouteInput& in, const RouterConfig& config);

// Splits "host[:port]" / "[v6]:port"; lower-cases the host. False if malformed.
bool splitHostPort(std::string_view in, std::string* host, uint16_t* port, uint16_t defaultPort);

// CONNECT's authority-form target (RFC 9112 §3.2.3): "host:port" or
// "[v6]:port", the port required and non-zero; no userinfo, path, query,
// fragment or spaces; brackets only around an IPv6 literal. Lower-cases the
// host and drops one trailing dot (as splitHostPort). False if malformed.
bool parseConnectTarget(std::string_view target, std::string* host, uint16_t* port);

// The one port CONNECT may reach (HTTPS).
constexpr uint16_t kTunnelPort = 443;

}  // namespace orchard::server
