// Router: the pure decision of what a request is, from its head alone.
//
//   Probe      GET / with Max-Forwards: 0 (Apple clients looking for a cache)
//   Proxy      an allowed upstream named by intercept (Host), forward-proxy
//              (absolute URI) or content-cache (?source=) form
//   Local      a request for the box itself (metrics, status, ...)
//   Deny       403: a host that is not allowed (never an open proxy)
//   Reject     a fixed error status (400 bad target, 501 unsupported)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

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
};

struct Route {
  enum class Kind : uint8_t { Probe, Proxy, Local, Deny, Reject };
  Kind kind = Kind::Reject;
  int status = 400;            // Reject/Deny: the status to answer
  std::string reason;          // Reject/Deny: why (for the error body and the log)
  // Proxy:
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

}  // namespace orchard::server
