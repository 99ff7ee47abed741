// Tests for config/reload.h: which keys a reload applies and which need a
// restart, snapshots and their validation (admin.token_file).
#include "config/reload.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>

namespace orchard::config {
namespace {

Config load(const std::string& toml) {
  LoadResult r = loadString(toml, "test.toml");
  EXPECT_TRUE(r.ok()) << (r.problems.empty() ? "" : formatProblem(r.problems[0], "test.toml"));
  return r.ok() ? *r.config : defaults();
}

std::vector<std::string> names(const std::vector<const Param*>& ps) {
  std::vector<std::string> out;
  for (const Param* p : ps) out.emplace_back(p->name);
  return out;
}

// One value per key that differs from its default, as TOML.
struct Alt {
  const char* key;
  const char* toml;
};
const Alt kAlternatives[] = {
    {"server.listen", R"(["127.0.0.1:9090"])"},
    {"server.workers", "3"},
    {"server.drain_timeout", R"("5s")"},
    {"server.idle_timeout", R"("2s")"},
    {"server.max_connections", "7"},
    {"server.log_level", R"("debug")"},
    {"server.access_log", R"("/var/log/orchard/access.log")"},
    {"server.access_log_mask", R"(["key"])"},
    {"server.send_timeout", R"("3s")"},
    {"server.header_timeout", R"("2s")"},
    {"server.max_uri_length", R"("1KiB")"},
    {"server.max_header_bytes", R"("8KiB")"},
    {"server.max_header_count", "20"},
    {"server.max_connections_per_client", "4"},
    {"server.pac_proxy", R"("proxy.example:3128")"},
    {"tls.listen", R"(["127.0.0.1:8443"])"},
    {"tls.certificate", R"("/etc/orchard/tls/cert.pem")"},
    {"tls.private_key", R"("/etc/orchard/tls/key.pem")"},
    {"storage.dir", R"("/var/lib/orchard")"},
    {"storage.cache_limit", R"("1GiB")"},
    {"storage.max_object_size", R"("10MiB")"},
    {"storage.scrub_interval", R"("1h")"},
    {"upstream.allow", R"(["origin.test"])"},
    {"upstream.resolve", R"({ "origin.test" = "127.0.0.1:9000" })"},
    {"upstream.ca_file", R"("/etc/orchard/ca.pem")"},
    {"upstream.scheme_in_key", R"(["origin.test"])"},
    {"upstream.ignore_query", R"(["accessKey"])"},
    {"upstream.connect_timeout", R"("1s")"},
    {"upstream.read_timeout", R"("2s")"},
    {"upstream.max_idle_per_origin", "1"},
    {"upstream.allow_private", R"(["10.0.0.0/8"])"},
    {"upstream.tunnel_allow", R"(["apps.apple.com"])"},
    {"upstream.tunnel_idle_timeout", R"("30s")"},
    {"upstream.parents", R"(["hub.example:8080"])"},
    {"upstream.parent_policy", R"("url-path-hash")"},
    {"upstream.parent_down_time", R"("5s")"},
    {"upstream.max_hops", "3"},
    {"upstream.peers", R"(["127.0.0.1:8080", "10.0.0.2:8080"])"},
    {"upstream.peer_policy", R"("off")"},
    {"upstream.peer_name", R"("10.0.0.1:80")"},
    {"access.peer_clients", R"(["10.0.0.0/24"])"},
    {"access.allow_clients", R"(["10.0.0.0/8"])"},
    {"admin.token", R"("s3cret")"},
    {"admin.token_file", R"("/etc/orchard/admin.token")"},
    {"admin.tokens", R"([{ name = "jamf", token = "0123456789abcdef", scope = "mdm" }])"},
    {"admin.allow_clients", R"(["10.0.0.0/8"])"},
    {"admin.allow_plain_http", "true"},
    {"admin.local_clients", R"(["127.0.0.1/32"])"},
    {"catalog.max_upload", R"("1GiB")"},
    {"catalog.base_url", R"("https://orchard.branch.example")"},
    {"catalog.limit", R"("1TiB")"},
    {"catalog.require_signed", "true"},
    {"catalog.trusted_roots", R"("/etc/orchard/roots.pem")"},
    {"catalog.stale_after", R"("3d")"},
    {"catalog.halt_on_failure_percent", "35"},
    {"catalog.halt_min_reports", "50"},
    {"catalog.follow", R"("https://hub.example")"},
    {"catalog.follow_token", R"("0123456789abcdef")"},
    {"catalog.follow_token_file", R"("/etc/orchard/hub.token")"},
    {"catalog.follow_poll", R"("10s")"},
    {"catalog.site", R"("paris")"},
    {"apple.catalog_url", R"("https://swscan.apple.com/x.sucatalog")"},
    {"apple.catalog_refresh", R"("30m")"},
    {"apple.catalog_max_size", R"("64MiB")"},
    {"apple.mirror_rate", R"("2MiB")"},
    {"apple.mirror_window", R"("22:00-06:00")"},
    {"apple.os_feed_url", R"("https://gdmf.example/v2/pmv")"},
    {"apple.os_feed_interval", R"("1h")"},
    {"apple.feed_ca_file", R"("/etc/orchard/apple-root.pem")"},
    {"history.retention", R"("90d")"},
    {"history.sample_interval", R"("10s")"},
};

// The keys SIGHUP applies. A key leaving this list (becoming restart-only)
// breaks the reload promise of the README: change both on purpose only.
const std::set<std::string> kReloadable = {
    "apple.catalog_url", "apple.catalog_refresh", "apple.catalog_max_size", "apple.mirror_rate",
    "apple.mirror_window", "apple.os_feed_url", "apple.os_feed_interval", "apple.feed_ca_file",
    "server.drain_timeout", "server.idle_timeout", "server.max_connections", "server.log_level",
    "server.access_log",    "server.access_log_mask", "server.send_timeout", "tls.certificate",        "tls.private_key",
    "storage.cache_limit",  "storage.max_object_size", "upstream.allow",     "upstream.resolve",
    "upstream.ca_file",     "upstream.connect_timeout", "upstream.read_timeout", "upstream.max_idle_per_origin",
    "access.allow_clients", "admin.token",         "admin.token_file",
    "server.header_timeout", "server.max_uri_length", "server.max_header_bytes", "server.max_header_count",
    "server.max_connections_per_client", "admin.tokens", "admin.allow_clients", "admin.allow_plain_http",
    "admin.local_clients", "catalog.max_upload",
    "server.pac_proxy",     "upstream.allow_private", "upstream.tunnel_allow", "upstream.tunnel_idle_timeout",
    "catalog.base_url",     "catalog.limit",       "catalog.require_signed", "catalog.trusted_roots",
    "catalog.stale_after",  "catalog.halt_on_failure_percent", "catalog.halt_min_reports",
    "upstream.parent_down_time", "upstream.max_hops", "access.peer_clients", "catalog.follow_token",
    "catalog.follow_token_file", "catalog.follow_poll",
};

TEST(ReloadPlan, TheTableMarksExactlyTheReloadableKeys) {
  std::set<std::string> marked;
  for (const Param& p : params()) {
    if (p.reloadable) marked.emplace(p.name);
    EXPECT_NE(p.copy, nullptr) << p.name;
  }
  EXPECT_EQ(marked, kReloadable);
}

TEST(ReloadPlan, NothingChanged) {
  Config c = defaults();
  ReloadPlan plan = planReload(c, c);
  EXPECT_TRUE(plan.applied.empty());
  EXPECT_TRUE(plan.needRestart.empty());
  EXPECT_EQ(plan.config, c);
}

// Each key alone: a reloadable one is applied with its new value, a
// restart-only one is reported and keeps the running value.
TEST(ReloadPlan, EachKeyAlone) {
  std::set<std::string> covered;
  for (const Alt& alt : kAlternatives) {
    SCOPED_TRACE(alt.key);
    const Param* p = findParam(alt.key);
    ASSERT_NE(p, nullptr);
    covered.emplace(alt.key);
    const Config running = defaults();
    Config fresh = running;
    Config parsed = defaults();
    if (std::string(alt.key) == "tls.certificate" || std::string(alt.key) == "tls.private_key") {
      // One without the other does not load (they go together): set it by hand.
      parsed.tlsCertificate = "/etc/orchard/tls/cert.pem";
      parsed.tlsPrivateKey = "/etc/orchard/tls/key.pem";
    } else if (std::string(alt.key) == "catalog.follow") {
      // It needs a token of the hub to load.
      parsed = load("[catalog]\nfollow = " + std::string(alt.toml) + "\nfollow_token = \"0123456789abcdef\"\n");
    } else {
      parsed = load("[" + std::string(p->section()) + "]\n" + std::string(p->key()) + " = " + alt.toml + "\n");
    }
    p->copy(fresh, parsed);
    ASSERT_FALSE(p->same(fresh, running)) << "the alternative equals the default";
    ReloadPlan plan = planReload(running, fresh);
    if (p->reloadable) {
      EXPECT_EQ(names(plan.applied), std::vector<std::string>{alt.key});
      EXPECT_TRUE(plan.needRestart.empty());
      EXPECT_EQ(plan.config, fresh);
    } else {
      EXPECT_TRUE(plan.applied.empty());
      EXPECT_EQ(names(plan.needRestart), std::vector<std::string>{alt.key});
      EXPECT_EQ(plan.config, running) << "a restart-only key must keep its running value";
    }
  }
  for (const Param& p : params()) EXPECT_TRUE(covered.count(std::string(p.name))) << "no alternative for " << p.name;
}

TEST(ReloadPlan, MixedChangeAppliesTheReloadableAndKeepsTheRest) {
  Config running = load("[server]\nlisten = [\"127.0.0.1:8080\"]\nidle_timeout = \"60s\"\n");
  Config fresh = load(
      "[server]\nlisten = [\"127.0.0.1:9090\"]\nworkers = 4\nidle_timeout = \"5s\"\n"
      "[storage]\ncache_limit = \"1GiB\"\ndir = \"/elsewhere\"\n");
  ReloadPlan plan = planReload(running, fresh);
  EXPECT_EQ(names(plan.applied), (std::vector<std::string>{"server.idle_timeout", "storage.cache_limit"}));
  EXPECT_EQ(names(plan.needRestart), (std::vector<std::string>{"server.listen", "server.workers", "storage.dir"}));
  EXPECT_EQ(plan.config.idleTimeoutMs, 5000);
  EXPECT_EQ(plan.config.cacheLimit, 1ull << 30);
  EXPECT_EQ(plan.config.listen, running.listen);
  EXPECT_EQ(plan.config.workers, running.workers);
  EXPECT_EQ(plan.config.storageDir, running.storageDir);
  // Planning again against the result: nothing is left to apply, the
  // restart-only changes are still reported.
  ReloadPlan again = planReload(plan.config, fresh);
  EXPECT_TRUE(again.applied.empty());
  EXPECT_EQ(again.needRestart.size(), 3u);
}

TEST(ReloadPlan, RestartMessageNamesTheKey) {
  EXPECT_EQ(needsRestartMessage(*findParam("server.listen")), "server.listen changed: needs a restart");
}

class TokenFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-token-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    path_ = tmpl;
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  void write(const std::string& text) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::string path_;
};

TEST(Snapshot, CarriesTheConfigAndWhatIsDerived) {
  Config c = load("[upstream]\nallow = [\"origin.test\", \"*.cdn.test\"]\n[admin]\ntoken = \"abc\"\n");
  SnapshotResult r = buildSnapshot(c, 7);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.snapshot->generation, 7u);
  EXPECT_EQ(r.snapshot->config, c);
  EXPECT_TRUE(r.snapshot->allow.matches("origin.test"));
  EXPECT_TRUE(r.snapshot->allow.matches("a.cdn.test"));
  EXPECT_FALSE(r.snapshot->allow.matches("swcdn.apple.com"));
  EXPECT_EQ(r.snapshot->adminToken, "abc");
}

TEST_F(TokenFile, TokenComesFromTheFileTrimmed) {
  write("  t0ken-from-file \nsecond line ignored\n");
  Config c = defaults();
  c.adminTokenFile = path_;
  SnapshotResult r = buildSnapshot(c, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.snapshot->adminToken, "t0ken-from-file");
}

TEST_F(TokenFile, UnreadableOrEmptyFileIsAProblemNamingTheKey) {
  write("\n");
  Config c = defaults();
  c.adminTokenFile = path_;
  SnapshotResult empty = buildSnapshot(c, 2);
  EXPECT_FALSE(empty.ok());
  ASSERT_EQ(empty.problems.size(), 1u);
  EXPECT_EQ(empty.problems[0].key, "admin.token_file");
  EXPECT_NE(empty.problems[0].message.find("empty"), std::string::npos) << empty.problems[0].message;

  c.adminTokenFile = path_ + ".missing";
  SnapshotResult missing = buildSnapshot(c, 2);
  EXPECT_FALSE(missing.ok());
  ASSERT_EQ(missing.problems.size(), 1u);
  EXPECT_EQ(missing.problems[0].key, "admin.token_file");
  EXPECT_NE(missing.problems[0].message.find(path_ + ".missing"), std::string::npos);
  EXPECT_NE(missing.problems[0].message.find("No such file"), std::string::npos) << missing.problems[0].message;
}

}  // namespace
}  // namespace orchard::config
