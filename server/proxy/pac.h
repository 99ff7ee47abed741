// The proxy auto-config file (GET /proxy.pac) for forward-proxy deployments:
// what MDM points Macs at so that Apple's content hosts go through the box
// (plain HTTP in absolute form, HTTPS as CONNECT host:443) and everything
// else goes DIRECT.
//
// renderPac() is pure: it turns the host patterns of upstream.allow (for
// http:// URLs) and upstream.tunnel_allow (for https:// URLs on port 443)
// into JavaScript: an exact name becomes a comparison, "*.domain" a
// dnsDomainIs(host, ".domain") (at least one more label, as HostMatcher
// matches), and every string put into a JS literal is escaped (\uXXXX for
// anything but letters, digits, space and . - _ : [ ]), so no config value
// or Host header can end a literal or a script.
//
// The route answers application/x-ns-proxy-autoconfig with the proxy
// address server.pac_proxy names, or else the Host the client fetched the
// file with (validated as host[:port]; port 80 when it names none).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/http/route_table.h"

namespace orchard::server {

// `proxy` is "host:port" as the PAC's PROXY directive should name it.
std::string renderPac(const std::vector<std::string>& httpPatterns, const std::vector<std::string>& tunnelPatterns,
                      std::string_view proxy);

// A JavaScript string literal (with its quotes) holding `s`.
std::string jsString(std::string_view s);

// The proxy address from a Host header value: "host:port" ([v6]:port), port
// 80 when absent; false when the value is not a valid host[:port].
bool pacProxyFromHost(std::string_view hostHeader, std::string* out);

void registerPacRoute(RouteTable& routes);

}  // namespace orchard::server
