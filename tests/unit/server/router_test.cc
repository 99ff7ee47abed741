// Tests for server/router: the pure routing decision, by tables (STYLE
// pattern 4). Covers the three proxy forms (intercept Host, absolute URI,
// content-cache ?source=), the Apple probe, local requests, the 403s that
// keep the box from being an open proxy, the 400/501 rejects, IPv6 literals,
// the parameters that leave the key and the upstream target, and
// splitHostPort on its own.
#include "server/proxy/router.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace orchard::server {
namespace {

using Kind = Route::Kind;

RouteInput req(std::string_view method, std::string_view target, std::string_view host = "",
               bool maxForwardsZero = false) {
  RouteInput in;
  in.method = method;
  in.target = target;
  in.host = host;
  in.maxForwardsZero = maxForwardsZero;
  return in;
}

const char* kindName(Kind k) {
  switch (k) {
    case Kind::Probe: return "Probe";
    case Kind::Proxy: return "Proxy";
    case Kind::Local: return "Local";
    case Kind::Tunnel: return "Tunnel";
    case Kind::Deny: return "Deny";
    case Kind::Reject: return "Reject";
  }
  return "?";
}

// The allow-list the tests route against: hosts arrive without port, in
// lower case (the router's contract), so an exact set is enough.
RouterConfig testConfig() {
  RouterConfig c;
  c.allowHost = [](std::string_view h) {
    static const std::set<std::string, std::less<>> kAllowed = {"swcdn.apple.com", "updates.cdn-apple.com", "::1",
                                                                "10.0.0.5"};
    return kAllowed.find(h) != kAllowed.end();
  };
  c.ignoreQuery = {"sig", "Expires"};
  return c;
}

// A config with only an allowHost.
RouterConfig allowOnly(std::function<bool(std::string_view)> allow) {
  RouterConfig c;
  c.allowHost = std::move(allow);
  return c;
}

// ---------------------------------------------------------------- Proxy

struct ProxyCase {
  const char* label;
  RouteInput in;
  const char* host;
  uint16_t port;
  const char* upstreamTarget;
  const char* hostHeader;
  const char* keyText;
};

TEST(Router, ProxyForms) {
  const ProxyCase cases[] = {
      // Intercept form: the Host header names the upstream.
      {"intercept", req("GET", "/a/b.pkg", "swcdn.apple.com"),
       "swcdn.apple.com", 80, "/a/b.pkg", "swcdn.apple.com", "http://swcdn.apple.com/a/b.pkg"},
      {"intercept with query", req("GET", "/a/b.pkg?x=1&y", "swcdn.apple.com"),
       "swcdn.apple.com", 80, "/a/b.pkg?x=1&y", "swcdn.apple.com", "http://swcdn.apple.com/a/b.pkg?x=1&y"},
      {"intercept default port", req("GET", "/a", "swcdn.apple.com:80"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"intercept other port", req("GET", "/a", "swcdn.apple.com:8080"),
       "swcdn.apple.com", 8080, "/a", "swcdn.apple.com:8080", "http://swcdn.apple.com:8080/a"},
      {"intercept upper case", req("GET", "/A/B.pkg", "SWCDN.Apple.COM"),
       "swcdn.apple.com", 80, "/A/B.pkg", "swcdn.apple.com", "http://swcdn.apple.com/A/B.pkg"},
      {"intercept trailing dot", req("GET", "/a", "swcdn.apple.com."),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"intercept trailing dot and port", req("GET", "/a", "swcdn.apple.com.:81"),
       "swcdn.apple.com", 81, "/a", "swcdn.apple.com:81", "http://swcdn.apple.com:81/a"},
      {"intercept HEAD", req("HEAD", "/a", "swcdn.apple.com"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"intercept IPv4 literal", req("GET", "/a", "10.0.0.5:8000"),
       "10.0.0.5", 8000, "/a", "10.0.0.5:8000", "http://10.0.0.5:8000/a"},
      // Absolute form (forward proxy).
      {"absolute", req("GET", "http://swcdn.apple.com/a/b.pkg?q=1"),
       "swcdn.apple.com", 80, "/a/b.pkg?q=1", "swcdn.apple.com", "http://swcdn.apple.com/a/b.pkg?q=1"},
      {"absolute with port", req("GET", "http://swcdn.apple.com:8080/a?q"),
       "swcdn.apple.com", 8080, "/a?q", "swcdn.apple.com:8080", "http://swcdn.apple.com:8080/a?q"},
      {"absolute explicit default port", req("GET", "http://swcdn.apple.com:80/a"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"absolute no path", req("GET", "http://swcdn.apple.com"),
       "swcdn.apple.com", 80, "/", "swcdn.apple.com", "http://swcdn.apple.com/"},
      {"absolute query without path", req("GET", "http://swcdn.apple.com?q=1"),
       "swcdn.apple.com", 80, "/?q=1", "swcdn.apple.com", "http://swcdn.apple.com/?q=1"},
      {"absolute upper-case scheme and host", req("GET", "HTTP://SWCDN.APPLE.COM/A"),
       "swcdn.apple.com", 80, "/A", "swcdn.apple.com", "http://swcdn.apple.com/A"},
      {"absolute '@' in path is not userinfo", req("GET", "http://swcdn.apple.com/a@b"),
       "swcdn.apple.com", 80, "/a@b", "swcdn.apple.com", "http://swcdn.apple.com/a@b"},
      {"absolute wins over the Host header",
       req("GET", "http://swcdn.apple.com/a", "updates.cdn-apple.com"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      // Content-cache form: ?source=host[:port][&sourceScheme=http].
      {"source", req("GET", "/a/b.pkg?source=swcdn.apple.com", "orchard.local:3128"),
       "swcdn.apple.com", 80, "/a/b.pkg", "swcdn.apple.com", "http://swcdn.apple.com/a/b.pkg"},
      {"source with port", req("GET", "/a?source=swcdn.apple.com:8080", "orchard.local"),
       "swcdn.apple.com", 8080, "/a", "swcdn.apple.com:8080", "http://swcdn.apple.com:8080/a"},
      {"source upper case", req("GET", "/a?source=SWCDN.apple.com", "orchard.local"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"source without Host header", req("GET", "/a?source=swcdn.apple.com"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"source and sourceScheme=http removed, others kept in order",
       req("GET", "/a?z=1&source=swcdn.apple.com&b=2&sourceScheme=http&a=3", "orchard.local"),
       "swcdn.apple.com", 80, "/a?z=1&b=2&a=3", "swcdn.apple.com", "http://swcdn.apple.com/a?z=1&b=2&a=3"},
      {"sourceScheme=HTTP is http",
       req("GET", "/a?sourceScheme=HTTP&source=swcdn.apple.com", "orchard.local"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"empty sourceScheme defaults to http",
       req("GET", "/a?source=swcdn.apple.com&sourceScheme=", "orchard.local"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"source wins over an allowed Host",
       req("GET", "/a?source=swcdn.apple.com", "updates.cdn-apple.com"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      // ignore_query parameters leave the key but still go upstream.
      {"ignoreQuery intercept",
       req("GET", "/a?sig=abc&v=2&Expires=9", "swcdn.apple.com"),
       "swcdn.apple.com", 80, "/a?sig=abc&v=2&Expires=9", "swcdn.apple.com", "http://swcdn.apple.com/a?v=2"},
      {"ignoreQuery absolute", req("GET", "http://swcdn.apple.com/a?sig=abc"),
       "swcdn.apple.com", 80, "/a?sig=abc", "swcdn.apple.com", "http://swcdn.apple.com/a"},
      {"ignoreQuery is case-sensitive", req("GET", "/a?SIG=abc", "swcdn.apple.com"),
       "swcdn.apple.com", 80, "/a?SIG=abc", "swcdn.apple.com", "http://swcdn.apple.com/a?SIG=abc"},
      {"ignoreQuery with source",
       req("GET", "/a?sig=abc&source=swcdn.apple.com&v=2", "orchard.local"),
       "swcdn.apple.com", 80, "/a?sig=abc&v=2", "swcdn.apple.com", "http://swcdn.apple.com/a?v=2"},
      // Methods other than GET still route (the transaction decides pass-through).
      {"POST routes too", req("POST", "/a", "swcdn.apple.com"),
       "swcdn.apple.com", 80, "/a", "swcdn.apple.com", "http://swcdn.apple.com/a"},
  };
  const RouterConfig config = testConfig();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    Route r = route(c.in, config);
    ASSERT_EQ(r.kind, Kind::Proxy) << kindName(r.kind) << " " << r.status << " " << r.reason;
    EXPECT_EQ(r.scheme, "http");
    EXPECT_EQ(r.host, c.host);
    EXPECT_EQ(r.port, c.port);
    EXPECT_EQ(r.upstreamTarget, c.upstreamTarget);
    EXPECT_EQ(r.hostHeader, c.hostHeader);
    EXPECT_EQ(r.keyText, c.keyText);
  }
}

TEST(Router, Ipv6LiteralInAbsoluteForm) {
  const RouterConfig config = testConfig();
  Route r = route(req("GET", "http://[::1]:8080/x?y=1"), config);
  ASSERT_EQ(r.kind, Kind::Proxy) << r.reason;
  EXPECT_EQ(r.host, "::1");
  EXPECT_EQ(r.port, 8080);
  EXPECT_EQ(r.hostHeader, "[::1]:8080");
  EXPECT_EQ(r.upstreamTarget, "/x?y=1");

  Route d = route(req("GET", "http://[::1]/x"), config);
  ASSERT_EQ(d.kind, Kind::Proxy) << d.reason;
  EXPECT_EQ(d.port, 80);
  EXPECT_EQ(d.hostHeader, "[::1]");

  Route u = route(req("GET", "http://[::ABCD]/x"),
                  allowOnly([](std::string_view h) { return h == "::abcd"; }));
  ASSERT_EQ(u.kind, Kind::Proxy) << u.reason;
  EXPECT_EQ(u.host, "::abcd");
  EXPECT_EQ(u.hostHeader, "[::abcd]");
}

// The key text is URL text ("scheme://host[:port]/path", key.h): an IPv6
// literal must keep its brackets there, as normaliseKey's own tests pass it
// ("[::1]"). Without them "::1" on port 8080 and "::1:8080" on port 80 (a
// different address) share the key "http://::1:8080/x".
TEST(Router, Ipv6LiteralKeyTextKeepsBrackets) {
  RouterConfig config = allowOnly([](std::string_view h) { return h == "::1" || h == "::1:8080"; });
  Route a = route(req("GET", "http://[::1]:8080/x"), config);
  Route b = route(req("GET", "http://[::1:8080]/x"), config);
  ASSERT_EQ(a.kind, Kind::Proxy) << a.reason;
  ASSERT_EQ(b.kind, Kind::Proxy) << b.reason;
  EXPECT_EQ(a.keyText, "http://[::1]:8080/x");
  EXPECT_EQ(b.keyText, "http://[::1:8080]/x");
  EXPECT_NE(a.keyText, b.keyText) << "two origins share one cache key";
}

TEST(Router, ThreeFormsOfOneObjectShareTheKey) {
  const RouterConfig config = testConfig();
  struct Group {
    const char* label;
    RouteInput forms[3];
    const char* key;
  } groups[] = {
      {"default port",
       {req("GET", "/p/o.pkg?v=2&sig=1", "swcdn.apple.com"),
        req("GET", "http://SWCDN.apple.com/p/o.pkg?v=2&sig=2"),
        req("GET", "/p/o.pkg?v=2&source=swcdn.apple.com&sourceScheme=http&sig=3", "orchard.local:3128")},
       "http://swcdn.apple.com/p/o.pkg?v=2"},
      {"explicit port",
       {req("GET", "/p/o.pkg", "swcdn.apple.com:8080"),
        req("GET", "http://swcdn.apple.com:8080/p/o.pkg"),
        req("GET", "/p/o.pkg?source=swcdn.apple.com:8080", "orchard.local")},
       "http://swcdn.apple.com:8080/p/o.pkg"},
  };
  for (const auto& g : groups) {
    SCOPED_TRACE(g.label);
    for (const auto& in : g.forms) {
      Route r = route(in, config);
      ASSERT_EQ(r.kind, Kind::Proxy) << in.target << ": " << r.reason;
      EXPECT_EQ(r.keyText, g.key) << in.target;
    }
  }
}

// ------------------------------------------------------ Deny and Reject

struct RejectCase {
  const char* label;
  RouteInput in;
  Kind kind;
  int status;
};

TEST(Router, DenyAndReject) {
  const RejectCase cases[] = {
      // Never an open proxy: hosts off the allow-list get 403 in every form
      // that names an upstream explicitly (the intercept form is in
      // InterceptOfDisallowedHostIsLocal below).
      {"absolute disallowed", req("GET", "http://example.com/x"), Kind::Deny, 403},
      {"absolute disallowed, allowed Host",
       req("GET", "http://example.com/x", "swcdn.apple.com"), Kind::Deny, 403},
      {"absolute disallowed with port", req("GET", "http://example.com:80/x"), Kind::Deny, 403},
      {"absolute v6 disallowed", req("GET", "http://[::2]/x"), Kind::Deny, 403},
      {"source disallowed", req("GET", "/x?source=example.com", "orchard.local"),
       Kind::Deny, 403},
      {"source disallowed, allowed Host", req("GET", "/x?source=example.com", "swcdn.apple.com"),
       Kind::Deny, 403},
      {"source disallowed with port", req("GET", "/x?source=example.com:8080"), Kind::Deny, 403},
      {"https source disallowed",
       req("GET", "/x?source=example.com&sourceScheme=https"), Kind::Deny, 403},
      // Unsupported: 501.
      // CONNECT: only allowed hosts, only port 443 (TunnelRoutes below).
      {"CONNECT to a disallowed host", req("CONNECT", "example.com:443"), Kind::Deny, 403},
      {"CONNECT to another port", req("CONNECT", "swcdn.apple.com:80"), Kind::Deny, 403},
      {"CONNECT without a port", req("CONNECT", "swcdn.apple.com"), Kind::Reject, 400},
      // Malformed: 400.
      {"empty target", req("GET", ""), Kind::Reject, 400},
      {"asterisk", req("OPTIONS", "*"), Kind::Reject, 400},
      {"other scheme", req("GET", "ftp://swcdn.apple.com/x"), Kind::Reject, 400},
      {"relative target", req("GET", "x/y"), Kind::Reject, 400},
      {"scheme only", req("GET", "http://"), Kind::Reject, 400},
      {"empty authority", req("GET", "http:///x"), Kind::Reject, 400},
      {"userinfo", req("GET", "http://user@swcdn.apple.com/x"), Kind::Reject, 400},
      {"userinfo with password", req("GET", "http://u:p@swcdn.apple.com/x"), Kind::Reject, 400},
      {"userinfo hiding a disallowed host", req("GET", "http://swcdn.apple.com@example.com/x"),
       Kind::Reject, 400},
      {"absolute bad port", req("GET", "http://swcdn.apple.com:http/x"), Kind::Reject, 400},
      {"absolute port 0", req("GET", "http://swcdn.apple.com:0/x"), Kind::Reject, 400},
      {"absolute port too big", req("GET", "http://swcdn.apple.com:65536/x"), Kind::Reject, 400},
      {"absolute unclosed v6", req("GET", "http://[::1/x"), Kind::Reject, 400},
      {"bad sourceScheme", req("GET", "/x?source=swcdn.apple.com&sourceScheme=ftp"),
       Kind::Reject, 400},
      {"bad sourceScheme, disallowed source",
       req("GET", "/x?source=example.com&sourceScheme=ftp"), Kind::Reject, 400},
      {"empty source", req("GET", "/x?source=", "swcdn.apple.com"), Kind::Reject, 400},
      {"source without value", req("GET", "/x?a=1&source"), Kind::Reject, 400},
      {"bad source chars", req("GET", "/x?source=swcdn.apple.com/evil"), Kind::Reject, 400},
      {"bad source port", req("GET", "/x?source=swcdn.apple.com:99999"), Kind::Reject, 400},
      {"bad https source", req("GET", "/x?source=a%20b&sourceScheme=https"), Kind::Reject, 400},
      {"bad Host chars", req("GET", "/x", "swcdn apple.com"), Kind::Reject, 400},
      {"bad Host port", req("GET", "/x", "swcdn.apple.com:abc"), Kind::Reject, 400},
      {"bad Host two ports", req("GET", "/x", "swcdn.apple.com:80:80"), Kind::Reject, 400},
      {"bad Host bare v6", req("GET", "/x", "::1"), Kind::Reject, 400},
      {"bad Host only a dot", req("GET", "/x", "."), Kind::Reject, 400},
      {"bad Host on /metrics", req("GET", "/metrics", "a/b"), Kind::Reject, 400},
  };
  const RouterConfig config = testConfig();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    Route r = route(c.in, config);
    EXPECT_EQ(r.kind, c.kind) << kindName(r.kind) << " " << r.status << " " << r.reason;
    EXPECT_EQ(r.status, c.status) << r.reason;
    EXPECT_FALSE(r.reason.empty());
    EXPECT_TRUE(r.keyText.empty());
    EXPECT_TRUE(r.upstreamTarget.empty());
  }
}

// HTTPS origins: both forms route to a proxy fetch over TLS on 443 (or the
// port given), keyed as the same object as the plain-HTTP fetch unless the
// host is in upstream.scheme_in_key.
TEST(Router, HttpsFormsShareTheHttpKeyUnlessTheHostKeepsItsScheme) {
  RouterConfig config = testConfig();
  const RouteInput forms[] = {
      req("GET", "https://swcdn.apple.com/p/o.pkg"),
      req("GET", "HTTPS://SWCDN.apple.com:443/p/o.pkg"),
      req("GET", "/p/o.pkg?source=swcdn.apple.com&sourceScheme=https", "orchard.local"),
      req("GET", "/p/o.pkg?sourceScheme=HTTPS&source=swcdn.apple.com:443", "orchard.local"),
  };
  const Route plain = route(req("GET", "/p/o.pkg", "swcdn.apple.com"), config);
  ASSERT_EQ(plain.kind, Kind::Proxy);
  for (const auto& in : forms) {
    SCOPED_TRACE(std::string(in.target));
    Route r = route(in, config);
    ASSERT_EQ(r.kind, Kind::Proxy) << r.reason;
    EXPECT_EQ(r.scheme, "https");
    EXPECT_EQ(r.port, 443);
    EXPECT_EQ(r.hostHeader, "swcdn.apple.com");
    EXPECT_EQ(r.upstreamTarget, "/p/o.pkg");
    EXPECT_EQ(r.keyText, plain.keyText) << "an https fetch must share the plain-HTTP object";
  }
  Route odd = route(req("GET", "https://swcdn.apple.com:8443/p/o.pkg"), config);
  ASSERT_EQ(odd.kind, Kind::Proxy);
  EXPECT_EQ(odd.hostHeader, "swcdn.apple.com:8443");
  EXPECT_EQ(odd.keyText, "http://swcdn.apple.com:8443/p/o.pkg");

  config.schemeInKey = [](std::string_view h) { return h == "swcdn.apple.com"; };
  for (const auto& in : forms) {
    Route r = route(in, config);
    ASSERT_EQ(r.kind, Kind::Proxy);
    EXPECT_EQ(r.keyText, "https://swcdn.apple.com/p/o.pkg") << in.target;
  }
  EXPECT_EQ(route(req("GET", "/p/o.pkg", "swcdn.apple.com"), config).keyText, plain.keyText);
}

// ---------------------------------------------------------------- CONNECT

struct ConnectCase {
  const char* target;
  bool ok;
  const char* host;
  uint16_t port;
};

TEST(ConnectTarget, Table) {
  const ConnectCase cases[] = {
      {"swcdn.apple.com:443", true, "swcdn.apple.com", 443},
      {"SWCDN.Apple.COM:443", true, "swcdn.apple.com", 443},
      {"swcdn.apple.com.:443", true, "swcdn.apple.com", 443},  // one trailing dot: the same name
      {"swcdn.apple.com:8443", true, "swcdn.apple.com", 8443},
      {"swcdn.apple.com:1", true, "swcdn.apple.com", 1},
      {"swcdn.apple.com:65535", true, "swcdn.apple.com", 65535},
      {"10.0.0.5:443", true, "10.0.0.5", 443},
      {"[::1]:443", true, "::1", 443},
      {"[2001:DB8::1]:443", true, "2001:db8::1", 443},
      {"[::ffff:127.0.0.1]:443", true, "::ffff:127.0.0.1", 443},
      // The port is required, non-zero, decimal, in range.
      {"swcdn.apple.com", false, "", 0},
      {"swcdn.apple.com:", false, "", 0},
      {"swcdn.apple.com:0", false, "", 0},
      {"swcdn.apple.com:65536", false, "", 0},
      {"swcdn.apple.com:99999999999", false, "", 0},
      {"swcdn.apple.com:-1", false, "", 0},
      {"swcdn.apple.com:+443", false, "", 0},
      {"swcdn.apple.com:0x1bb", false, "", 0},
      {"swcdn.apple.com:443 ", false, "", 0},
      {"[::1]", false, "", 0},
      {"[::1]:", false, "", 0},
      // Authority form only: no scheme, path, query, fragment, userinfo.
      {"https://swcdn.apple.com:443", false, "", 0},
      {"swcdn.apple.com:443/", false, "", 0},
      {"/swcdn.apple.com:443", false, "", 0},
      {"swcdn.apple.com:443?x", false, "", 0},
      {"swcdn.apple.com:443#x", false, "", 0},
      {"user@swcdn.apple.com:443", false, "", 0},
      {"user:pw@swcdn.apple.com:443", false, "", 0},
      {"*", false, "", 0},
      {"", false, "", 0},
      {":443", false, "", 0},
      // Malformed hosts.
      {"::1:443", false, "", 0},                  // a bare IPv6 address
      {"[swcdn.apple.com]:443", false, "", 0},   // brackets hold IPv6 only
      {"[::1:443", false, "", 0},
      {"[::1]x:443", false, "", 0},
      {"swcdn..apple.com:443", false, "", 0},
      {".swcdn.apple.com:443", false, "", 0},
      {"swcdn apple.com:443", false, "", 0},
      {"swcdn.apple.com\t:443", false, "", 0},
      {"swcdn.apple.com%2f:443", false, "", 0},
      {"sw\xc3\xa9.apple.com:443", false, "", 0},
  };
  for (const ConnectCase& c : cases) {
    std::string host = "unchanged";
    uint16_t port = 7;
    const bool ok = parseConnectTarget(c.target, &host, &port);
    EXPECT_EQ(ok, c.ok) << c.target;
    if (ok && c.ok) {
      EXPECT_EQ(host, c.host) << c.target;
      EXPECT_EQ(port, c.port) << c.target;
    }
  }
}

TEST(ConnectTarget, LongestName) {
  std::string name;
  while (name.size() < 253) name += "a.";
  name.resize(253);
  if (name.back() == '.') name.back() = 'a';
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(parseConnectTarget(name + ":443", &host, &port));
  EXPECT_FALSE(parseConnectTarget("a" + name + ":443", &host, &port));
}

struct TunnelCase {
  const char* label;
  RouteInput in;
  Kind kind;
  int status;
  Route::Refusal refusal;
};

TEST(Router, TunnelRoutes) {
  using R = Route::Refusal;
  RouterConfig c = testConfig();
  c.isSelf = [](std::string_view h, uint16_t p) { return h == "orchard.local" && p == 443; };
  const TunnelCase cases[] = {
      {"allowed host on 443", req("CONNECT", "swcdn.apple.com:443", "swcdn.apple.com:443"), Kind::Tunnel, 200,
       R::None},
      {"allowed, upper case", req("CONNECT", "SWCDN.APPLE.COM:443"), Kind::Tunnel, 200, R::None},
      {"allowed v6 literal", req("CONNECT", "[::1]:443"), Kind::Tunnel, 200, R::None},
      {"allowed v4 literal", req("CONNECT", "10.0.0.5:443"), Kind::Tunnel, 200, R::None},
      {"allowed host, port 80", req("CONNECT", "swcdn.apple.com:80"), Kind::Deny, 403, R::TunnelPort},
      {"allowed host, port 8443", req("CONNECT", "swcdn.apple.com:8443"), Kind::Deny, 403, R::TunnelPort},
      {"allowed host, port 22", req("CONNECT", "updates.cdn-apple.com:22"), Kind::Deny, 403, R::TunnelPort},
      {"other host", req("CONNECT", "example.com:443"), Kind::Deny, 403, R::TunnelHost},
      {"other host, other port", req("CONNECT", "example.com:25"), Kind::Deny, 403, R::TunnelPort},
      {"suffix trick", req("CONNECT", "swcdn.apple.com.evil.test:443"), Kind::Deny, 403, R::TunnelHost},
      {"the box itself", req("CONNECT", "orchard.local:443"), Kind::Deny, 403, R::TunnelHost},
      {"origin-form target", req("CONNECT", "/", "swcdn.apple.com:443"), Kind::Reject, 400, R::TunnelTarget},
      {"absolute target", req("CONNECT", "https://swcdn.apple.com:443/"), Kind::Reject, 400, R::TunnelTarget},
      {"no port", req("CONNECT", "swcdn.apple.com"), Kind::Reject, 400, R::TunnelTarget},
      {"userinfo", req("CONNECT", "a@swcdn.apple.com:443"), Kind::Reject, 400, R::TunnelTarget},
      // Only the method says CONNECT: a GET with an authority is not a tunnel.
      {"GET with authority form", req("GET", "swcdn.apple.com:443"), Kind::Reject, 400, R::None},
  };
  for (const TunnelCase& t : cases) {
    Route r = route(t.in, c);
    EXPECT_EQ(r.kind, t.kind) << t.label << ": " << kindName(r.kind) << " " << r.reason;
    EXPECT_EQ(r.status, t.status) << t.label;
    EXPECT_EQ(r.refusal, t.refusal) << t.label;
    if (r.kind == Kind::Tunnel) {
      EXPECT_EQ(r.port, 443) << t.label;
      EXPECT_FALSE(r.host.empty()) << t.label;
    }
  }
}

TEST(Router, TunnelAllowIsItsOwnList) {
  RouterConfig c = testConfig();
  c.allowTunnelHost = [](std::string_view h) { return h == "apps.apple.com"; };
  EXPECT_EQ(route(req("CONNECT", "apps.apple.com:443"), c).kind, Kind::Tunnel);
  Route r = route(req("CONNECT", "swcdn.apple.com:443"), c);
  EXPECT_EQ(r.kind, Kind::Deny) << "upstream.tunnel_allow replaces upstream.allow for CONNECT";
  EXPECT_EQ(r.refusal, Route::Refusal::TunnelHost);
  // ...and only for CONNECT.
  EXPECT_EQ(route(req("GET", "http://swcdn.apple.com/x"), c).kind, Kind::Proxy);
  EXPECT_EQ(route(req("GET", "http://apps.apple.com/x"), c).kind, Kind::Deny);
}

TEST(Router, DenyReasonNamesTheHost) {
  Route r = route(req("GET", "http://EXAMPLE.com/x"), testConfig());
  ASSERT_EQ(r.kind, Kind::Deny);
  EXPECT_EQ(r.reason, "host not allowed: example.com");
}

TEST(Router, AllowHostSeesLowerCaseHostWithoutPort) {
  std::vector<std::string> seen;
  RouterConfig config = allowOnly([&](std::string_view h) {
    seen.emplace_back(h);
    return false;
  });
  (void)route(req("GET", "/x", "A.Example.COM.:8080"), config);
  (void)route(req("GET", "http://B.example.com:81/x"), config);
  (void)route(req("GET", "/x?source=C.example.com:82"), config);
  (void)route(req("GET", "http://[::1]:83/x"), config);
  EXPECT_EQ(seen, (std::vector<std::string>{"a.example.com", "b.example.com", "c.example.com", "::1"}));
}

// ------------------------------------------------------- Probe and Local

TEST(Router, ProbeNeedsGetSlashAndMaxForwardsZero) {
  const RouterConfig config = testConfig();
  Route p = route(req("GET", "/", "orchard.local", true), config);
  EXPECT_EQ(p.kind, Kind::Probe);
  EXPECT_EQ(p.status, 200);

  // The probe wins even when the Host is an allowed upstream.
  EXPECT_EQ(route(req("GET", "/", "swcdn.apple.com", true), config).kind,
            Kind::Probe);
  EXPECT_EQ(route(req("GET", "/", "", true), config).kind, Kind::Probe);

  // Without Max-Forwards: 0, GET / is for the box itself.
  Route l = route(req("GET", "/", "orchard.local"), config);
  EXPECT_EQ(l.kind, Kind::Local);
  EXPECT_EQ(l.path, "/");

  // Not a probe: other method, other path, a query.
  EXPECT_EQ(route(req("HEAD", "/", "orchard.local", true), config).kind,
            Kind::Local);
  EXPECT_EQ(route(req("GET", "/x", "orchard.local", true), config).kind,
            Kind::Local);
  EXPECT_EQ(route(req("GET", "/?a", "orchard.local", true), config).kind,
            Kind::Local);
  // And an allowed Host on GET / without the probe header is proxied.
  EXPECT_EQ(route(req("GET", "/", "swcdn.apple.com"), config).kind, Kind::Proxy);
}

TEST(Router, LocalRoutes) {
  struct Case {
    const char* label;
    RouteInput in;
    const char* path;
    const char* host;
  } cases[] = {
      {"metrics", req("GET", "/metrics", "orchard.local:3128"), "/metrics", "orchard.local"},
      {"status with query", req("GET", "/api/v1/status?x=1", "10.1.2.3"), "/api/v1/status",
       "10.1.2.3"},
      {"no Host header", req("GET", "/metrics"), "/metrics", ""},
      {"POST", req("POST", "/api/v1/x", "orchard.local"), "/api/v1/x", "orchard.local"},
  };
  const RouterConfig config = testConfig();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    Route r = route(c.in, config);
    ASSERT_EQ(r.kind, Kind::Local) << kindName(r.kind) << " " << r.reason;
    EXPECT_EQ(r.path, c.path);
    EXPECT_EQ(r.host, c.host);
    EXPECT_TRUE(r.keyText.empty());
  }
}

// The intercept form of a host off the allow-list cannot be told from a
// request for the box by its head alone, so the router answers Local and
// keeps the (lower-cased) host: Transaction::local() answers 403 for any
// path that is not a local route. Nothing here may be Proxy.
TEST(Router, InterceptOfDisallowedHostIsLocal) {
  const RouterConfig config = testConfig();
  for (const char* host : {"example.com", "EXAMPLE.com:80", "example.com.", "swcdn.apple.com.evil.com"}) {
    SCOPED_TRACE(host);
    Route r = route(req("GET", "/a/b.pkg?x", host), config);
    EXPECT_EQ(r.kind, Kind::Local);
    EXPECT_EQ(r.path, "/a/b.pkg");
    EXPECT_FALSE(r.host.empty());
    EXPECT_NE(r.host, "swcdn.apple.com");
    EXPECT_TRUE(r.keyText.empty());
  }
  EXPECT_EQ(route(req("GET", "/x", "Example.COM."), config).host, "example.com");
}

// ------------------------------------------------------------ splitHostPort

TEST(SplitHostPort, Table) {
  struct Case {
    const char* in;
    uint16_t defaultPort;
    bool ok;
    const char* host;
    uint16_t port;
  } cases[] = {
      {"swcdn.apple.com", 80, true, "swcdn.apple.com", 80},
      {"swcdn.apple.com", 443, true, "swcdn.apple.com", 443},
      {"swcdn.apple.com:8080", 80, true, "swcdn.apple.com", 8080},
      {"SWCDN.Apple.Com:1", 80, true, "swcdn.apple.com", 1},
      {"swcdn.apple.com.", 80, true, "swcdn.apple.com", 80},
      {"swcdn.apple.com.:8080", 80, true, "swcdn.apple.com", 8080},
      {"swcdn.apple.com:", 80, true, "swcdn.apple.com", 80},  // empty port: the default (RFC 3986)
      {"swcdn.apple.com:65535", 80, true, "swcdn.apple.com", 65535},
      {"swcdn.apple.com:0080", 80, true, "swcdn.apple.com", 80},
      {"under_score-dash", 80, true, "under_score-dash", 80},
      {"10.0.0.1:3128", 80, true, "10.0.0.1", 3128},
      {"[::1]", 80, true, "::1", 80},
      {"[::1]:8080", 80, true, "::1", 8080},
      {"[::1]:", 80, true, "::1", 80},
      {"[2001:DB8::A]:443", 80, true, "2001:db8::a", 443},
      {"", 80, false, "", 0},
      {".", 80, false, "", 0},
      {":80", 80, false, "", 0},
      {"swcdn.apple.com:0", 80, false, "", 0},
      {"swcdn.apple.com:65536", 80, false, "", 0},
      {"swcdn.apple.com:99999999999", 80, false, "", 0},
      {"swcdn.apple.com:-1", 80, false, "", 0},
      {"swcdn.apple.com:+80", 80, false, "", 0},
      {"swcdn.apple.com:8a", 80, false, "", 0},
      {"swcdn.apple.com:80:80", 80, false, "", 0},
      {"::1", 80, false, "", 0},
      {"[::1", 80, false, "", 0},
      {"[::1]8080", 80, false, "", 0},
      {"[::1]:x", 80, false, "", 0},
      {"[]", 80, false, "", 0},
      {"[]:80", 80, false, "", 0},
      {"[fe80::1%25eth0]", 80, false, "", 0},
      {"swcdn apple.com", 80, false, "", 0},
      {"swcdn.apple.com/x", 80, false, "", 0},
      {"user@swcdn.apple.com", 80, false, "", 0},
      {"swcdn.apple.com\r\nX: y", 80, false, "", 0},
      {"caf\xc3\xa9.example", 80, false, "", 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    std::string host = "unchanged";
    uint16_t port = 7;
    bool ok = splitHostPort(c.in, &host, &port, c.defaultPort);
    ASSERT_EQ(ok, c.ok) << host << ":" << port;
    if (c.ok) {
      EXPECT_EQ(host, c.host);
      EXPECT_EQ(port, c.port);
    }
  }
}

TEST(SplitHostPort, HostOfMaximumLength) {
  std::string label(63, 'a');
  std::string name = label + "." + label + "." + label + "." + std::string(61, 'b');  // 253 chars
  ASSERT_EQ(name.size(), 253u);
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(splitHostPort(name, &host, &port, 80));
  EXPECT_EQ(host, name);
  EXPECT_TRUE(splitHostPort(name + ".", &host, &port, 80)) << "trailing dot does not count";
  EXPECT_FALSE(splitHostPort(name + "b", &host, &port, 80));
}

// ---------------------------------------------------------------- Form

// The form each request is counted under (orchard_responses_total{form}):
// refusals keep the form they were parsed as; the box's own requests are Local.
TEST(Router, FormOfEveryKind) {
  struct Case {
    const char* label;
    RouteInput in;
    Kind kind;
    RequestForm form;
  } cases[] = {
      {"intercept", req("GET", "/content/a.pkg", "swcdn.apple.com"), Kind::Proxy, RequestForm::Intercept},
      {"intercept query", req("GET", "/a?x=1", "swcdn.apple.com"), Kind::Proxy, RequestForm::Intercept},
      {"absolute", req("GET", "http://swcdn.apple.com/a"), Kind::Proxy, RequestForm::Forward},
      {"absolute denied", req("GET", "http://evil.example/a"), Kind::Deny, RequestForm::Forward},
      {"absolute bad", req("GET", "ftp://x/a"), Kind::Reject, RequestForm::Forward},
      {"source", req("GET", "/a?source=swcdn.apple.com"), Kind::Proxy, RequestForm::Source},
      {"source denied", req("GET", "/a?source=evil.example"), Kind::Deny, RequestForm::Source},
      {"probe", req("GET", "/", "", true), Kind::Probe, RequestForm::Local},
      {"local", req("GET", "/metrics", "127.0.0.1:8080"), Kind::Local, RequestForm::Local},
      {"unknown host is local", req("GET", "/x", "other.example"), Kind::Local, RequestForm::Local},
      {"connect", req("CONNECT", "swcdn.apple.com:443"), Kind::Tunnel, RequestForm::Forward},
      {"connect refused", req("CONNECT", "swcdn.apple.com:22"), Kind::Deny, RequestForm::Forward},
      {"bad host header", req("GET", "/a", "a..b"), Kind::Reject, RequestForm::Intercept},
  };
  for (const auto& c : cases) {
    Route r = route(c.in, testConfig());
    EXPECT_EQ(kindName(r.kind), std::string(kindName(c.kind))) << c.label;
    EXPECT_STREQ(formLabel(r.form), formLabel(c.form)) << c.label;
  }
}

}  // namespace
}  // namespace orchard::server
