// Tests for server/apple/os_feed.h without sockets: a scripted fetcher
// stands in for libcurl and a FakeClock for the wall clock. What they pin:
// the first good fetch is served; an empty asset set, broken JSON and a
// failed fetch each keep the last good copy, are recorded as the latest
// attempt with their reason, and counted by outcome; a good copy is saved
// and read back by a new feed (a restart), a refused one never is; the
// fetch asks with the running config (URL, CA file, upstream.resolve, the
// body bound); staleness; the route's JSON and its filters; and the thread
// fetching at once when the URL changes, then stopping promptly.
#include "server/apple/os_feed.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "server/context.h"

namespace orchard::server {
namespace {

using Outcome = OsFeed::Outcome;

const char* const kGood =
    R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.1.1", "Build": "24B91", "PostingDate": "2024-11-19",
       "SupportedDevices": ["J132AP"]}], "iOS": [{"ProductVersion": "18.1.1", "Build": "22B91"}]},
       "AssetSets": {"macOS": [{"ProductVersion": "15.1", "Build": "24B83"}]}})";
const char* const kNewer = R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "Build": "24C101"}]}})";
const char* const kEmpty = R"({"PublicAssetSets": {}, "AssetSets": {}})";

// Answers each fetch with the next scripted result, recording the requests.
struct Script {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<FeedFetchResult> answers;
  std::vector<FeedFetchRequest> asked;

  void push(std::string body, std::string error = {}) {
    std::lock_guard lock(mu);
    answers.push_back({std::move(body), std::move(error)});
  }
  FeedFetcher fetcher() {
    return [this](const FeedFetchRequest& req, const std::atomic<bool>*) {
      std::lock_guard lock(mu);
      asked.push_back(req);
      cv.notify_all();
      if (answers.empty()) return FeedFetchResult{"", "no scripted answer"};
      FeedFetchResult r = answers.front();
      answers.pop_front();
      return r;
    };
  }
  bool waitAsked(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return asked.size() >= n; });
  }
};

class OsFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_.clock = &clock_;
    ctx_.startConfig.appleOsFeedUrl = "https://gdmf.apple.com/v2/pmv";
    ctx_.startConfig.appleOsFeedIntervalMs = 3600 * 1000;
    char tmpl[] = "/tmp/orchard-osfeed-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto d = db::Database::open(dir_ + "/db", catalog::apple::osFeedFamilies());
    ASSERT_TRUE(d.ok()) << d.error().message();
    db_ = std::shared_ptr<db::Database>(std::move(d).value());
    store_ = std::make_unique<catalog::apple::OsFeedStore>(db_);
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  FakeClock clock_{1'732'000'000};
  ServerContext ctx_;
  Script script_;
  std::string dir_;
  std::shared_ptr<db::Database> db_;
  std::unique_ptr<catalog::apple::OsFeedStore> store_;
};

TEST_F(OsFeedTest, KeepsTheLastGoodCopyWhenTheFeedTurnsEmptyBrokenOrUnreachable) {
  OsFeed feed(&ctx_, store_.get(), script_.fetcher());
  EXPECT_FALSE(feed.state().feed);
  script_.push("", "SSL certificate problem: unable to get local issuer certificate");
  EXPECT_EQ(feed.fetchOnce(), Outcome::FetchError);
  EXPECT_FALSE(feed.state().feed) << "a failure before any good copy serves nothing";

  script_.push(kGood);
  EXPECT_EQ(feed.fetchOnce(), Outcome::Ok);
  const int64_t goodAt = clock_.nowSeconds();
  OsFeed::State s = feed.state();
  ASSERT_TRUE(s.feed);
  EXPECT_EQ(s.feed->releases.size(), 3u);
  EXPECT_EQ(s.fetchedAt, goodAt);
  EXPECT_EQ(s.source, "https://gdmf.apple.com/v2/pmv");
  EXPECT_FALSE(s.stale(clock_.nowSeconds()));

  struct Bad {
    const char* body;
    const char* error;
    Outcome outcome;
    const char* reason;
  };
  const Bad bads[] = {
      {kEmpty, "", Outcome::Empty, "no macOS release"},
      {R"({"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2")", "", Outcome::Invalid, "not valid JSON"},
      {"<html>Service Unavailable</html>", "", Outcome::Invalid, "not valid JSON"},
      {"", "HTTP 503", Outcome::FetchError, "HTTP 503"},
  };
  for (const Bad& bad : bads) {
    SCOPED_TRACE(bad.reason);
    clock_.advance(60);
    script_.push(bad.body, bad.error);
    EXPECT_EQ(feed.fetchOnce(), bad.outcome);
    s = feed.state();
    ASSERT_TRUE(s.feed);
    EXPECT_EQ(s.feed->releases.size(), 3u) << "the last good copy stays";
    EXPECT_TRUE(s.feed->knows("macOS", "15.1.1"));
    EXPECT_EQ(s.fetchedAt, goodAt);
    ASSERT_TRUE(s.lastAttempt);
    EXPECT_EQ(s.lastAttempt->outcome, bad.outcome);
    EXPECT_EQ(s.lastAttempt->time, clock_.nowSeconds());
    EXPECT_NE(s.lastAttempt->error.find(bad.reason), std::string::npos) << s.lastAttempt->error;
    EXPECT_TRUE(s.stale(clock_.nowSeconds())) << "a failed latest attempt makes the copy stale";
  }
  EXPECT_EQ(feed.fetches(Outcome::Ok), 1u);
  EXPECT_EQ(feed.fetches(Outcome::Empty), 1u);
  EXPECT_EQ(feed.fetches(Outcome::Invalid), 2u);
  EXPECT_EQ(feed.fetches(Outcome::FetchError), 2u);

  // The store still holds the good copy, not any refused one.
  auto stored = store_->load();
  ASSERT_TRUE(stored.ok() && stored.value());
  EXPECT_EQ(stored.value()->raw, kGood);
  EXPECT_EQ(stored.value()->fetchedAt, goodAt);

  script_.push(kNewer);
  EXPECT_EQ(feed.fetchOnce(), Outcome::Ok);
  s = feed.state();
  EXPECT_TRUE(s.feed->knows("macOS", "15.2"));
  EXPECT_FALSE(s.feed->knows("macOS", "15.1.1"));
  EXPECT_FALSE(s.stale(clock_.nowSeconds()));
  EXPECT_EQ(s.lastAttempt->error, "");
}

TEST_F(OsFeedTest, ARestartServesTheStoredCopy) {
  {
    OsFeed feed(&ctx_, store_.get(), script_.fetcher());
    script_.push(kGood);
    ASSERT_EQ(feed.fetchOnce(), Outcome::Ok);
    script_.push(kEmpty);
    ASSERT_EQ(feed.fetchOnce(), Outcome::Empty);
  }
  clock_.advance(3600);
  OsFeed again(&ctx_, store_.get(), script_.fetcher());
  again.load();
  OsFeed::State s = again.state();
  ASSERT_TRUE(s.feed);
  EXPECT_TRUE(s.feed->knows("macOS", "15.1"));
  EXPECT_EQ(s.fetchedAt, clock_.nowSeconds() - 3600);
  EXPECT_FALSE(s.lastAttempt) << "no attempt since this start";
  EXPECT_FALSE(s.stale(clock_.nowSeconds()));
  clock_.advance(2 * 3600);
  EXPECT_TRUE(again.state().stale(clock_.nowSeconds())) << "older than twice the interval";

  // A stored copy that no longer parses is not served.
  ASSERT_TRUE(store_->save({kEmpty, clock_.nowSeconds(), "https://gdmf.apple.com/v2/pmv"}));
  OsFeed third(&ctx_, store_.get(), script_.fetcher());
  third.load();
  EXPECT_FALSE(third.state().feed);
}

TEST_F(OsFeedTest, AsksWithTheRunningConfig) {
  ctx_.startConfig.appleFeedCaFile = "/etc/orchard/apple-root.pem";
  ctx_.startConfig.connectTimeoutMs = 2500;
  auto addr = config::ListenAddress::parse("127.0.0.1:19443");
  ASSERT_TRUE(addr.ok());
  ctx_.startConfig.upstreamResolve["gdmf.apple.com"] = addr.value();
  OsFeed feed(&ctx_, nullptr, script_.fetcher());
  script_.push(kGood);
  ASSERT_EQ(feed.fetchOnce(), Outcome::Ok);
  ASSERT_EQ(script_.asked.size(), 1u);
  const FeedFetchRequest& req = script_.asked[0];
  EXPECT_EQ(req.url, "https://gdmf.apple.com/v2/pmv");
  EXPECT_EQ(req.caFile, "/etc/orchard/apple-root.pem");
  EXPECT_EQ(req.connectTimeoutMs, 2500);
  EXPECT_EQ(req.maxBytes, OsFeed::kMaxFeedBytes);
  ASSERT_EQ(req.resolve.count("gdmf.apple.com"), 1u);
  EXPECT_EQ(req.resolve.at("gdmf.apple.com").port, 19443);

  ctx_.startConfig.appleOsFeedUrl = "";
  EXPECT_EQ(feed.fetchOnce(), std::nullopt) << "an empty apple.os_feed_url fetches nothing";
  EXPECT_EQ(script_.asked.size(), 1u);
}

TEST_F(OsFeedTest, TheRouteAnswerListsReleasesWithFilters) {
  OsFeed feed(&ctx_, nullptr, script_.fetcher());
  script_.push(kGood);
  ASSERT_EQ(feed.fetchOnce(), Outcome::Ok);
  clock_.advance(5);
  script_.push(kEmpty);
  ASSERT_EQ(feed.fetchOnce(), Outcome::Empty);
  const OsFeed::State s = feed.state();
  auto all = nlohmann::json::parse(osVersionsJson(s, clock_.nowSeconds(), "", ""));
  EXPECT_EQ(all["source"], "https://gdmf.apple.com/v2/pmv");
  EXPECT_EQ(all["fetched_at"], "2024-11-19T07:06:40Z");
  EXPECT_EQ(all["stale"], true);
  EXPECT_EQ(all["last_attempt"]["ok"], false);
  EXPECT_EQ(all["last_attempt"]["result"], "empty");
  EXPECT_EQ(all["last_attempt"]["time"], "2024-11-19T07:06:45Z");
  EXPECT_NE(all["last_attempt"]["error"].get<std::string>().find("no macOS release"), std::string::npos);
  ASSERT_EQ(all["releases"].size(), 3u);
  const auto& r0 = all["releases"][0];
  EXPECT_EQ(r0["set"], "PublicAssetSets");
  EXPECT_EQ(r0["platform"], "macOS");
  EXPECT_EQ(r0["version"], "15.1.1");
  EXPECT_EQ(r0["build"], "24B91");
  EXPECT_EQ(r0["posting_date"], "2024-11-19");
  EXPECT_TRUE(r0["expiration_date"].is_null());
  EXPECT_EQ(r0["supported_devices"], nlohmann::json::array({"J132AP"}));
  auto mac = nlohmann::json::parse(osVersionsJson(s, clock_.nowSeconds(), "macOS", ""));
  EXPECT_EQ(mac["releases"].size(), 2u);
  auto mdm = nlohmann::json::parse(osVersionsJson(s, clock_.nowSeconds(), "macOS", "AssetSets"));
  ASSERT_EQ(mdm["releases"].size(), 1u);
  EXPECT_EQ(mdm["releases"][0]["version"], "15.1");
  auto none = nlohmann::json::parse(osVersionsJson(s, clock_.nowSeconds(), "visionOS", ""));
  EXPECT_TRUE(none["releases"].empty());
}

TEST_F(OsFeedTest, TheThreadFetchesWhenTheUrlChangesAndStopsPromptly) {
  // Nothing stored: the first fetch is due kFirstFetchDelayMs after start;
  // a config change naming another URL fetches at once.
  OsFeed feed(&ctx_, store_.get(), script_.fetcher());
  script_.push(kGood);
  feed.start();
  ctx_.startConfig.appleOsFeedUrl = "https://gdmf.example/v2/pmv";
  feed.configChanged();
  ASSERT_TRUE(script_.waitAsked(1, std::chrono::seconds(10)));
  EXPECT_EQ(script_.asked[0].url, "https://gdmf.example/v2/pmv");
  const auto t0 = std::chrono::steady_clock::now();
  feed.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500)) << "stop() waits for nothing";
  EXPECT_EQ(script_.asked.size(), 1u) << "the hour's interval has not passed";
}

}  // namespace
}  // namespace orchard::server
