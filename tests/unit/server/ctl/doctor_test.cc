// orchardctl doctor's checks (server/ctl/doctor.h) against fake probes:
// every check passes on a good setup and each broken setting fails its
// own check with a reason in plain words; the text lists OK/FAIL per
// check with details below.
#include "server/ctl/doctor.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace orchard::ctl {
namespace {

class FakeProbes final : public Probes {
 public:
  std::map<std::string, std::vector<std::string>> dns;  // host -> addresses (absent: NXDOMAIN)
  std::map<std::string, std::string> refuse;            // "addr:port" -> why
  std::optional<Space> disk = Space{100ull << 30, 200ull << 30};
  std::vector<std::string> connects;

  Resolved resolve(const std::string& host) override {
    Resolved r;
    auto it = dns.find(host);
    if (it == dns.end()) r.error = "name or service not known";
    else r.addresses = it->second;
    return r;
  }
  std::string connect(const std::string& address, uint16_t port, int) override {
    const std::string k = address + ":" + std::to_string(port);
    connects.push_back(k);
    auto it = refuse.find(k);
    return it == refuse.end() ? "" : it->second;
  }
  std::optional<Space> space(const std::string&, std::string* error) override {
    if (!disk) *error = "does not exist";
    return disk;
  }
};

config::Config goodConfig() {
  config::Config c = config::defaults();
  c.listen = {*config::ListenAddress::parse("0.0.0.0:8080")};
  c.storageDir = "/var/lib/orchard";
  c.cacheLimit = 50ull << 30;
  c.upstreamAllow = {"swcdn.apple.com", "*.cdn-apple.com", "mirror.example"};
  c.upstreamResolve = {{"mirror.example", *config::ListenAddress::parse("127.0.0.1:19000")}};
  return c;
}

const Check* find(const std::vector<Check>& checks, const std::string& name) {
  for (const auto& c : checks)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(Doctor, EveryCheckPassesOnAGoodSetup) {
  FakeProbes p;
  p.dns["swcdn.apple.com"] = {"17.253.1.2", "2a01:b740::2"};
  auto checks = configChecks(goodConfig(), p);
  for (const auto& c : checks) EXPECT_TRUE(c.ok) << c.name << ": " << c.reason;
  ASSERT_NE(find(checks, "listen 0.0.0.0:8080"), nullptr);
  EXPECT_EQ(find(checks, "listen 0.0.0.0:8080")->reason, "127.0.0.1:8080 accepts connections");  // a wildcard, on loopback
  EXPECT_EQ(find(checks, "dns swcdn.apple.com")->reason, "resolves to 17.253.1.2, 2a01:b740::2");
  EXPECT_NE(find(checks, "reach swcdn.apple.com")->reason.find("connected to 17.253.1.2:80"), std::string::npos);
  EXPECT_NE(find(checks, "dns mirror.example")->reason.find("upstream.resolve sends it to 127.0.0.1:19000"),
            std::string::npos);
  EXPECT_NE(find(checks, "reach mirror.example")->reason.find("127.0.0.1:19000 (upstream.resolve)"), std::string::npos);
  EXPECT_NE(find(checks, "dns *.cdn-apple.com")->reason.find("wildcard"), std::string::npos);
  EXPECT_EQ(find(checks, "reach *.cdn-apple.com"), nullptr);  // nothing to connect to
  EXPECT_NE(find(checks, "storage")->reason.find("free of"), std::string::npos);
  EXPECT_EQ(p.connects, (std::vector<std::string>{"127.0.0.1:8080", "17.253.1.2:80", "127.0.0.1:19000"}));
  const std::string text = doctorText(checks);
  EXPECT_NE(text.find("OK    listen 0.0.0.0:8080"), std::string::npos) << text;
  EXPECT_NE(text.find("every check passed"), std::string::npos) << text;
}

TEST(Doctor, EachBrokenSettingFailsInPlainWords) {
  FakeProbes p;  // swcdn.apple.com does not resolve
  p.refuse["127.0.0.1:19000"] = "connection refused";
  p.refuse["127.0.0.1:8080"] = "connection refused";
  auto checks = configChecks(goodConfig(), p);
  EXPECT_EQ(find(checks, "dns swcdn.apple.com")->reason, "does not resolve: name or service not known");
  EXPECT_FALSE(find(checks, "reach swcdn.apple.com")->ok);
  EXPECT_EQ(find(checks, "reach mirror.example")->reason,
            "unreachable: 127.0.0.1:19000 (upstream.resolve): connection refused");
  EXPECT_EQ(find(checks, "listen 0.0.0.0:8080")->reason,
            "server.listen 0.0.0.0:8080: connection refused (is orchardd running with this config?)");
  const std::string text = doctorText(checks);
  EXPECT_NE(text.find("FAIL  reach mirror.example"), std::string::npos) << text;
  EXPECT_NE(text.find("4 checks failed"), std::string::npos) << text;

  p.disk.reset();
  checks = configChecks(goodConfig(), p);
  EXPECT_EQ(find(checks, "storage")->reason, "storage.dir /var/lib/orchard does not exist");
  p.disk = Probes::Space{10ull << 20, 1ull << 40};  // 10 MiB free: under the 64 MiB reserve
  checks = configChecks(goodConfig(), p);
  EXPECT_FALSE(find(checks, "storage")->ok);
  EXPECT_NE(find(checks, "storage")->reason.find("misses pass through uncached"), std::string::npos);
}

TEST(Doctor, ConfigFileProblemsAreListedWithKeyAndLine) {
  config::LoadResult bad = config::loadString("[storage]\ncache_limit = \"lots\"\n[server]\nfrobnicate = 1\n", "x.toml");
  ASSERT_FALSE(bad.ok());
  Check c = configFileCheck("/etc/orchard/orchard.toml", bad);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.reason.find("2 problems"), std::string::npos) << c.reason;
  ASSERT_EQ(c.details.size(), 2u);
  EXPECT_NE(c.details[0].find("storage.cache_limit"), std::string::npos) << c.details[0];
  EXPECT_NE(c.details[0].find(":2"), std::string::npos) << c.details[0];
  EXPECT_NE(c.details[1].find("server.frobnicate"), std::string::npos) << c.details[1];

  config::LoadResult good = config::loadString("[storage]\ncache_limit = \"10GiB\"\n", "x.toml");
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(configFileCheck("x.toml", good).ok);
}

TEST(Doctor, BoxCheckSaysWhyNot) {
  BoxAnswer down;
  down.failure = "http://127.0.0.1:9: connection refused";
  EXPECT_EQ(boxCheck("http://127.0.0.1:9", down).reason, "cannot reach the box at http://127.0.0.1:9: connection refused");
  BoxAnswer up;
  up.reached = true;
  up.status = {{"Active", true}, {"CacheStatus", "OK"}, {"Version", "0.1.0"}, {"CacheProblems", nlohmann::json::array()}};
  Check ok = boxCheck("http://b", up);
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.reason, "http://b answers (orchard 0.1.0, active, CacheStatus OK)");
  up.status["CacheStatus"] = "LOWSPACE";
  up.status["CacheProblems"] = {"cache nearly full"};
  Check low = boxCheck("http://b", up);
  EXPECT_FALSE(low.ok);
  EXPECT_EQ(low.details, (std::vector<std::string>{"cache nearly full"}));
}

}  // namespace
}  // namespace orchard::ctl
