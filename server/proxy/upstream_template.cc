// makeUpstreamTemplate(): the request every origin exchange of a fill
// starts from. The hard parts: framing is always ours to write (a GET or
// HEAD carries none upstream, whatever the client claimed), a shared fill
// drops the client's own ranges and conditionals (it fetches the object
// for everyone, in its own runs), and our Via pseudonym marks the request
// so a forwarding loop back to this box is refused (508). The box's own
// X-Orchard-Internal header is never sent on, whoever sent it.
#include "server/proxy/upstream_template.h"

#include "server/proxy/internal_request.h"

namespace orchard::server {

std::string contentCacheTarget(std::string_view target, std::string_view scheme, std::string_view host,
                               uint16_t port) {
  std::string t;
  t.reserve(target.size() + host.size() + 40);
  t.append(target);
  t += target.find('?') == std::string_view::npos ? '?' : '&';
  t += "source=";
  const bool v6 = host.find(':') != std::string_view::npos;
  if (v6) t += '[';
  t.append(host);
  if (v6) t += ']';
  const bool https = scheme == "https";
  if (port != (https ? 443 : 80)) t += ":" + std::to_string(port);
  if (https) t += "&sourceScheme=https";
  return t;
}

std::shared_ptr<const UpstreamTemplate> makeUpstreamTemplate(const RequestHead& req, const Route& route,
                                                             const std::string& primaryKey,
                                                             const std::string& viaName, bool shared,
                                                             bool nodes, bool fromPeer) {
  auto t = std::make_shared<UpstreamTemplate>();
  t->host = route.host;
  t->port = route.port;
  t->tls = route.scheme == "https";
  t->method = req.method;
  t->hasBody = req.hasBody();
  t->bodyChunked = req.chunked;
  t->requestHeaders = req.headers;
  if (auto cc = req.header("Cache-Control")) t->requestCacheControl = std::string(*cc);
  t->hasAuthorization = req.header("Authorization").has_value();
  t->primaryKey = primaryKey.empty() ? route.keyText : primaryKey;
  std::string& h = t->headPrefix;
  h.reserve(1024);
  h += req.method;
  h += ' ';
  h += route.upstreamTarget;
  h += " HTTP/1.1\r\nHost: ";
  h += route.hostHeader;
  h += "\r\n";
  t->headersAt = h.size();
  for (const auto& [k, v] : endToEndHeaders(req.headers)) {
    if (iequals(k, "Host")) continue;
    if (iequals(k, kInternalHeader)) continue;  // the box's secret (valid or not) never leaves the box
    if (shared && (iequals(k, "Range") || iequals(k, "If-Range") || iequals(k, "If-None-Match") ||
                   iequals(k, "If-Modified-Since") || iequals(k, "If-Match") || iequals(k, "If-Unmodified-Since")))
      continue;  // the shared fill fetches the object for everyone, in its own runs
    h += k;
    h += ": ";
    h += v;
    h += "\r\n";
  }
  // Framing is ours to write. A GET or HEAD reaching here has no body (the
  // connection refused any other), so it carries none: a stray
  // Content-Length would make the origin wait for bytes that never come.
  const bool bodiless = req.method == "GET" || req.method == "HEAD";
  if (req.chunked && !bodiless) h += "Transfer-Encoding: chunked\r\n";
  else if (req.contentLength && !bodiless) h += "Content-Length: " + std::to_string(*req.contentLength) + "\r\n";
  h += "Via: 1.1 " + viaName + "\r\n";
  if (nodes && (req.method == "GET" || req.method == "HEAD")) {
    t->viaNodes = true;
    t->fromPeer = fromPeer;
    const bool v6 = route.host.find(':') != std::string::npos;
    t->originId = (v6 ? "[" + route.host + "]" : route.host) + ":" + std::to_string(route.port);
    t->nodeTarget = contentCacheTarget(route.upstreamTarget, route.scheme, route.host, route.port);
  }
  return t;
}

}  // namespace orchard::server
