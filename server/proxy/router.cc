// The form router: from the request head alone, is this a probe, a proxy
// request (intercept Host, absolute URI, or Apple's ?source= form), a
// request for the box itself, or one to refuse? Pure and table-tested. The
// hard parts are hostile targets and hosts (validated before anything is
// keyed or dialed) and never becoming an open proxy (upstream.allow, and a
// request naming this box itself is local, never proxied back to it).
#include "server/proxy/router.h"

#include <cctype>

#include "common/ascii.h"
#include "cache/key.h"

namespace orchard::server {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(asciiLower(static_cast<unsigned char>(c)));
  return out;
}

bool validHostChars(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == ':')) return false;
  }
  return true;
}

// Value of query parameter `name` in `target`'s query, percent-decoding not
// needed for host names. Returns false if absent.
bool queryParam(std::string_view target, std::string_view name, std::string_view* out) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view p = query.substr(0, amp);
    auto eq = p.find('=');
    std::string_view k = p.substr(0, eq);
    if (k == name) {
      *out = eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1);
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

Route reject(int status, std::string reason) {
  Route r;
  r.kind = status == 403 ? Route::Kind::Deny : Route::Kind::Reject;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}

Route proxy(std::string scheme, std::string host, uint16_t port, std::string_view originTarget,
            const RouterConfig& config) {
  Route r;
  r.kind = Route::Kind::Proxy;
  r.scheme = std::move(scheme);
  r.host = std::move(host);
  r.port = port;
  r.upstreamTarget = cache::stripQueryParams(originTarget, {});
  bool defaultPort = (r.scheme == "http" && port == 80) || (r.scheme == "https" && port == 443);
  if (r.host.find(':') != std::string::npos) {
    r.hostHeader.reserve(r.host.size() + 8);
    r.hostHeader.append("[").append(r.host).append("]");
  } else {
    r.hostHeader = r.host;
  }
  if (!defaultPort) r.hostHeader.append(":").append(std::to_string(port));
  if (r.scheme == "https" && !(config.schemeInKey && config.schemeInKey(r.host)))
    r.keyText = cache::normaliseKey("http", r.host, port == 443 ? 80 : port, originTarget, config.ignoreQuery);
  else
    r.keyText = cache::normaliseKey(r.scheme, r.host, port, originTarget, config.ignoreQuery);
  return r;
}

}  // namespace

bool splitHostPort(std::string_view in, std::string* host, uint16_t* port, uint16_t defaultPort) {
  std::string_view h = in;
  std::string_view p;
  if (!h.empty() && h.front() == '[') {
    auto close = h.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view rest = h.substr(close + 1);
    h = h.substr(1, close - 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      p = rest.substr(1);
    }
  } else {
    auto colon = h.rfind(':');
    if (colon != std::string_view::npos) {
      if (h.find(':') != colon) return false;  // bare v6 without brackets
      p = h.substr(colon + 1);
      h = h.substr(0, colon);
    }
  }
  if (!h.empty() && h.back() == '.') h.remove_suffix(1);  // one trailing dot: the same name
  if (!validHostChars(h)) return false;
  // Empty labels would name the same host in more than one spelling (and
  // slip past upstream.resolve): "a..b", ".a", "a.." are refused.
  if (h.front() == '.' || h.back() == '.' || h.find("..") != std::string_view::npos) return false;
  *host = lower(h);
  if (p.empty()) {
    *port = defaultPort;
    return true;
  }
  unsigned v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
    if (v > 65535) return false;
  }
  if (v == 0) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

bool parseConnectTarget(std::string_view target, std::string* host, uint16_t* port) {
  if (target.empty() || target.size() > 262) return false;  // 253 for a name, 45+2 for [v6], ":65535"
  if (target.find_first_of("/?#@ \t") != std::string_view::npos) return false;
  std::string_view hostPart;
  if (target.front() == '[') {
    size_t close = target.find(']');
    if (close == std::string_view::npos || close + 1 >= target.size() || target[close + 1] != ':') return false;
    hostPart = target.substr(1, close - 1);
    if (hostPart.find(':') == std::string_view::npos) return false;  // brackets hold an IPv6 literal only
  } else {
    size_t colon = target.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == target.size()) return false;  // the port is required
  }
  uint16_t p = 0;
  if (!splitHostPort(target, host, &p, 0) || p == 0) return false;
  *port = p;
  return true;
}

namespace {

Route routeConnect(const RouteInput& in, const RouterConfig& config) {
  Route r;
  std::string host;
  uint16_t port = 0;
  if (!parseConnectTarget(in.target, &host, &port)) {
    r = reject(400, "CONNECT needs a \"host:port\" target");
    r.refusal = Route::Refusal::TunnelTarget;
    return r;
  }
  if (config.isSelf && config.isSelf(host, port)) {
    r = reject(403, "CONNECT to this box itself");
    r.refusal = Route::Refusal::TunnelHost;
    return r;
  }
  if (port != kTunnelPort) {
    r = reject(403, "CONNECT is only allowed to port 443, not " + std::to_string(port));
    r.refusal = Route::Refusal::TunnelPort;
    return r;
  }
  const auto& allow = config.allowTunnelHost ? config.allowTunnelHost : config.allowHost;
  if (!allow(host)) {
    r = reject(403, "host not allowed for CONNECT: " + host);
    r.refusal = Route::Refusal::TunnelHost;
    return r;
  }
  r.kind = Route::Kind::Tunnel;
  r.status = 200;
  r.host = std::move(host);
  r.port = port;
  return r;
}

}  // namespace

namespace {

Route routeAndForm(const RouteInput& in, const RouterConfig& config, RequestForm* form) {
  if (in.method == "CONNECT") {
    *form = RequestForm::Forward;
    return routeConnect(in, config);
  }
  std::string_view target = in.target;
  if (target.empty()) return reject(400, "empty request target");

  // Forward-proxy form: absolute URI.
  if (target.front() != '/' && target != "*") {
    *form = RequestForm::Forward;
    std::string_view rest;
    std::string scheme;
    if (target.size() > 7 && lower(target.substr(0, 7)) == "http://") {
      scheme = "http";
      rest = target.substr(7);
    } else if (target.size() > 8 && lower(target.substr(0, 8)) == "https://") {
      scheme = "https";
      rest = target.substr(8);
    } else {
      return reject(400, "unsupported request target");
    }
    auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    std::string originTarget = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (originTarget.front() == '?') originTarget.insert(0, "/");
    if (authority.find('@') != std::string_view::npos) return reject(400, "userinfo in request target");
    std::string host;
    uint16_t port;
    if (!splitHostPort(authority, &host, &port, scheme == "https" ? 443 : 80))
      return reject(400, "bad host in request target");
    if (config.isSelf && config.isSelf(host, port)) {
      Route r;
      r.kind = Route::Kind::Local;
      r.path = originTarget.substr(0, originTarget.find('?'));
      r.host = host;
      return r;
    }
    if (!config.allowHost(host)) return reject(403, "host not allowed: " + host);
    return proxy(scheme, host, port, originTarget, config);
  }
  if (target == "*") return reject(400, "asterisk form is only for OPTIONS to the box");

  // Content-cache form: ?source=host[:port][&sourceScheme=http|https].
  std::string_view source;
  if (queryParam(target, "source", &source)) {
    *form = RequestForm::Source;
    std::string_view scheme = "http";
    std::string_view s;
    if (queryParam(target, "sourceScheme", &s) && !s.empty()) scheme = s;
    std::string host;
    uint16_t port;
    const std::string sch = lower(scheme);
    if (sch != "http" && sch != "https") return reject(400, "sourceScheme must be http or https");
    if (!splitHostPort(source, &host, &port, sch == "https" ? 443 : 80)) return reject(400, "bad source parameter");
    if (config.isSelf && config.isSelf(host, port)) return reject(508, "source names this box itself");
    if (!config.allowHost(host)) return reject(403, "host not allowed: " + host);
    return proxy(sch, host, port, target, config);
  }

  // Apple's probe for a cache.
  if (in.maxForwardsZero && in.method == "GET" && target == "/") {
    Route r;
    r.kind = Route::Kind::Probe;
    r.status = 200;
    return r;
  }

  // Intercept form: Host names an allowed upstream.
  std::string host;
  uint16_t port = 80;
  if (!in.host.empty()) {
    if (!splitHostPort(in.host, &host, &port, 80)) return reject(400, "bad Host header");
    if (config.allowHost(host) && !(config.isSelf && config.isSelf(host, port)))
      return proxy("http", host, port, target, config);
  }

  // Anything else is for the box itself, or denied.
  Route r;
  r.kind = Route::Kind::Local;
  auto q = target.find('?');
  r.path = std::string(target.substr(0, q));
  r.host = host;
  return r;
}

}  // namespace

Route route(const RouteInput& in, const RouterConfig& config) {
  RequestForm form = RequestForm::Intercept;
  Route r = routeAndForm(in, config, &form);
  r.form = r.kind == Route::Kind::Local || r.kind == Route::Kind::Probe ? RequestForm::Local : form;
  return r;
}

}  // namespace orchard::server
