// /proxy.pac; see pac.h. The hard part is the escaping: the file is a
// program the Mac runs, built from config values and a request header.
#include "server/proxy/pac.h"

#include "server/context.h"
#include "server/http/local_handler.h"
#include "server/proxy/router.h"

namespace orchard::server {
namespace {

bool plainJsChar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_' || c == ':' || c == '[' || c == ']' || c == ' ';
}

void appendList(std::string& out, const char* name, const std::vector<std::string>& items) {
  out += "var ";
  out += name;
  out += " = [";
  for (size_t i = 0; i < items.size(); ++i) {
    out += i ? ",\n  " : "\n  ";
    out += jsString(items[i]);
  }
  out += items.empty() ? "];\n" : "\n];\n";
}

// Exact names and the ".domain" suffixes of "*.domain" patterns.
void split(const std::vector<std::string>& patterns, std::vector<std::string>* exact,
           std::vector<std::string>* suffixes) {
  for (const std::string& p : patterns) {
    if (p.size() > 2 && p[0] == '*' && p[1] == '.') suffixes->push_back(p.substr(1));
    else exact->push_back(p);
  }
}

}  // namespace

std::string jsString(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    if (plainJsChar(c)) {
      out += static_cast<char>(c);
    } else {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  out += '"';
  return out;
}

bool pacProxyFromHost(std::string_view hostHeader, std::string* out) {
  std::string host;
  uint16_t port = 0;
  if (!splitHostPort(hostHeader, &host, &port, 80)) return false;
  const bool v6 = host.find(':') != std::string::npos;
  *out = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  return true;
}

std::string renderPac(const std::vector<std::string>& httpPatterns, const std::vector<std::string>& tunnelPatterns,
                      std::string_view proxy) {
  std::vector<std::string> httpExact, httpSuffix, tunnelExact, tunnelSuffix;
  split(httpPatterns, &httpExact, &httpSuffix);
  split(tunnelPatterns, &tunnelExact, &tunnelSuffix);
  std::string out;
  out.reserve(2048);
  out +=
      "// Orchard proxy auto-config: Apple's content hosts through this box, everything else DIRECT.\n"
      "// Generated from upstream.allow (http://) and upstream.tunnel_allow (https://, port 443).\n";
  out += "var orchardProxy = " + jsString("PROXY " + std::string(proxy)) + ";\n";
  appendList(out, "orchardHttpExact", httpExact);
  appendList(out, "orchardHttpSuffix", httpSuffix);
  appendList(out, "orchardTunnelExact", tunnelExact);
  appendList(out, "orchardTunnelSuffix", tunnelSuffix);
  out +=
      "\n"
      "function orchardMatch(host, exact, suffixes) {\n"
      "  for (var i = 0; i < exact.length; i++) if (host == exact[i]) return true;\n"
      "  for (var j = 0; j < suffixes.length; j++) if (dnsDomainIs(host, suffixes[j])) return true;\n"
      "  return false;\n"
      "}\n"
      "\n"
      "function FindProxyForURL(url, host) {\n"
      "  host = host.toLowerCase();\n"
      "  if (host.length > 0 && host.charAt(host.length - 1) == \".\") host = host.substring(0, host.length - 1);\n"
      "  var u = url.toLowerCase();\n"
      "  if (u.substring(0, 7) == \"http://\") {\n"
      "    if (orchardMatch(host, orchardHttpExact, orchardHttpSuffix)) return orchardProxy;\n"
      "  } else if (u.substring(0, 8) == \"https://\") {\n"
      "    var rest = u.substring(8);\n"
      "    var end = rest.search(/[\\/?#]/);\n"
      "    var authority = end < 0 ? rest : rest.substring(0, end);\n"
      "    var port443 = !/:[0-9]+$/.test(authority) || /:443$/.test(authority);\n"
      "    if (port443 && orchardMatch(host, orchardTunnelExact, orchardTunnelSuffix)) return orchardProxy;\n"
      "  }\n"
      "  return \"DIRECT\";\n"
      "}\n";
  return out;
}

void registerPacRoute(RouteTable& routes) {
  routes.add("GET", "/proxy.pac", [](HandlerRequest&& r) -> RequestHandler* {
    const config::Config& c = r.writer->wc()->config();
    std::string proxy = c.pacProxy;
    if (proxy.empty()) {
      auto host = r.head.header("Host");
      if (!host || !pacProxyFromHost(*host, &proxy))
        return FixedAnswer::error(r.writer, std::move(r.head), 400,
                                  "no usable Host header to name the proxy: set server.pac_proxy");
    }
    const std::vector<std::string>& tunnel = c.tunnelAllow.empty() ? c.upstreamAllow : c.tunnelAllow;
    return new FixedAnswer(r.writer, std::move(r.head), 200, "application/x-ns-proxy-autoconfig",
                           renderPac(c.upstreamAllow, tunnel, proxy), "Cache-Control: max-age=300\r\n");
  });
}

}  // namespace orchard::server
