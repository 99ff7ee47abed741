// Tests for config/config.h: the embedded defaults, loading every key,
// problem reporting (keys, lines, several at once), cross-key rules, and the
// shipped example file staying in sync with the table.
#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

#include "config/params.h"

namespace orchard::config {
namespace {

constexpr int64_t kMiB = 1024 * 1024, kGiB = kMiB * 1024;

Config loadOk(std::string_view toml) {
  LoadResult r = loadString(toml, "test.toml");
  std::string all;
  for (const Problem& p : r.problems) all += formatProblem(p, "test.toml") + "\n";
  EXPECT_TRUE(r.ok()) << all;
  EXPECT_TRUE(r.ok() == r.problems.empty());
  return r.ok() ? *r.config : Config{};
}

std::vector<Problem> loadBad(std::string_view toml) {
  LoadResult r = loadString(toml, "test.toml");
  EXPECT_FALSE(r.ok()) << toml;
  EXPECT_FALSE(r.problems.empty());
  return r.problems;
}

std::string formatAll(const std::vector<Problem>& problems) {
  std::string out;
  for (const Problem& p : problems) out += formatProblem(p, "orchard.toml") + "\n";
  return out;
}

TEST(Defaults, MatchTheDocumentedValues) {
  Config c = defaults();
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].host, "127.0.0.1");
  EXPECT_EQ(c.listen[0].port, 8080);
  EXPECT_FALSE(c.listen[0].v6);
  EXPECT_EQ(c.workers, 0);
  EXPECT_EQ(c.drainTimeoutMs, 30'000);
  EXPECT_EQ(c.idleTimeoutMs, 60'000);
  EXPECT_EQ(c.maxConnections, 20'000);
  EXPECT_EQ(c.logLevel, log::Level::Info);
  EXPECT_EQ(c.accessLog, "");
  EXPECT_EQ(c.accessLogMask, (std::vector<std::string>{"accessKey", "token", "signature", "sig", "X-Amz-Signature",
                                                         "X-Amz-Credential", "X-Amz-Security-Token"}));
  EXPECT_TRUE(c.tlsListen.empty());
  EXPECT_EQ(c.tlsCertificate, "");
  EXPECT_EQ(c.tlsPrivateKey, "");
  EXPECT_EQ(c.storageDir, "./var/orchard");
  EXPECT_EQ(c.cacheLimit, uint64_t(200) * kGiB);
  EXPECT_EQ(c.upstreamAllow.size(), 18u);
  EXPECT_EQ(c.upstreamAllow.front(), "swcdn.apple.com");
  EXPECT_EQ(c.upstreamAllow.back(), "*.aaplimg.com");
  EXPECT_TRUE(c.upstreamResolve.empty());
  EXPECT_EQ(c.upstreamCaFile, "");
  EXPECT_TRUE(c.ignoreQuery.empty());
  EXPECT_EQ(c.connectTimeoutMs, 10'000);
  EXPECT_EQ(c.readTimeoutMs, 60'000);
  EXPECT_EQ(c.maxIdlePerOrigin, 32);
  ASSERT_EQ(c.allowClients.size(), 7u);
  EXPECT_EQ(c.allowClients[0].text, "127.0.0.0/8");
  EXPECT_EQ(c.allowClients[6].text, "fe80::/10");
  EXPECT_EQ(c.adminToken, "");
  EXPECT_EQ(c.adminTokenFile, "");
  EXPECT_TRUE(c.adminTokens.empty());
  EXPECT_TRUE(c.adminAllowClients.empty());
  EXPECT_FALSE(c.adminAllowPlainHttp);
  EXPECT_EQ(c.headerTimeoutMs, 10'000);
  EXPECT_EQ(c.maxUriLength, 8 * 1024);
  EXPECT_EQ(c.maxHeaderBytes, 64 * 1024);
  EXPECT_EQ(c.maxHeaderCount, 100);
  EXPECT_EQ(c.maxConnectionsPerClient, 256);
  EXPECT_EQ(c.catalogMaxUpload, uint64_t(32) * kGiB);

  HostMatcher m(c.upstreamAllow);
  EXPECT_TRUE(m.matches("swcdn.apple.com"));
  EXPECT_TRUE(m.matches("updates.cdn-apple.com"));
  EXPECT_TRUE(m.matches("a1.phobos.aaplimg.com"));
  EXPECT_FALSE(m.matches("example.com"));
}

TEST(Defaults, EmptyFileAndRenderedDefaultsLoadToDefaults) {
  EXPECT_EQ(loadOk(""), defaults());
  EXPECT_EQ(loadOk("# nothing but a comment\n"), defaults());
  EXPECT_EQ(loadOk(defaultsToml()), defaults());
}

TEST(Defaults, RenderedTomlListsEveryKeyWithItsDoc) {
  std::string text = defaultsToml();
  for (const Section& s : sections()) {
    EXPECT_NE(text.find("\n[" + std::string(s.name) + "]\n"), std::string::npos) << s.name;
  }
  for (const Param& p : params()) {
    EXPECT_NE(text.find("\n" + std::string(p.key()) + " = "), std::string::npos) << p.name;
    EXPECT_NE(text.find(std::string(p.doc)), std::string::npos) << p.name;
  }
}

// The production file (make install, the .deb): every key and doc line of
// the defaults, only the rows with a productionToml changed, and it loads.
TEST(Defaults, ProductionTomlIsTheDefaultsWithTheBoxValues) {
  const std::string text = productionToml();
  for (const Section& s : sections()) {
    EXPECT_NE(text.find("\n[" + std::string(s.name) + "]\n"), std::string::npos) << s.name;
  }
  for (const Param& p : params()) {
    const std::string_view value = p.productionToml.empty() ? p.defaultToml : p.productionToml;
    EXPECT_NE(text.find("\n" + std::string(p.key()) + " = " + std::string(value) + "\n"), std::string::npos)
        << p.name;
    EXPECT_NE(text.find(std::string(p.doc)), std::string::npos) << p.name;
  }
  Config c = loadOk(text);
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].host, "0.0.0.0");
  EXPECT_EQ(c.listen[0].port, 80);
  EXPECT_FALSE(c.listen[0].v6);
  EXPECT_EQ(c.storageDir, "/var/lib/orchard");
  // Nothing else differs from the embedded defaults.
  std::vector<std::string> changed;
  for (const Param* p : changedParams(defaults(), c)) changed.emplace_back(p->name);
  EXPECT_EQ(changed, (std::vector<std::string>{"server.listen", "storage.dir"}));
  // Every changed row says what it replaces.
  EXPECT_NE(text.find("built-in default, without --config: [\"127.0.0.1:8080\"])\nlisten = [\"0.0.0.0:80\"]\n"),
            std::string::npos);
}

TEST(Defaults, ShippedExampleFileIsTheRenderedDefaults) {
  // tests/unit/config/config_test.cc -> config/orchard.example.toml
  std::string here = __FILE__;
  std::string root = here.substr(0, here.rfind("/tests/unit/config/"));
  std::ifstream in(root + "/config/orchard.example.toml");
  ASSERT_TRUE(in) << "missing " << root << "/config/orchard.example.toml";
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), defaultsToml()) << "regenerate config/orchard.example.toml from defaultsToml()";
}

// One non-default value per key, and how it shows in the Config. Every param
// in the table must have a row (checked below), so a new key gets tested.
struct KeyCase {
  const char* key;
  const char* toml;  // value literal
  std::function<void(const Config&)> check;
};

std::vector<KeyCase> keyCases() {
  return {
      {"server.listen", R"(["0.0.0.0:80", "[::]:8081"])",
       [](const Config& c) {
         ASSERT_EQ(c.listen.size(), 2u);
         EXPECT_EQ(c.listen[0].port, 80);
         EXPECT_EQ(c.listen[1].host, "::");
         EXPECT_TRUE(c.listen[1].v6);
         EXPECT_EQ(c.listen[1].text, "[::]:8081");
       }},
      {"server.workers", "4", [](const Config& c) { EXPECT_EQ(c.workers, 4); }},
      {"server.drain_timeout", R"("2m")", [](const Config& c) { EXPECT_EQ(c.drainTimeoutMs, 120'000); }},
      {"server.idle_timeout", "15", [](const Config& c) { EXPECT_EQ(c.idleTimeoutMs, 15'000); }},
      {"server.max_connections", "100", [](const Config& c) { EXPECT_EQ(c.maxConnections, 100); }},
      {"server.log_level", R"("debug")", [](const Config& c) { EXPECT_EQ(c.logLevel, log::Level::Debug); }},
      {"server.access_log", "true", [](const Config& c) { EXPECT_EQ(c.accessLog, "stderr"); }},
      {"server.access_log", R"("stderr")", [](const Config& c) { EXPECT_EQ(c.accessLog, "stderr"); }},
      {"server.access_log", R"("/var/log/orchard/access.log")",
       [](const Config& c) { EXPECT_EQ(c.accessLog, "/var/log/orchard/access.log"); }},
      {"server.access_log_mask", R"(["key", "Policy"])",
       [](const Config& c) { EXPECT_EQ(c.accessLogMask, (std::vector<std::string>{"key", "Policy"})); }},
      {"server.send_timeout", R"("5s")", [](const Config& c) { EXPECT_EQ(c.sendTimeoutMs, 5'000); }},
      {"server.header_timeout", R"("3s")", [](const Config& c) { EXPECT_EQ(c.headerTimeoutMs, 3'000); }},
      {"server.max_uri_length", R"("2KiB")", [](const Config& c) { EXPECT_EQ(c.maxUriLength, 2048); }},
      {"server.max_header_bytes", R"("16KiB")", [](const Config& c) { EXPECT_EQ(c.maxHeaderBytes, 16384); }},
      {"server.max_header_count", "40", [](const Config& c) { EXPECT_EQ(c.maxHeaderCount, 40); }},
      {"server.max_connections_per_client", "0", [](const Config& c) { EXPECT_EQ(c.maxConnectionsPerClient, 0); }},
      // tls.certificate and tls.private_key only load together: their own test.
      {"tls.listen", R"(["127.0.0.1:8443", "[::]:443"])",
       [](const Config& c) {
         ASSERT_EQ(c.tlsListen.size(), 2u);
         EXPECT_EQ(c.tlsListen[1].port, 443);
       }},
      {"server.pac_proxy", R"("proxy.branch.example:3128")",
       [](const Config& c) { EXPECT_EQ(c.pacProxy, "proxy.branch.example:3128"); }},
      {"storage.dir", R"("/var/lib/orchard")", [](const Config& c) { EXPECT_EQ(c.storageDir, "/var/lib/orchard"); }},
      {"storage.cache_limit", R"("1TiB")", [](const Config& c) { EXPECT_EQ(c.cacheLimit, uint64_t(1024) * kGiB); }},
      {"storage.max_object_size", R"("20GiB")",
       [](const Config& c) { EXPECT_EQ(c.maxObjectSize, uint64_t(20) * kGiB); }},
      {"storage.scrub_interval", R"("0")", [](const Config& c) { EXPECT_EQ(c.scrubIntervalMs, 0); }},
      {"upstream.allow", R"(["SWCDN.apple.com", "*.cdn-apple.com", "swcdn.apple.com."])",
       [](const Config& c) {
         EXPECT_EQ(c.upstreamAllow, (std::vector<std::string>{"swcdn.apple.com", "*.cdn-apple.com"}));
       }},
      {"upstream.resolve", R"({ "SWCDN.apple.com" = "127.0.0.1:19000", "mesu.apple.com" = "[::1]:19001" })",
       [](const Config& c) {
         ASSERT_EQ(c.upstreamResolve.size(), 2u);
         EXPECT_EQ(c.upstreamResolve.at("swcdn.apple.com").port, 19000);
         EXPECT_EQ(c.upstreamResolve.at("mesu.apple.com").host, "::1");
       }},
      {"upstream.ca_file", R"("/etc/orchard/upstream-ca.pem")",
       [](const Config& c) { EXPECT_EQ(c.upstreamCaFile, "/etc/orchard/upstream-ca.pem"); }},
      {"upstream.scheme_in_key", R"(["Mirror.example"])",
       [](const Config& c) { EXPECT_EQ(c.schemeInKey, (std::vector<std::string>{"mirror.example"})); }},
      {"upstream.ignore_query", R"(["accessKey", "token"])",
       [](const Config& c) { EXPECT_EQ(c.ignoreQuery, (std::vector<std::string>{"accessKey", "token"})); }},
      {"upstream.connect_timeout", R"("500ms")", [](const Config& c) { EXPECT_EQ(c.connectTimeoutMs, 500); }},
      {"upstream.read_timeout", R"("1h")", [](const Config& c) { EXPECT_EQ(c.readTimeoutMs, 3'600'000); }},
      {"upstream.max_idle_per_origin", "0", [](const Config& c) { EXPECT_EQ(c.maxIdlePerOrigin, 0); }},
      {"upstream.allow_private", R"(["10.20.0.0/16", "fd00::/8"])",
       [](const Config& c) {
         ASSERT_EQ(c.allowPrivate.size(), 2u);
         EXPECT_EQ(c.allowPrivate[0].prefix, 16);
         EXPECT_TRUE(c.allowPrivate[1].v6);
       }},
      {"upstream.tunnel_allow", R"(["Apps.Apple.com", "*.icloud.com"])",
       [](const Config& c) {
         EXPECT_EQ(c.tunnelAllow, (std::vector<std::string>{"apps.apple.com", "*.icloud.com"}));
       }},
      {"upstream.tunnel_idle_timeout", R"("90s")", [](const Config& c) { EXPECT_EQ(c.tunnelIdleTimeoutMs, 90'000); }},
      {"upstream.parents", R"(["hub.example:8080", "https://Hub2.example", "http://[::1]:3128/"])",
       [](const Config& c) {
         ASSERT_EQ(c.parentNodes.size(), 3u);
         EXPECT_EQ(c.parentNodes[0].id(), "hub.example:8080");
         EXPECT_FALSE(c.parentNodes[0].tls);
         EXPECT_EQ(c.parentNodes[1].id(), "hub2.example:443");
         EXPECT_TRUE(c.parentNodes[1].tls);
         EXPECT_EQ(c.parentNodes[2].id(), "[::1]:3128");
       }},
      {"upstream.parent_policy", R"("sticky-available")", [](const Config& c) { EXPECT_EQ(c.parentPolicy, "sticky-available"); }},
      {"upstream.parent_down_time", R"("5s")", [](const Config& c) { EXPECT_EQ(c.parentDownTimeMs, 5000); }},
      {"upstream.max_hops", "3", [](const Config& c) { EXPECT_EQ(c.maxHops, 3); }},
      {"upstream.peers", R"(["127.0.0.1:8080", "10.0.0.2:8080"])",
       [](const Config& c) {
         EXPECT_EQ(c.peerSelf, "127.0.0.1:8080");  // the default listener
         ASSERT_EQ(c.peerNodes.size(), 1u);
         EXPECT_EQ(c.peerNodes[0].id(), "10.0.0.2:8080");
       }},
      {"upstream.peer_policy", R"("off")", [](const Config& c) { EXPECT_EQ(c.peerPolicy, "off"); }},
      {"upstream.peer_name", R"("10.0.0.1:80")", [](const Config& c) { EXPECT_EQ(c.peerSelf, "10.0.0.1:80"); }},
      {"access.peer_clients", R"(["10.0.0.0/24"])", [](const Config& c) { ASSERT_EQ(c.peerClients.size(), 1u); }},
      {"access.allow_clients", R"(["192.168.1.0/24", "2001:db8::/32", "10.1.2.3"])",
       [](const Config& c) {
         ASSERT_EQ(c.allowClients.size(), 3u);
         EXPECT_EQ(c.allowClients[0].prefix, 24);
         EXPECT_TRUE(c.allowClients[1].v6);
         EXPECT_EQ(c.allowClients[2].prefix, 32);
       }},
      {"admin.token", R"("s3cret")", [](const Config& c) { EXPECT_EQ(c.adminToken, "s3cret"); }},
      {"admin.token_file", R"("/etc/orchard/admin.token")",
       [](const Config& c) { EXPECT_EQ(c.adminTokenFile, "/etc/orchard/admin.token"); }},
      {"admin.tokens", R"([{ name = "jamf", token = "0123456789abcdefX", scope = "mdm" },
                           { name = "ci", token_file = "/etc/orchard/ci.token", scope = "publish" }])",
       [](const Config& c) {
         ASSERT_EQ(c.adminTokens.size(), 2u);
         EXPECT_EQ(c.adminTokens[0], (TokenSpec{"jamf", "0123456789abcdefX", "", Scope::Mdm}));
         EXPECT_EQ(c.adminTokens[1], (TokenSpec{"ci", "", "/etc/orchard/ci.token", Scope::Publish}));
       }},
      {"admin.allow_clients", R"(["198.51.100.0/24"])",
       [](const Config& c) {
         ASSERT_EQ(c.adminAllowClients.size(), 1u);
         EXPECT_EQ(c.adminAllowClients[0].prefix, 24);
       }},
      {"admin.allow_plain_http", "true", [](const Config& c) { EXPECT_TRUE(c.adminAllowPlainHttp); }},
      {"admin.local_clients", R"(["127.0.0.1/32"])",
       [](const Config& c) {
         ASSERT_EQ(c.adminLocalClients.size(), 1u);
         EXPECT_EQ(c.adminLocalClients[0].prefix, 32);
       }},
      {"catalog.max_upload", R"("1GiB")", [](const Config& c) { EXPECT_EQ(c.catalogMaxUpload, uint64_t(kGiB)); }},
      {"catalog.base_url", R"("https://orchard.branch.example")",
       [](const Config& c) { EXPECT_EQ(c.catalogBaseUrl, "https://orchard.branch.example"); }},
      {"catalog.limit", R"("2TiB")", [](const Config& c) { EXPECT_EQ(c.catalogLimit, 2ull << 40); }},
      {"catalog.require_signed", "true", [](const Config& c) { EXPECT_TRUE(c.catalogRequireSigned); }},
      {"catalog.trusted_roots", R"("/etc/orchard/roots.pem")",
       [](const Config& c) { EXPECT_EQ(c.catalogTrustedRoots, "/etc/orchard/roots.pem"); }},
      {"catalog.stale_after", R"("3d")", [](const Config& c) { EXPECT_EQ(c.catalogStaleAfterMs, 3 * 86400 * 1000); }},
      {"catalog.follow_token", R"("0123456789abcdef")", [](const Config& c) { EXPECT_EQ(c.catalogFollowToken, "0123456789abcdef"); }},
      {"catalog.follow_token_file", R"("/etc/orchard/hub.token")",
       [](const Config& c) { EXPECT_EQ(c.catalogFollowTokenFile, "/etc/orchard/hub.token"); }},
      {"catalog.follow_poll", R"("10s")", [](const Config& c) { EXPECT_EQ(c.catalogFollowPollMs, 10'000); }},
      {"catalog.site", R"("paris")", [](const Config& c) { EXPECT_EQ(c.catalogSite, "paris"); }},
      {"catalog.halt_on_failure_percent", "35", [](const Config& c) { EXPECT_EQ(c.catalogHaltOnFailurePercent, 35); }},
      {"catalog.halt_min_reports", "50", [](const Config& c) { EXPECT_EQ(c.catalogHaltMinReports, 50); }},
      {"apple.catalog_url", R"("https://swscan.apple.com/x.sucatalog")", [](const Config& c) { EXPECT_EQ(c.appleCatalogUrl, "https://swscan.apple.com/x.sucatalog"); }},
      {"apple.catalog_refresh", R"("30m")", [](const Config& c) { EXPECT_EQ(c.appleCatalogRefreshMs, 30LL * 60 * 1000); }},
      {"apple.catalog_max_size", R"("64MiB")", [](const Config& c) { EXPECT_EQ(c.appleCatalogMaxSize, 64ull << 20); }},
      {"apple.mirror_rate", R"("2MiB")", [](const Config& c) { EXPECT_EQ(c.appleMirrorRate, 2ull << 20); }},
      {"apple.mirror_window", R"("22:00-06:00")", [](const Config& c) { EXPECT_EQ(c.appleMirrorWindow, "22:00-06:00"); }},
      {"apple.os_feed_url", R"("https://gdmf.example/v2/pmv")", [](const Config& c) { EXPECT_EQ(c.appleOsFeedUrl, "https://gdmf.example/v2/pmv"); }},
      {"apple.os_feed_interval", R"("1h")", [](const Config& c) { EXPECT_EQ(c.appleOsFeedIntervalMs, 3600LL * 1000); }},
      {"apple.feed_ca_file", R"("/etc/orchard/apple-root.pem")", [](const Config& c) { EXPECT_EQ(c.appleFeedCaFile, "/etc/orchard/apple-root.pem"); }},
      {"history.retention", R"("90d")", [](const Config& c) { EXPECT_EQ(c.historyRetentionMs, 90LL * 86400 * 1000); }},
      {"history.sample_interval", R"("250ms")", [](const Config& c) { EXPECT_EQ(c.historySampleIntervalMs, 250); }},
  };
}

TEST(Config, MaxStoredObjectIsAShareOfTheCacheAndNeverMoreThanItCanHold) {
  const uint64_t G = static_cast<uint64_t>(kGiB);
  Config c = defaults();
  c.cacheLimit = 200 * G;
  c.maxObjectSize = 0;
  EXPECT_EQ(c.maxStoredObject(), 50 * G);  // default: a quarter
  c.maxObjectSize = 20 * G;
  EXPECT_EQ(c.maxStoredObject(), 20 * G);
  c.maxObjectSize = 500 * G;  // more than the cache: capped at the low watermark
  EXPECT_EQ(c.maxStoredObject(), 200 * G / 10 * 9);
}

TEST(Load, FollowWithItsToken) {
  Config c = loadOk("[catalog]\nfollow = \"https://hub.example:8443\"\nfollow_token = \"0123456789abcdef\"\n");
  EXPECT_EQ(c.catalogFollow, "https://hub.example:8443");
  EXPECT_EQ(c.catalogFollowToken, "0123456789abcdef");
}

TEST(Load, EveryKeyParsesAndChangesOnlyItsField) {
  std::vector<KeyCase> cases = keyCases();
  for (const Param& p : params()) {
    if (p.name == "tls.certificate" || p.name == "tls.private_key") continue;
    if (p.name == "catalog.follow") continue;  // needs a token: Load.FollowWithItsToken
    bool found = false;
    for (const KeyCase& c : cases) found = found || c.key == p.name;
    EXPECT_TRUE(found) << "no test row for " << p.name;
  }
  for (const KeyCase& c : cases) {
    SCOPED_TRACE(c.key);
    const Param* p = findParam(c.key);
    ASSERT_NE(p, nullptr);
    std::string toml = "[" + std::string(p->section()) + "]\n" + std::string(p->key()) + " = " + c.toml + "\n";
    Config cfg = loadOk(toml);
    c.check(cfg);
    std::vector<const Param*> changed = changedParams(defaults(), cfg);
    ASSERT_EQ(changed.size(), 1u);
    EXPECT_EQ(changed[0], p);
  }
}

TEST(Load, AllKeysAtOnceLikeTheInterfaceExample) {
  Config c = loadOk(R"(
[server]
listen = ["127.0.0.1:8080"]        # plain HTTP listeners (addr:port, [v6]:port)

[storage]
dir = "/var/lib/orchard"           # objects, packages and the RocksDB index
cache_limit = "200GiB"             # sizes accept B, KiB, MiB, GiB, TiB

[upstream]
allow = ["swcdn.apple.com", "*.cdn-apple.com"]
resolve = { "swcdn.apple.com" = "127.0.0.1:19000" }
ca_file = "/etc/orchard/upstream-ca.pem"
ignore_query = ["accessKey"]

[access]
allow_clients = ["127.0.0.0/8", "10.0.0.0/8"]

[admin]
token_file = "/etc/orchard/admin.token"
)");
  EXPECT_EQ(c.storageDir, "/var/lib/orchard");
  EXPECT_EQ(c.upstreamAllow.size(), 2u);
  EXPECT_EQ(c.upstreamResolve.count("swcdn.apple.com"), 1u);
  EXPECT_EQ(c.allowClients.size(), 2u);
  EXPECT_EQ(c.adminTokenFile, "/etc/orchard/admin.token");
}

TEST(Load, SizesAndDurationsAsIntegers) {
  Config c = loadOk("[server]\ndrain_timeout = 5\n[storage]\ncache_limit = 2097152\n");
  EXPECT_EQ(c.drainTimeoutMs, 5000);
  EXPECT_EQ(c.cacheLimit, 2u * kMiB);
  // Dotted keys and inline section tables are the same keys.
  EXPECT_EQ(loadOk("server.workers = 3\n").workers, 3);
  EXPECT_EQ(loadOk("storage = { cache_limit = \"1GiB\" }\n").cacheLimit, uint64_t(kGiB));
}

TEST(Problems, UnknownKeyNamesKeyAndLine) {
  std::vector<Problem> ps = loadBad("[server]\nworkers = 2\nlisen = [\"127.0.0.1:8080\"]\n");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].key, "server.lisen");
  EXPECT_EQ(ps[0].line, 3);
  EXPECT_EQ(ps[0].message, "unknown key; did you mean server.listen?");
}

TEST(Problems, KeyInTheWrongSectionSuggestsTheRightOne) {
  std::vector<Problem> ps = loadBad("[server]\ncache_limit = \"1GiB\"\n");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].key, "server.cache_limit");
  EXPECT_EQ(ps[0].message, "unknown key; did you mean storage.cache_limit?");
  ps = loadBad("\nworkers = 2\n");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].key, "workers");
  EXPECT_EQ(ps[0].line, 2);
  EXPECT_EQ(ps[0].message, "unknown key outside any section; did you mean server.workers?");
}

TEST(Problems, UnknownSectionNamesSectionAndLine) {
  std::vector<Problem> ps = loadBad("# comment\n\n[serveur]\nlisten = []\n[cluster]\npeers = 1\n");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].key, "serveur");
  EXPECT_EQ(ps[0].line, 3);
  EXPECT_EQ(ps[0].message, "unknown section [serveur]; did you mean [server]?");
  EXPECT_EQ(ps[1].key, "cluster");
  EXPECT_EQ(ps[1].line, 5);
  EXPECT_EQ(ps[1].message, "unknown section [cluster]");
}

TEST(Problems, SeveralReportedAtOnceInOrder) {
  std::vector<Problem> ps = loadBad(R"([server]
listen = ["127.0.0.1:0"]
workers = 300
log_level = "verbose"
colour = true

[storage]
cache_limit = "lots"

[nope]

[access]
allow_clients = [
  "10.0.0.0/8",
  "10.0.0.0/33",
  42,
]
)");
  std::string all = formatAll(ps);
  EXPECT_EQ(all,
            "orchard.toml:2: server.listen: port must be between 1 and 65535, got \"127.0.0.1:0\"\n"
            "orchard.toml:3: server.workers: must be between 0 and 256, got 300\n"
            "orchard.toml:4: server.log_level: expected one of debug, info, warn, error, got \"verbose\"\n"
            "orchard.toml:5: server.colour: unknown key\n"
            "orchard.toml:8: storage.cache_limit: expected a size like \"200GiB\", got \"lots\"\n"
            "orchard.toml:10: nope: unknown section [nope]\n"
            "orchard.toml:15: access.allow_clients: prefix length must be between 0 and 32, got \"10.0.0.0/33\"\n"
            "orchard.toml:16: access.allow_clients: expected an array of address ranges like [\"10.0.0.0/8\", "
            "\"::1/128\"], got 42\n");
}

TEST(Problems, WrongTypesAndBadValues) {
  struct Case {
    const char* toml;
    const char* key;
    const char* message;
  } cases[] = {
      {"[server]\nlisten = \"127.0.0.1:8080\"", "server.listen",
       "expected an array of addresses like [\"127.0.0.1:8080\", \"[::1]:8080\"], got \"127.0.0.1:8080\""},
      {"[server]\nlisten = [\"localhost:8080\"]", "server.listen",
       "expected a numeric IPv4 or IPv6 address before the port, got \"localhost:8080\""},
      {"[server]\nlisten = [\"127.0.0.1:80\", \"127.0.0.1:80\"]", "server.listen", "\"127.0.0.1:80\" is listed twice"},
      {"[server]\nlisten = []", "server.listen", "no listeners: give at least one \"addr:port\""},
      {"[server]\nworkers = \"4\"", "server.workers", "expected an integer, got \"4\""},
      {"[server]\nworkers = -1", "server.workers", "must be between 0 and 256, got -1"},
      {"[server]\nworkers = 1.5", "server.workers", "expected an integer, got 1.5"},
      {"[server]\naccess_log = \"yes\"", "server.access_log",
       "expected false, true, \"stderr\" or an absolute file path, got \"yes\""},
      {"[server]\naccess_log = \"logs/access.log\"", "server.access_log",
       "expected false, true, \"stderr\" or an absolute file path, got \"logs/access.log\""},
      {"[server]\naccess_log = \"/var/log/\"", "server.access_log",
       "expected false, true, \"stderr\" or an absolute file path, got \"/var/log/\""},
      {"[server]\naccess_log = \"\"", "server.access_log",
       "expected false, true, \"stderr\" or an absolute file path, got \"\""},
      {"[server]\naccess_log = 1", "server.access_log",
       "expected false, true, \"stderr\" or an absolute file path, got 1"},
      {"[server]\naccess_log_mask = [\"\"]", "server.access_log_mask", "expected non-empty strings, got \"\""},
      {"[server]\nmax_connections = 0", "server.max_connections", "must be between 1 and 10000000, got 0"},
      {"[server]\ndrain_timeout = \"2h\"", "server.drain_timeout", "must be between 0s and 1h, got \"2h\""},
      {"[server]\ndrain_timeout = -5", "server.drain_timeout",
       "expected a duration like \"30s\" or \"500ms\", got -5"},
      {"[server]\ndrain_timeout = 9223372036854775807", "server.drain_timeout",
       "expected a duration like \"30s\" or \"500ms\", got 9223372036854775807"},
      {"[server]\nidle_timeout = \"1w\"", "server.idle_timeout",
       "expected a duration like \"30s\" or \"500ms\" (units are ms, s, m, h, d), got \"1w\""},
      {"[server]\nidle_timeout = \"500ms\"", "server.idle_timeout", "must be between 1s and 1h, got \"500ms\""},
      {"[server]\nlog_level = 1", "server.log_level", "expected one of debug, info, warn, error, got 1"},
      {"[storage]\ncache_limit = \"512KiB\"", "storage.cache_limit", "must be at least 1MiB, got \"512KiB\""},
      {"[storage]\ncache_limit = -1", "storage.cache_limit", "expected a size like \"200GiB\", got -1"},
      {"[storage]\ncache_limit = \"10GB\"", "storage.cache_limit",
       "expected a size like \"200GiB\" (units are B, KiB, MiB, GiB, TiB), got \"10GB\""},
      {"[storage]\ncache_limit = \"99999TiB99\"", "storage.cache_limit", "expected a size like \"200GiB\", got \"99999TiB99\""},
      {"[storage]\ncache_limit = \"9999999999TiB\"", "storage.cache_limit", "size too large, got \"9999999999TiB\""},
      {"[storage]\ndir = [\"a\"]", "storage.dir", "expected a string, got an array"},
      {"[upstream]\nallow = [\"swcdn.apple.com:443\"]", "upstream.allow", "host names take no port, got \"swcdn.apple.com:443\""},
      {"[upstream]\nallow = [\"a..b\"]", "upstream.allow", "host name has an empty label, got \"a..b\""},
      {"[upstream]\nallow = [\"bad host\"]", "upstream.allow",
       "host name has a character other than letters, digits, '-', '_' and '.', got \"bad host\""},
      {"[upstream]\nresolve = { \"*.apple.com\" = \"127.0.0.1:1\" }", "upstream.resolve",
       "a wildcard is only allowed as the whole first label (\"*.example.com\"), got \"*.apple.com\""},
      {"[upstream]\nresolve = { \"swcdn.apple.com\" = \"127.0.0.1\" }", "upstream.resolve",
       "\"swcdn.apple.com\": expected an address like \"127.0.0.1:8080\" or \"[::1]:8080\", got \"127.0.0.1\""},
      {"[upstream]\nresolve = { \"swcdn.apple.com\" = 19000 }", "upstream.resolve",
       "expected a table of host = \"addr:port\", got 19000"},
      {"[upstream.resolve]\n\"a.com\" = \"127.0.0.1:1\"\n\"A.com\" = \"127.0.0.1:2\"", "upstream.resolve",
       "\"A.com\" is listed twice"},
      {"[upstream]\nresolve = [\"a.com=127.0.0.1:1\"]", "upstream.resolve",
       "expected a table of host = \"addr:port\", got an array"},
      {"[upstream]\nignore_query = [\"\"]", "upstream.ignore_query", "expected non-empty strings, got \"\""},
      {"[upstream]\nconnect_timeout = \"20m\"", "upstream.connect_timeout", "must be between 100ms and 10m, got \"20m\""},
      {"[access]\nallow_clients = [\"10.0.0.1/8\"]", "access.allow_clients",
       "address has bits set beyond the prefix length, got \"10.0.0.1/8\""},
      {"[access]\nallow_clients = \"10.0.0.0/8\"", "access.allow_clients",
       "expected an array of address ranges like [\"10.0.0.0/8\", \"::1/128\"], got \"10.0.0.0/8\""},
      {"[upstream]\nparents = [\"hub.example\"]", "upstream.parents",
       "expected \"host:port\" (or a URL: \"http://host\", \"https://host\"), got \"hub.example\""},
      {"[upstream]\nparents = [\"https://hub.example/orchard\"]", "upstream.parents",
       "a parent or peer is a host and port only (no path, query, user or spaces), got \"https://hub.example/orchard\""},
      {"[upstream]\nparents = [\"a.example:80\", \"http://a.example\"]", "upstream.parents",
       "listed twice: \"http://a.example\""},
      {"[upstream]\nparent_policy = \"fastest\"", "upstream.parent_policy",
       "expected \"round-robin\", \"first-available\", \"url-path-hash\", \"random\" or \"sticky-available\", got \"fastest\""},
      {"[upstream]\npeers = [\"10.0.0.2:80\", \"10.0.0.3:80\"]", "upstream.peer_name",
       "none of upstream.peers is one of this box's listeners: set upstream.peer_name to this box's entry as the other "
       "peers list it"},
      {"[catalog]\nfollow = \"https://hub.example\"", "catalog.follow_token",
       "catalog.follow needs a token of the hub (catalog.follow_token or catalog.follow_token_file)"},
      {"server = 1", "server", "expected a [server] section, got 1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.toml);
    std::vector<Problem> ps = loadBad(c.toml);
    ASSERT_EQ(ps.size(), 1u) << formatAll(ps);
    EXPECT_EQ(ps[0].key, c.key);
    EXPECT_EQ(ps[0].message, c.message);
    EXPECT_GT(ps[0].line, 0);
  }
}

TEST(Problems, TomlSyntaxErrorsCarryTheirLine) {
  std::vector<Problem> ps = loadBad("[server]\nworkers = 2\nlisten = [\"127.0.0.1:8080\"\n\n[storage]\n");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].key, "");
  EXPECT_GE(ps[0].line, 3);
  EXPECT_FALSE(ps[0].message.empty());

  ps = loadBad("[server]\nworkers = 1\nworkers = 2\n");  // duplicate keys are a TOML error
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].line, 3);

  ps = loadBad("[server]\nworkers = 99999999999999999999\n");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].line, 2);
}

TEST(Problems, TlsCertificateAndKeyGoTogether) {
  std::vector<Problem> ps = loadBad("[tls]\n\nlisten = [\"127.0.0.1:8443\"]\ncertificate = \"c.pem\"\n");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(formatProblem(ps[0], "orchard.toml"),
            "orchard.toml:4: tls.private_key: set tls.certificate and tls.private_key together (or neither: the box "
            "makes its own CA)");
  ps = loadBad("[tls]\nprivate_key = \"k.pem\"\n");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].key, "tls.certificate");
  // Both, or neither (the box's own CA), load.
  Config c = loadOk("[tls]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\nlisten = [\"127.0.0.1:8443\"]\n");
  EXPECT_EQ(c.tlsCertificate, "c.pem");
  EXPECT_EQ(c.tlsListen.size(), 1u);
  c = loadOk("[tls]\nlisten = [\"[::1]:8443\"]\n");
  EXPECT_TRUE(c.tlsCertificate.empty());
}

TEST(Problems, TokenAndTokenFileAreExclusive) {
  std::vector<Problem> ps = loadBad("[admin]\ntoken = \"abc\"\ntoken_file = \"/etc/orchard/admin.token\"\n");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].key, "admin.token_file");
  EXPECT_EQ(ps[0].line, 3);
  EXPECT_EQ(ps[0].message, "set admin.token or admin.token_file, not both");
}

TEST(Problems, PacProxyMustBeHostAndPort) {
  for (const char* good : {"proxy.branch.example:3128", "proxy.branch.example", "10.0.0.2:8080", "[::1]:3128"}) {
    SCOPED_TRACE(good);
    Config c = loadOk(std::string("[server]\npac_proxy = \"") + good + "\"\n");
    EXPECT_EQ(c.pacProxy, good);
  }
  for (const char* bad : {"a b:80", "proxy:0", "proxy:65536", "proxy:x", "proxy:", "[::1", "[proxy]:80",
                          "http://proxy:80", "proxy\";alert(1)//:80"}) {
    SCOPED_TRACE(bad);
    std::vector<Problem> ps = loadBad(std::string("[server]\npac_proxy = '") + bad + "'\n");
    ASSERT_EQ(ps.size(), 1u);
    EXPECT_EQ(ps[0].key, "server.pac_proxy");
    EXPECT_EQ(ps[0].line, 2);
  }
}

TEST(Problems, CrossKeyRulesAddToValueProblems) {
  std::vector<Problem> ps =
      loadBad("[server]\nworkers = -1\n[tls]\ncertificate = \"c.pem\"\n[admin]\ntoken = \"a\"\ntoken_file = \"b\"\n");
  ASSERT_EQ(ps.size(), 3u) << formatAll(ps);
  EXPECT_EQ(ps[0].key, "server.workers");
  EXPECT_EQ(ps[1].key, "tls.private_key");
  EXPECT_EQ(ps[2].key, "admin.token_file");
}

TEST(FormatProblem, Shapes) {
  EXPECT_EQ(formatProblem({"storage.cache_limit", 12, "expected a size like \"200GiB\", got \"lots\""}, "orchard.toml"),
            "orchard.toml:12: storage.cache_limit: expected a size like \"200GiB\", got \"lots\"");
  EXPECT_EQ(formatProblem({"", 4, "syntax"}, "a.toml"), "a.toml:4: syntax");
  EXPECT_EQ(formatProblem({"admin.token", 0, "bad"}, "a.toml"), "a.toml: admin.token: bad");
}

TEST(LoadFile, ReadsAFileAndReportsAMissingOne) {
  char path[] = "/tmp/orchard_config_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const char text[] = "[server]\nworkers = 7\n";
  ASSERT_EQ(write(fd, text, sizeof text - 1), static_cast<ssize_t>(sizeof text - 1));
  close(fd);
  LoadResult r = loadFile(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->workers, 7);
  std::remove(path);

  r = loadFile(path);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].line, 0);
  EXPECT_EQ(r.problems[0].key, "");
  EXPECT_NE(r.problems[0].message.find("No such file"), std::string::npos) << r.problems[0].message;
}

}  // namespace
}  // namespace orchard::config

namespace orchard::config {
namespace {
TEST(Load, MirrorWindowIsCheckedAndNamesItsKey) {
  auto bad = loadString("[apple]\nmirror_window = \"22:00-25:00\"\n", "t.toml");
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_EQ(bad.problems[0].key, "apple.mirror_window");
  EXPECT_EQ(bad.problems[0].line, 2);
  auto good = loadString("[apple]\nmirror_window = \"22:00-06:00\"\n", "t.toml");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.config->appleMirrorWindow, "22:00-06:00");
}
}  // namespace
}  // namespace orchard::config
