// Config reload over the in-process Server: the snapshot holder
// (Server::snapshot()) carries every reloaded value, including the keys read
// from files (tls.*, upstream.ca_file, admin.token*); a reload
// reaches every loop before it returns; a request in flight finishes on the
// snapshot it started with; a refused reload changes nothing. The SIGHUP
// path of the built daemon is tests/blackbox/test_reload.py.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/net/local_ca.h"
#include "tests/integration/harness.h"

namespace orchard::itest {
namespace {

class Reload : public ServerTest {
 protected:
  // The running config, to change one key of.
  config::Config running() { return server->snapshot()->config; }
  std::string tempFile(const std::string& text) {
    char tmpl[] = "/tmp/orchard-it-token-XXXXXX";
    int fd = ::mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    ::close(fd);
    std::ofstream(tmpl, std::ios::trunc) << text;
    files_.push_back(tmpl);
    return tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) ::unlink(f.c_str());
    ServerTest::TearDown();
  }

 private:
  std::vector<std::string> files_;
};

TEST_F(Reload, KeysReadFromFilesRunInTheNewSnapshot) {
  EXPECT_EQ(server->snapshot()->generation, 1u);
  config::Config c = running();
  // An upstream.ca_file that cannot be read refuses the whole reload.
  c.upstreamCaFile = "/etc/orchard/upstream-ca.pem";
  auto refused = server->reload(c);
  EXPECT_FALSE(refused.ok);
  ASSERT_EQ(refused.problems.size(), 1u);
  EXPECT_NE(refused.problems[0].find("upstream.ca_file /etc/orchard/upstream-ca.pem"), std::string::npos)
      << refused.problems[0];
  EXPECT_EQ(server->snapshot()->generation, 1u);

  char dir[] = "/tmp/orchard-it-ca-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  server::tls::LocalCertificate ca;
  std::string err;
  ASSERT_TRUE(server::tls::ensureLocalCertificate(dir, {"localhost"}, {}, std::time(nullptr), &ca, &err)) << err;
  struct RemoveDir {
    std::string d;
    ~RemoveDir() { std::filesystem::remove_all(d); }
  } removeDir{dir};
  // tls.* are read only with tls.listen (restart-only, empty here).
  c.tlsCertificate = "/etc/orchard/tls/cert.pem";
  c.tlsPrivateKey = "/etc/orchard/tls/key.pem";
  c.upstreamCaFile = ca.caPath;
  c.adminToken = "token-one";
  auto r = server->reload(c);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.generation, 2u);
  EXPECT_EQ(r.applied, (std::vector<std::string>{"tls.certificate", "tls.private_key", "upstream.ca_file", "admin.token"}));
  EXPECT_TRUE(r.needRestart.empty());
  auto s = server->snapshot();
  EXPECT_EQ(s->generation, 2u);
  EXPECT_EQ(s->config.tlsCertificate, "/etc/orchard/tls/cert.pem");
  EXPECT_EQ(s->config.tlsPrivateKey, "/etc/orchard/tls/key.pem");
  EXPECT_EQ(s->config.upstreamCaFile, ca.caPath);
  EXPECT_EQ(s->upstream.tls->caFile(), ca.caPath) << "HTTPS origins use the new CA bundle";
  EXPECT_EQ(s->adminToken, "token-one");

  // admin.token_file: the snapshot holds the file's token.
  c.adminToken.clear();
  c.adminTokenFile = tempFile("token-two\n");
  r = server->reload(c);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.applied, (std::vector<std::string>{"admin.token", "admin.token_file"}));
  EXPECT_EQ(server->snapshot()->adminToken, "token-two");
  EXPECT_EQ(server->snapshot()->generation, 3u);

  // A token file that cannot be read refuses the reload: nothing changes.
  c.adminTokenFile += ".gone";
  c.idleTimeoutMs = 1234;
  r = server->reload(c);
  EXPECT_FALSE(r.ok);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].find("admin.token_file"), std::string::npos) << r.problems[0];
  EXPECT_EQ(server->snapshot()->generation, 3u);
  EXPECT_EQ(server->snapshot()->adminToken, "token-two");
  EXPECT_NE(server->snapshot()->config.idleTimeoutMs, 1234);
  EXPECT_EQ(counters().config_reloads, 2u);
  EXPECT_EQ(counters().config_reload_failures, 2u);  // the unreadable ca_file, then the token file
}

TEST_F(Reload, RestartOnlyKeysKeepTheirRunningValue) {
  config::Config c = running();
  c.workers = 7;
  c.storageDir = "/nonexistent/elsewhere";
  c.ignoreQuery = {"accessKey"};
  c.idleTimeoutMs = 4000;
  auto r = server->reload(c);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.applied, std::vector<std::string>{"server.idle_timeout"});
  EXPECT_EQ(r.needRestart, (std::vector<std::string>{"server.workers", "storage.dir", "upstream.ignore_query"}));
  auto s = server->snapshot();
  EXPECT_EQ(s->config.workers, 2);
  EXPECT_NE(s->config.storageDir, "/nonexistent/elsewhere");
  EXPECT_TRUE(s->config.ignoreQuery.empty());
  EXPECT_TRUE(s->router.ignoreQuery.empty());
  EXPECT_EQ(s->config.idleTimeoutMs, 4000);
}

// reload() returns once every loop (two here) installed the snapshot: any
// request after it, on any loop, sees the new upstream.allow.
TEST_F(Reload, EveryLoopHasTheNewSnapshotWhenReloadReturns) {
  origin.script("/a", Script::text("hello"));
  Response before = fetchGet("/a");
  ASSERT_EQ(before.status, 200);
  config::Config c = running();
  c.upstreamAllow = {"elsewhere.test"};
  ASSERT_TRUE(server->reload(c).ok);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(fetchGet("/a").status, 403) << "request " << i;
  c.upstreamAllow = {"origin.test"};
  ASSERT_TRUE(server->reload(c).ok);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(fetchGet("/a").status, 200) << "request " << i;
}

// A request in flight across a reload finishes on its own snapshot; once it
// is done, the loops let the old snapshot go.
TEST_F(Reload, InFlightRequestFinishesOnItsSnapshot) {
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(5, 2 * kMiB);
  s.bodyGate = gate;
  s.gateAt = 256 * kKiB;
  origin.script("/slow", s);
  std::weak_ptr<const server::Snapshot> first = server->snapshot();
  auto f = fetchAsync("/slow");
  ASSERT_TRUE(origin.waitForRequests("/slow", 1));
  config::Config c = running();
  c.upstreamAllow = {"elsewhere.test"};
  ASSERT_TRUE(server->reload(c).ok);
  EXPECT_EQ(fetchGet("/slow").status, 403) << "a new request must see the new allow-list";
  EXPECT_FALSE(first.expired()) << "the request in flight still runs on the first snapshot";
  gate->open();
  Response r = await(f);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.bodyLength, 2 * kMiB);
  EXPECT_TRUE(waitFor([&] { return first.expired(); }, 5s)) << "the old snapshot outlived its last request";
}

// upstream.max_idle_per_origin applies to the next exchanges: with 0, no
// origin connection is kept, so each request dials a new one.
TEST_F(Reload, UpstreamPoolTakesTheNewOptions) {
  restartServer([](config::Config& c) { c.workers = 1; });
  Script s = Script::text("x");
  s.headers = {{"Cache-Control", "no-store"}};
  origin.script("/p", s);
  ASSERT_EQ(fetchGet("/p").status, 200);
  ASSERT_EQ(fetchGet("/p").status, 200);
  const int pooled = origin.connectionsAccepted();
  EXPECT_EQ(pooled, 1) << "the second exchange should reuse the pooled connection";
  config::Config c = running();
  c.maxIdlePerOrigin = 0;
  ASSERT_TRUE(server->reload(c).ok);
  ASSERT_EQ(fetchGet("/p").status, 200);
  ASSERT_EQ(fetchGet("/p").status, 200);
  EXPECT_EQ(origin.connectionsAccepted(), pooled + 2) << "with max_idle_per_origin = 0 every exchange dials";
}

}  // namespace
}  // namespace orchard::itest
