// Who may use the box, as tables: every local route's client list and token
// scope (the real route table, as the Server registers it), the token table's
// look-up (names, scopes, the generated token, constant-time shape), the
// bearer header parsing, and the per-address connection counts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "server/admin/admin.h"
#include "server/admin/dashboard.h"
#include "server/admin/history.h"
#include "server/admin/tokens.h"
#include "server/apple/os_feed.h"
#include "server/catalog/catalog_routes.h"
#include "server/context.h"
#include "server/http/peer_counts.h"
#include "server/http/route_table.h"

namespace orchard::server {
namespace {

using config::Scope;

// The one table of who may use which route. A new route must be added here
// with its scope, on purpose (and to the README's scope table).
struct Expect {
  RouteAccess access;
  Scope scope;  // Token rows only
};
const std::map<std::string, Expect> kRoutes = {
    {"GET /metrics", {RouteAccess::Admin, Scope::Read}},
    {"GET /api/v1/status", {RouteAccess::Admin, Scope::Read}},
    {"GET /pkgs/{name}/{version}/{filename}", {RouteAccess::Clients, Scope::Read}},
    {"GET /manifests/{name}/{file}", {RouteAccess::Clients, Scope::Read}},
    {"GET /ca.pem", {RouteAccess::Clients, Scope::Read}},
    {"GET /dashboard", {RouteAccess::Admin, Scope::Read}},
    {"GET /dashboard/chart.js", {RouteAccess::Admin, Scope::Read}},
    {"GET /api/v1/history", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/top", {RouteAccess::Token, Scope::Read}},
    // read: every GET of the API
    {"GET /api/v1/packages", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/packages/{name}", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/audit", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/packages/{name}/{version}/deliveries", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/devices/{serial}", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/devices", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/devices/{serial}/installs", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/devices/{serial}/declarations", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/devices/{serial}/status", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/packages/{name}/{version}/targeting", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/packages/{name}/{version}/rollout", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/rings", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/rings/{name}", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/pins/{name}", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/os-targets/{ring}", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/os-targets", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/apple/os-versions", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/catalog/changes", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/catalog/sync", {RouteAccess::Token, Scope::Read}},
    {"GET /api/v1/sites", {RouteAccess::Token, Scope::Read}},
    {"PUT /api/v1/sites/{site}", {RouteAccess::Token, Scope::Mdm}},
    // mdm: device writes
    {"PUT /api/v1/devices/{serial}", {RouteAccess::Token, Scope::Mdm}},
    {"POST /api/v1/devices:import", {RouteAccess::Token, Scope::Mdm}},
    {"POST /api/v1/devices/{serial}/status", {RouteAccess::Token, Scope::Mdm}},
    // publish: packages and what they target
    {"PUT /api/v1/packages/{name}/{version}/{filename}", {RouteAccess::Token, Scope::Publish}},
    {"POST /api/v1/packages/{name}/{version}/from-url", {RouteAccess::Token, Scope::Publish}},
    {"PATCH /api/v1/packages/{name}/{version}", {RouteAccess::Token, Scope::Publish}},
    {"PUT /api/v1/packages/{name}/{version}/targeting", {RouteAccess::Token, Scope::Publish}},
    // admin: deletions, release control, the test clock
    {"DELETE /api/v1/packages/{name}/{version}", {RouteAccess::Token, Scope::Admin}},
    {"POST /api/v1/purge", {RouteAccess::Token, Scope::Admin}},
    {"POST /api/v1/reload", {RouteAccess::Token, Scope::Admin}},
    {"DELETE /api/v1/devices/{serial}", {RouteAccess::Token, Scope::Admin}},
    {"POST /api/v1/packages/{name}/{version}/rollout/{action}", {RouteAccess::Token, Scope::Admin}},
    {"PUT /api/v1/rings", {RouteAccess::Token, Scope::Admin}},
    {"PUT /api/v1/rings/{name}", {RouteAccess::Token, Scope::Admin}},
    {"DELETE /api/v1/rings/{name}", {RouteAccess::Token, Scope::Admin}},
    {"PUT /api/v1/pins/{name}", {RouteAccess::Token, Scope::Admin}},
    {"DELETE /api/v1/pins/{name}", {RouteAccess::Token, Scope::Admin}},
    {"PUT /api/v1/os-targets/{ring}", {RouteAccess::Token, Scope::Admin}},
    {"DELETE /api/v1/os-targets/{ring}", {RouteAccess::Token, Scope::Admin}},
    {"POST /api/v1/test/clock", {RouteAccess::Token, Scope::Admin}},
};

const char* accessName(RouteAccess a) {
  switch (a) {
    case RouteAccess::Clients: return "clients";
    case RouteAccess::Admin: return "admin";
    case RouteAccess::Token: return "token";
  }
  return "?";
}

TEST(RouteScopes, EveryRouteHasTheAccessAndScopeOfTheTable) {
  ServerContext ctx;
  RouteTable routes;
  registerAdminRoutes(routes, &ctx);
  registerHistoryRoutes(routes, &ctx);
  registerDashboardRoutes(routes);
  registerCatalogRoutes(routes, &ctx);
  registerTestClockRoute(routes, &ctx);
  registerOsFeedRoutes(routes, &ctx);
  std::map<std::string, Expect> seen;
  for (const RouteTable::Row* row : routes.rows()) {
    const std::string key = row->method + " " + row->pattern;
    SCOPED_TRACE(key);
    auto it = kRoutes.find(key);
    ASSERT_NE(it, kRoutes.end()) << "a route missing from the scope table: " << key;
    EXPECT_EQ(accessName(row->access), std::string(accessName(it->second.access)));
    if (row->access == RouteAccess::Token) {
      EXPECT_STREQ(config::scopeName(row->scope), config::scopeName(it->second.scope));
    }
    // Every /api/v1 route but the status document takes a token; nothing else does.
    const bool api = row->pattern.rfind("/api/v1/", 0) == 0 && row->pattern != "/api/v1/status";
    EXPECT_EQ(row->access == RouteAccess::Token, api);
    // Only GETs are open to read tokens.
    if (row->access == RouteAccess::Token) {
      EXPECT_EQ(row->scope == Scope::Read, row->method == "GET");
    }
    seen.emplace(key, it->second);
  }
  EXPECT_EQ(seen.size(), kRoutes.size()) << "the table names a route that is not registered";
}

TEST(RouteScopes, A405KeepsTheAccessOfThePath) {
  ServerContext ctx;
  RouteTable routes;
  registerAdminRoutes(routes, &ctx);
  registerCatalogRoutes(routes, &ctx);
  auto m = routes.match("POST", "/api/v1/audit");
  EXPECT_EQ(m.row, nullptr);
  EXPECT_EQ(m.allow, "GET, HEAD");
  EXPECT_EQ(m.access, RouteAccess::Token);
  m = routes.match("DELETE", "/metrics");
  EXPECT_EQ(m.access, RouteAccess::Admin);
  m = routes.match("GET", "/nothing/here");
  EXPECT_EQ(m.access, RouteAccess::Clients);
}

TEST(BearerToken, Parsing) {
  const struct {
    const char* header;
    const char* token;
  } cases[] = {
      {"Bearer abc", "abc"},        {"bearer abc", "abc"},   {"BEARER   abc  ", "abc"}, {"Bearer ", ""},
      {"Bearer", ""},               {"Basic abc", ""},       {"Bearerabc", ""},        {"", ""},
      {"Bearer a b", "a b"},  // one token with a space: never a configured one (tokenTextProblem)
  };
  for (const auto& c : cases) EXPECT_EQ(bearerToken(c.header), c.token) << c.header;
}

TEST(TokenTable, FindsByNameAndScope) {
  TokenTable t = TokenTable::build("admin-secret", {{"jamf", "jamf-0123456789abcdef", Scope::Mdm},
                                                    {"ci", "ci-0123456789abcdef00", Scope::Publish},
                                                    {"view", "view-0123456789abcdef", Scope::Read}});
  ASSERT_EQ(t.entries().size(), 4u);
  const struct {
    const char* presented;
    const char* name;  // nullptr: no match
    Scope scope;
  } cases[] = {
      {"admin-secret", "admin", Scope::Admin},
      {"jamf-0123456789abcdef", "jamf", Scope::Mdm},
      {"ci-0123456789abcdef00", "ci", Scope::Publish},
      {"view-0123456789abcdef", "view", Scope::Read},
      {"admin-secreT", nullptr, Scope::Read},
      {"admin-secret ", nullptr, Scope::Read},
      {"admin-secre", nullptr, Scope::Read},
      {"jamf-0123456789abcdef0", nullptr, Scope::Read},
      {"", nullptr, Scope::Read},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.presented);
    const TokenEntry* e = t.find(c.presented);
    if (c.name == nullptr) {
      EXPECT_EQ(e, nullptr);
      continue;
    }
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->name, c.name);
    EXPECT_EQ(e->scope, c.scope);
  }
}

TEST(TokenTable, KeepsDigestsNotSecrets) {
  TokenTable t = TokenTable::build("admin-secret", {});
  ASSERT_EQ(t.entries().size(), 1u);
  EXPECT_EQ(t.entries()[0].digest, tokenDigest("admin-secret"));
  // SHA-256("abc"), the FIPS 180-2 example.
  const auto d = tokenDigest("abc");
  EXPECT_EQ(d[0], 0xba);
  EXPECT_EQ(d[1], 0x78);
  EXPECT_EQ(d[31], 0xad);
  EXPECT_TRUE(TokenTable::build("", {}).empty());
  EXPECT_EQ(TokenTable::build("", {}).find("anything"), nullptr);
}

TEST(TokenTable, SnapshotBuildsItFromTheConfig) {
  config::ConfigSnapshot base;
  base.adminToken = "configured-admin";
  base.namedTokens = {{"jamf", "jamf-0123456789abcdef", Scope::Mdm}};
  Snapshot snap(std::move(base));
  ASSERT_NE(snap.tokens.find("configured-admin"), nullptr);
  EXPECT_EQ(snap.tokens.find("configured-admin")->name, "admin");
  EXPECT_EQ(snap.tokens.find("jamf-0123456789abcdef")->scope, Scope::Mdm);
}

sockaddr_storage addr(const char* ip) {
  sockaddr_storage ss{};
  if (std::string(ip).find(':') != std::string::npos) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &s6->sin6_addr);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &s4->sin_addr);
  }
  return ss;
}
const sockaddr* sa(const sockaddr_storage& s) { return reinterpret_cast<const sockaddr*>(&s); }

TEST(PeerCounts, CountsPerAddressAndForgetsIdleOnes) {
  PeerCounts p;
  auto a = addr("10.0.0.1"), a6 = addr("::ffff:10.0.0.1"), b = addr("10.0.0.2"), c = addr("fd00::1");
  EXPECT_EQ(p.add(sa(a)), 1u);
  EXPECT_EQ(p.add(sa(a6)), 2u);  // the same client in its v4-mapped form
  EXPECT_EQ(p.add(sa(b)), 1u);
  EXPECT_EQ(p.add(sa(c)), 1u);
  EXPECT_EQ(p.count(sa(a)), 2u);
  EXPECT_EQ(p.addresses(), 3u);
  p.remove(sa(a));
  p.remove(sa(a));
  p.remove(sa(c));
  EXPECT_EQ(p.count(sa(a)), 0u);
  EXPECT_EQ(p.count(sa(b)), 1u);
  EXPECT_EQ(p.addresses(), 1u);  // entries go with their last connection
}

TEST(PeerCounts, ManyThreadsAtOnce) {
  PeerCounts p;
  auto a = addr("192.0.2.7");
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < 10000; ++k) {
        p.add(sa(a));
        p.remove(sa(a));
      }
      p.add(sa(a));
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(p.count(sa(a)), 4u);
}

}  // namespace
}  // namespace orchard::server
