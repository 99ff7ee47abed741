// Fuzz target: server/router route() and splitHostPort(): the request line
// and Host header of every client request decide where it goes.
//
// Input: fields separated by "\n--\n" (fuzz_util.h):
//   0 method   1 request-target   2 Host header value
//   3 flags: non-empty = Max-Forwards: 0
//   4 upstream.ignore_query names, one per line
// The router is configured as Server configures it: allowHost is a
// config::HostMatcher of upstream.allow = "origin.test", "swcdn.apple.com",
// "*.cdn.test"; the box itself is 127.0.0.1:3142 and localhost:3142.
//
// Invariants beyond "no crash, no exception":
//   - Proxy: scheme "http" or "https", keyText starting "http://" (no host
//     is in upstream.scheme_in_key here) and equal to normaliseKey("http",
//     host, port, upstreamTarget, ignore) with https's 443 keyed as 80, an
//     upstreamTarget starting with '/' and free of source/sourceScheme
//     parameters, a lower-case allowed host that is not the box itself, a
//     non-zero port, and a Host header naming them; the host is canonical
//     (no trailing dot: HostMatcher ignores one, so a host that keeps it
//     would split the cache key and miss upstream.resolve);
//   - Tunnel: only for CONNECT, to port 443 of an allowed host that is not
//     the box itself;
//   - Deny is 403; Reject is 400, 501 or 508; Local has a path starting
//     with '/'; Probe is only GET / with Max-Forwards: 0;
//   - splitHostPort: a split host is non-empty and lower case, its port is
//     non-zero, and splitting "host:port" again gives the same answer.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cache/key.h"
#include "config/net.h"
#include "server/proxy/router.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;
using server::Route;

// As Server builds it: upstream.allow through config::HostMatcher.
bool allowHost(std::string_view h) {
  static const config::HostMatcher matcher({"origin.test", "swcdn.apple.com", "*.cdn.test"});
  return matcher.matches(h);
}

bool isSelf(std::string_view h, uint16_t port) { return port == 3142 && (h == "127.0.0.1" || h == "localhost"); }

bool hasParam(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = target.substr(q + 1);
  while (true) {
    auto amp = query.find('&');
    std::string_view p = query.substr(0, amp);
    if (p.substr(0, p.find('=')) == name) return true;
    if (amp == std::string_view::npos) return false;
    query.remove_prefix(amp + 1);
  }
}

std::string hostPort(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void checkSplit(std::string_view in, uint16_t defaultPort) {
  std::string host;
  uint16_t port = 0;
  if (!server::splitHostPort(in, &host, &port, defaultPort)) return;
  FUZZ_CHECK(!host.empty(), "splitHostPort gave an empty host for %s", fuzz::escape(in).c_str());
  for (char c : host) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "host not lower case: %s", fuzz::escape(host).c_str());
  FUZZ_CHECK(port != 0 || defaultPort == 0, "port 0 from %s", fuzz::escape(in).c_str());
  std::string host2;
  uint16_t port2 = 0;
  std::string again = hostPort(host, port);
  FUZZ_CHECK(server::splitHostPort(again, &host2, &port2, defaultPort) && host2 == host && port2 == port,
             "splitHostPort(%s) = %s:%u does not split again the same way (%s)", fuzz::escape(in).c_str(),
             fuzz::escape(host).c_str(), port, fuzz::escape(again).c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = fuzz::splitFields(fuzz::asView(data, size), 5);
  server::RouteInput in;
  in.method = f[0];
  in.target = f[1];
  in.host = f[2];
  in.maxForwardsZero = !f[3].empty();
  server::RouterConfig config;
  config.allowHost = allowHost;
  config.isSelf = isSelf;
  {
    std::string_view names = f[4];
    while (!names.empty()) {
      size_t nl = names.find('\n');
      if (nl != 0) config.ignoreQuery.emplace_back(names.substr(0, nl));
      if (nl == std::string_view::npos) break;
      names.remove_prefix(nl + 1);
    }
  }

  Route r;
  try {
    r = server::route(in, config);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "route() threw %s", e.what());
  }
  const std::string ctx = fuzz::escape(in.method) + " " + fuzz::escape(in.target) + " Host: " + fuzz::escape(in.host);
  switch (r.kind) {
    case Route::Kind::Proxy: {
      const bool https = r.scheme == "https";
      FUZZ_CHECK(https || r.scheme == "http", "Proxy scheme %s: %s", r.scheme.c_str(), ctx.c_str());
      FUZZ_CHECK(r.keyText.rfind("http://", 0) == 0, "keyText %s: %s", fuzz::escape(r.keyText).c_str(), ctx.c_str());
      FUZZ_CHECK(!r.upstreamTarget.empty() && r.upstreamTarget.front() == '/', "upstreamTarget %s: %s",
                 fuzz::escape(r.upstreamTarget).c_str(), ctx.c_str());
      FUZZ_CHECK(!hasParam(r.upstreamTarget, "source") && !hasParam(r.upstreamTarget, "sourceScheme"),
                 "source parameter sent upstream: %s", ctx.c_str());
      FUZZ_CHECK(!r.host.empty() && allowHost(r.host), "proxying to a host not allowed: %s (%s)",
                 fuzz::escape(r.host).c_str(), ctx.c_str());
      FUZZ_CHECK(!isSelf(r.host, r.port), "proxying to the box itself: %s", ctx.c_str());
      FUZZ_CHECK(r.port != 0, "port 0: %s", ctx.c_str());
      FUZZ_CHECK(r.host.back() != '.', "Proxy host %s keeps a trailing dot (key %s): %s", fuzz::escape(r.host).c_str(),
                 fuzz::escape(r.keyText).c_str(), ctx.c_str());
      for (char c : r.host) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "host not lower case: %s", ctx.c_str());
      const uint16_t keyPort = https && r.port == 443 ? 80 : r.port;
      std::string key = cache::normaliseKey("http", r.host, keyPort, r.upstreamTarget, config.ignoreQuery);
      FUZZ_CHECK(key == r.keyText, "keyText %s != normaliseKey of the upstream target %s: %s",
                 fuzz::escape(r.keyText).c_str(), fuzz::escape(key).c_str(), ctx.c_str());
      std::string hh = r.hostHeader, hostOnly;
      uint16_t p = 0;
      FUZZ_CHECK(server::splitHostPort(hh, &hostOnly, &p, https ? 443 : 80) && hostOnly == r.host && p == r.port,
                 "Host header %s does not name %s:%u", fuzz::escape(hh).c_str(), fuzz::escape(r.host).c_str(), r.port);
      break;
    }
    case Route::Kind::Tunnel:
      FUZZ_CHECK(in.method == "CONNECT", "Tunnel for method %s: %s", fuzz::escape(in.method).c_str(), ctx.c_str());
      FUZZ_CHECK(r.port == server::kTunnelPort, "Tunnel to port %u: %s", r.port, ctx.c_str());
      FUZZ_CHECK(!r.host.empty() && allowHost(r.host), "tunnel to a host not allowed: %s (%s)",
                 fuzz::escape(r.host).c_str(), ctx.c_str());
      FUZZ_CHECK(!isSelf(r.host, r.port), "tunnel to the box itself: %s", ctx.c_str());
      break;
    case Route::Kind::Deny:
      FUZZ_CHECK(r.status == 403, "Deny with status %d: %s", r.status, ctx.c_str());
      break;
    case Route::Kind::Reject:
      FUZZ_CHECK(r.status == 400 || r.status == 501 || r.status == 508, "Reject with status %d: %s", r.status,
                 ctx.c_str());
      FUZZ_CHECK(!r.reason.empty(), "Reject without a reason: %s", ctx.c_str());
      break;
    case Route::Kind::Local:
      FUZZ_CHECK(!r.path.empty() && r.path.front() == '/', "Local path %s: %s", fuzz::escape(r.path).c_str(), ctx.c_str());
      FUZZ_CHECK(r.path.find('?') == std::string::npos, "Local path with a query: %s", ctx.c_str());
      break;
    case Route::Kind::Probe:
      FUZZ_CHECK(in.method == "GET" && in.target == "/" && in.maxForwardsZero, "Probe for %s", ctx.c_str());
      break;
  }

  checkSplit(in.host, 80);
  checkSplit(in.target, 443);
  return 0;
}
