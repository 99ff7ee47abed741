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

std::shared_ptr<const UpstreamTemplate> makeUpstreamTemplate(const RequestHead& req, const Route& route,
                                                             const std::string& primaryKey,
                                                             const std::string& viaName, bool shared) {
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
  return t;
}

}  // namespace orchard::server
