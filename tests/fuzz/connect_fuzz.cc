// Fuzz target: the CONNECT request parser: parseConnectTarget() (the
// authority-form target) and route() for method CONNECT, which decides
// whether a client gets a tunnel, a 403 or a 400 (server/proxy/router.h).
//
// Input: fields separated by "\n--\n" (fuzz_util.h):
//   0 request-target   1 Host header value
//   2 flags: non-empty = upstream.tunnel_allow is its own list
//     ("*.apps.test", "tunnel.test") instead of upstream.allow
// upstream.allow is "origin.test", "swcdn.apple.com", "*.cdn.test"; the box
// itself is 127.0.0.1:443 and localhost:443.
//
// Invariants beyond "no crash, no exception":
//   - parseConnectTarget: a host that is non-empty, lower case, without a
//     trailing dot, a port that is non-zero; a target with no '/', '?',
//     '#', '@' or white space; printing host:port ([v6]:port) and parsing
//     again gives the same host and port;
//   - route(CONNECT): Tunnel exactly when the target parses, names port 443
//     and a host the tunnel list allows that is not the box itself, and
//     then with that host and port; otherwise Deny 403 with the refusal
//     TunnelPort or TunnelHost, or Reject 400 TunnelTarget when the target
//     does not parse; never Proxy, Local or Probe, whatever the Host header.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "config/net.h"
#include "server/proxy/router.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;
using server::Route;

bool allowHost(std::string_view h) {
  static const config::HostMatcher matcher({"origin.test", "swcdn.apple.com", "*.cdn.test"});
  return matcher.matches(h);
}

bool allowTunnel(std::string_view h) {
  static const config::HostMatcher matcher({"*.apps.test", "tunnel.test"});
  return matcher.matches(h);
}

bool isSelf(std::string_view h, uint16_t port) { return port == 443 && (h == "127.0.0.1" || h == "localhost"); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = fuzz::splitFields(fuzz::asView(data, size), 3);
  const std::string_view target = f[0];
  const std::string ctx = "CONNECT " + fuzz::escape(target) + " Host: " + fuzz::escape(f[1]);

  std::string host;
  uint16_t port = 0;
  bool parsed = false;
  try {
    parsed = server::parseConnectTarget(target, &host, &port);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "parseConnectTarget threw %s", e.what());
  }
  if (parsed) {
    FUZZ_CHECK(!host.empty() && host.back() != '.', "parsed host %s: %s", fuzz::escape(host).c_str(), ctx.c_str());
    for (char c : host) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "host not lower case: %s", ctx.c_str());
    FUZZ_CHECK(port != 0, "port 0: %s", ctx.c_str());
    FUZZ_CHECK(target.find_first_of("/?#@ \t\r\n") == std::string_view::npos, "accepted %s", ctx.c_str());
    const bool v6 = host.find(':') != std::string::npos;
    const std::string again = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    std::string host2;
    uint16_t port2 = 0;
    FUZZ_CHECK(server::parseConnectTarget(again, &host2, &port2) && host2 == host && port2 == port,
               "%s parsed as %s, which does not parse back the same: %s", ctx.c_str(), fuzz::escape(again).c_str(),
               fuzz::escape(host2).c_str());
  }

  server::RouteInput in;
  in.method = "CONNECT";
  in.target = target;
  in.host = f[1];
  server::RouterConfig config;
  config.allowHost = allowHost;
  if (!f[2].empty()) config.allowTunnelHost = allowTunnel;
  config.isSelf = isSelf;
  Route r;
  try {
    r = server::route(in, config);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "route() threw %s", e.what());
  }
  const auto& allowed = config.allowTunnelHost ? config.allowTunnelHost : config.allowHost;
  const bool want = parsed && port == server::kTunnelPort && allowed(host) && !isSelf(host, port);
  switch (r.kind) {
    case Route::Kind::Tunnel:
      FUZZ_CHECK(want, "tunnel that should not be: %s -> %s:%u", ctx.c_str(), fuzz::escape(r.host).c_str(), r.port);
      FUZZ_CHECK(r.host == host && r.port == port, "tunnel to %s:%u, target parsed as %s:%u: %s",
                 fuzz::escape(r.host).c_str(), r.port, fuzz::escape(host).c_str(), port, ctx.c_str());
      break;
    case Route::Kind::Deny:
      FUZZ_CHECK(!want && parsed, "denied: %s", ctx.c_str());
      FUZZ_CHECK(r.status == 403, "Deny with status %d: %s", r.status, ctx.c_str());
      FUZZ_CHECK(r.refusal == Route::Refusal::TunnelPort || r.refusal == Route::Refusal::TunnelHost,
                 "Deny without its reason: %s", ctx.c_str());
      FUZZ_CHECK(r.refusal != Route::Refusal::TunnelPort || port != server::kTunnelPort, "port refusal for 443: %s",
                 ctx.c_str());
      break;
    case Route::Kind::Reject:
      FUZZ_CHECK(!parsed, "a parsed target rejected: %s", ctx.c_str());
      FUZZ_CHECK(r.status == 400 && r.refusal == Route::Refusal::TunnelTarget, "Reject %d: %s", r.status,
                 ctx.c_str());
      break;
    default:
      FUZZ_CHECK(false, "CONNECT routed as kind %d: %s", static_cast<int>(r.kind), ctx.c_str());
  }
  return 0;
}
