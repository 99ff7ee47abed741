// Tests for server/ctl/settings (where orchardctl talks to, with which
// token): each source in its order of preference, by table, with the
// environment faked and token files in a temp dir.
#include "server/ctl/settings.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

namespace orchard::ctl {
namespace {

GetEnv fakeEnv(std::map<std::string, std::string> vars) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [held](const char* key) -> const char* {
    auto it = held->find(key);
    return it == held->end() ? nullptr : it->second.c_str();
  };
}

class Settings : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-ctl-settings-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(Settings, Url) {
  // ORCHARD_CONFIG names a file that does not exist: the machine's own
  // /etc/orchard/orchard.toml (if any) stays out of these rows.
  const std::string none = dir_ + "/absent.toml";
  EXPECT_EQ(resolveUrl("", fakeEnv({{"ORCHARD_CONFIG", none}})), "http://127.0.0.1:8080");
  EXPECT_EQ(resolveUrl("", fakeEnv({{"ORCHARD_URL", "http://box:9000/"}})), "http://box:9000");
  EXPECT_EQ(resolveUrl("http://flag:1", fakeEnv({{"ORCHARD_URL", "http://box:9000"}})), "http://flag:1");
  EXPECT_EQ(resolveUrl("", fakeEnv({{"ORCHARD_URL", ""}, {"ORCHARD_CONFIG", none}})), "http://127.0.0.1:8080");
}

// An installed box listens where its config says (port 80 on every IPv4
// address): orchardctl on the box asks there, on loopback for a wildcard.
TEST_F(Settings, UrlFromTheBoxsConfig) {
  struct Row {
    std::string toml, url;
  } rows[] = {
      {"[server]\nlisten = [\"0.0.0.0:80\"]\n", "http://127.0.0.1:80"},
      {"[server]\nlisten = [\"10.1.2.3:8081\", \"127.0.0.1:9\"]\n", "http://10.1.2.3:8081"},
      {"[server]\nlisten = [\"[::]:80\"]\n", "http://[::1]:80"},
      {"[server]\nlisten = [\"[fd00::5]:80\"]\n", "http://[fd00::5]:80"},
      {"[server]\nlisten = []\n", "http://127.0.0.1:8080"},         // no plain listener: the default
      {"[server]\nlisten = \"not a list\"\n", "http://127.0.0.1:8080"},  // does not load: the default
      {"", "http://127.0.0.1:8080"},                                    // the embedded defaults' own listener
  };
  for (const auto& r : rows) {
    const std::string path = write("orchard.toml", r.toml);
    EXPECT_EQ(resolveUrl("", fakeEnv({{"ORCHARD_CONFIG", path}})), r.url) << r.toml;
    // --url and ORCHARD_URL still come first.
    EXPECT_EQ(resolveUrl("", fakeEnv({{"ORCHARD_CONFIG", path}, {"ORCHARD_URL", "http://box:1"}})), "http://box:1");
  }
}

TEST_F(Settings, TokenOrder) {
  std::string file = write("tok", "  from-file \n");
  write("admin.token", "from-storage\n");
  auto storage = fakeEnv({{"ORCHARD_STORAGE_DIR", dir_}});
  auto both = fakeEnv({{"ORCHARD_STORAGE_DIR", dir_}, {"ORCHARD_TOKEN", "from-env"}});
  struct Row {
    std::string flag, tokenFile;
    GetEnv env;
    std::string token, source;
  } rows[] = {
      {"from-flag", file, both, "from-flag", "--token"},
      {"", file, both, "from-env", "ORCHARD_TOKEN"},
      {"", file, storage, "from-file", file},
      {"", "", storage, "from-storage", dir_ + "/admin.token"},
  };
  for (const auto& r : rows) {
    TokenChoice c = resolveToken(r.flag, r.tokenFile, r.env);
    EXPECT_EQ(c.token, r.token);
    EXPECT_EQ(c.source, r.source);
    EXPECT_EQ(c.error, "");
  }
}

TEST_F(Settings, TokenFileProblems) {
  TokenChoice missing = resolveToken("", dir_ + "/nope", fakeEnv({}));
  EXPECT_EQ(missing.token, "");
  EXPECT_NE(missing.error.find("/nope"), std::string::npos);
  TokenChoice empty = resolveToken("", write("empty", "\n"), fakeEnv({}));
  EXPECT_NE(empty.error.find("empty token file"), std::string::npos);
  // An empty admin.token in the storage dir is skipped, not an error.
  write("admin.token", "");
  std::vector<std::string> files = defaultTokenFiles(fakeEnv({{"ORCHARD_STORAGE_DIR", dir_}}));
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], dir_ + "/admin.token");
  EXPECT_EQ(files[1], "/var/lib/orchard/admin.token");
  EXPECT_EQ(files[2], "./var/orchard/admin.token");
}

}  // namespace
}  // namespace orchard::ctl
