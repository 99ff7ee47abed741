// POST /api/v1/reload over the in-process Server: the reload runs on the
// server's control thread and the answer comes back on the asking loop;
// reloads asked for at once (the API's and SIGHUP's reloadConfigFile())
// run one after another, each its own generation; without a config file
// the answer is 409. The built daemon's side (a file with problems, a
// restart-only key) is tests/blackbox/test_ops.py.
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

namespace orchard::itest {
namespace {

constexpr const char* kToken = "ops-integration-token-0123456789";

class ReloadApi : public ServerTest {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    log::setLevel(log::Level::Error);
    ASSERT_TRUE(origin.start());
    startServer([](config::Config& c) { c.adminToken = kToken; });
  }
  void TearDown() override {
    ServerTest::TearDown();
    if (!file_.empty()) ::unlink(file_.c_str());
  }
  // A config file equal to the running config (port 0 included), for the
  // server to reload.
  void useConfigFile(const std::string& extraServer = "") {
    char tmpl[] = "/tmp/orchard-it-reload-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    file_ = tmpl;
    const config::Config& c = server->snapshot()->config;
    std::ofstream(file_, std::ios::trunc)
        << "[server]\nlisten = [\"127.0.0.1:" << port() << "\"]\nworkers = 2\nlog_level = \"error\"\n" << extraServer
        << "[storage]\ndir = \"" << c.storageDir << "\"\n"
        << "[upstream]\nallow = [\"origin.test\"]\nresolve = { \"origin.test\" = \"127.0.0.1:" << origin.port()
        << "\" }\n[admin]\ntoken = \"" << kToken << "\"\n[apple]\nos_feed_url = \"\"\n";
    server->setConfigPath(file_);
  }
  Response postReload() {
    return fetch(port(), request("POST", "/api/v1/reload", "127.0.0.1",
                                 std::string("Authorization: Bearer ") + kToken + "\r\nContent-Length: 0\r\n"));
  }
  std::string file_;
};

TEST_F(ReloadApi, WithoutAConfigFileIsAConflict) {
  Response r = postReload();
  ASSERT_EQ(r.status, 409) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"], "Conflict");
  EXPECT_EQ(j["applied"], false);
  EXPECT_EQ(j["generation"], 1);
  ASSERT_EQ(j["problems"].size(), 1u);
  EXPECT_NE(j["problems"][0]["message"].get<std::string>().find("embedded defaults"), std::string::npos);
  EXPECT_TRUE(j["problems"][0]["key"].is_null());
  EXPECT_EQ(server->snapshot()->generation, 1u);
}

TEST_F(ReloadApi, AppliesAndAnswersOnTheAskingLoop) {
  useConfigFile("idle_timeout = \"11s\"\n");
  Response r = postReload();
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["applied"], true);
  EXPECT_EQ(j["generation"], 2);
  EXPECT_NE(std::find(j["changed"].begin(), j["changed"].end(), "server.idle_timeout"), j["changed"].end()) << r.body;
  EXPECT_EQ(server->snapshot()->config.idleTimeoutMs, 11000);
  // The loops serve on the new snapshot.
  origin.script("/after", Script::text("served after the reload"));
  EXPECT_EQ(fetchGet("/after").body, "served after the reload");
}

TEST_F(ReloadApi, ConcurrentReloadsRunOneAfterAnother) {
  useConfigFile();
  constexpr int kApi = 4;
  std::vector<std::future<Response>> api;
  const uint16_t p = port();
  for (int i = 0; i < kApi; ++i)
    api.push_back(std::async(std::launch::async, [p] {
      return fetch(p, request("POST", "/api/v1/reload", "127.0.0.1",
                              std::string("Authorization: Bearer ") + kToken + "\r\nContent-Length: 0\r\n"));
    }));
  auto signal = server->reloadConfigFile();  // what orchardd's SIGHUP does, at the same time
  ASSERT_TRUE(signal.ok) << (signal.problems.empty() ? "" : signal.problems[0]);
  std::set<uint64_t> generations{signal.generation};
  for (auto& f : api) {
    Response r = await(f);
    ASSERT_EQ(r.status, 200) << r.body;
    generations.insert(nlohmann::json::parse(r.body)["generation"].get<uint64_t>());
  }
  // Five reloads, five generations: none ran over another.
  EXPECT_EQ(generations, (std::set<uint64_t>{2, 3, 4, 5, 6}));
  EXPECT_EQ(server->snapshot()->generation, 6u);
}

}  // namespace
}  // namespace orchard::itest
