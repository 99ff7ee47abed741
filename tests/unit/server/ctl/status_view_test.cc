// Tables for orchardctl's status and top rendering (server/ctl/status_view.h):
// Apple's byte counts, the AssetCacheManagerUtil-shaped status text, the
// progress bars and the rates `top` computes from two status documents.
#include "server/ctl/status_view.h"

#include <gtest/gtest.h>

#include <string>

namespace orchard::ctl {
namespace {

using nlohmann::json;

TEST(AppleBytes, AsAssetCacheManagerUtilWritesThem) {
  struct Case {
    uint64_t bytes;
    const char* text;
  };
  const Case cases[] = {
      {0, "Zero KB"},
      {1, "1 bytes"},
      {999, "999 bytes"},
      {1000, "1 KB"},
      {1499, "1 KB"},
      {1500, "2 KB"},
      {999'499, "999 KB"},
      {999'500, "1 MB"},  // rounds up into the next unit, never "1000 KB"
      {7'300'000, "7.3 MB"},
      {7'000'000, "7 MB"},
      {1'720'000'000, "1.72 GB"},
      {61'600'000'000, "61.6 GB"},
      {250'000'000'000, "250 GB"},
      {110'830'000'000, "110.83 GB"},
      {1'234'567'890'123, "1.23 TB"},
  };
  for (const auto& c : cases) EXPECT_EQ(appleBytes(c.bytes), c.text) << c.bytes;
}

TEST(Percent, OneDecimalClamped) {
  EXPECT_EQ(percent(0), "0.0%");
  EXPECT_EQ(percent(0.875), "87.5%");
  EXPECT_EQ(percent(1), "100.0%");
  EXPECT_EQ(percent(1.5), "100.0%");
  EXPECT_EQ(percent(-1), "0.0%");
}

TEST(StatusText, KeysSortedSizesHumanListsCounted) {
  json s = {{"TotalBytesReturnedToClients", 135'660'000'000ull},
            {"CacheLimit", 250'000'000'000ull},
            {"CacheFree", 0},
            {"Activated", true},
            {"Active", false},
            {"HitRatio", 0.5},
            {"PrivateAddresses", {"10.0.1.102"}},
            {"CacheProblems", json::array()},
            {"ConfigFile", nullptr},
            {"CacheStatus", "OK"},
            {"Objects", 12},
            {"Fills", {{{"url", "http://swcdn.apple.com/a.pkg"}, {"received", 500}, {"length", 1000}, {"clients", 1}},
                       {{"url", "http://h/b"}, {"received", 2000}, {"length", nullptr}, {"clients", 3}}}}};
  EXPECT_EQ(statusText(s),
            "Content caching status:\n"
            "    Activated: true\n"
            "    Active: false\n"
            "    CacheFree: Zero KB\n"
            "    CacheLimit: 250 GB\n"
            "    CacheProblems: (none)\n"
            "    CacheStatus: OK\n"
            "    ConfigFile: (none)\n"
            "    Fills: (2)\n"
            "        http://swcdn.apple.com/a.pkg  500 bytes of 1 KB (50.0%), 1 client\n"
            "        http://h/b  2 KB of an unknown length, 3 clients\n"
            "    HitRatio: 50.0%\n"
            "    Objects: 12\n"
            "    PrivateAddresses: (1)\n"
            "        10.0.1.102\n"
            "    TotalBytesReturnedToClients: 135.66 GB\n");
  EXPECT_EQ(statusText(json{{"CacheLimit", 0}}), "Content caching status:\n    CacheLimit: unlimited\n");
}

TEST(StatusText, ParentsAndPeersOneLineEach) {
  json s = {{"Parents",
             {{{"id", "hub.example:80"}, {"url", "http://hub.example:80"}, {"state", "up"}, {"failures", 0},
               {"requests", 12}, {"bytes", 3100000}, {"last_error", nullptr}},
              {{"id", "hub2.example:443"}, {"url", "https://hub2.example:443"}, {"state", "down"}, {"failures", 2},
               {"requests", 1}, {"bytes", 0}, {"last_error", "answered 503"}}}},
            {"TotalBytesReturnedToChildren", 2000}};
  EXPECT_EQ(statusText(s),
            "Content caching status:\n"
            "    Parents: (2)\n"
            "        hub.example:80 up, 12 requests, 3.1 MB\n"
            "        hub2.example:443 down (answered 503), 1 request, Zero KB, 2 failures\n"
            "    TotalBytesReturnedToChildren: 2 KB\n");
}

TEST(StatusText, SinceIsADateNotTheHttpForm) {
  const std::string text = statusText(json{{"TotalBytesAreSince", "Tue, 01 Dec 2026 10:00:00 GMT"}});
  EXPECT_NE(text.find("TotalBytesAreSince: 2026-1"), std::string::npos) << text;  // local time: the day may differ
  EXPECT_EQ(text.find("GMT"), std::string::npos) << text;
  EXPECT_NE(statusText(json{{"TotalBytesAreSince", "not a date"}}).find("not a date"), std::string::npos);
}

TEST(ProgressBar, FilledShareAndUnknownLength) {
  EXPECT_EQ(progressBar(0, 100, 10), "[----------]");
  EXPECT_EQ(progressBar(50, 100, 10), "[#####-----]");
  EXPECT_EQ(progressBar(100, 100, 10), "[##########]");
  EXPECT_EQ(progressBar(150, 100, 10), "[##########]");
  EXPECT_EQ(progressBar(5, 0, 4), "[####]");  // an empty body is done
  EXPECT_EQ(progressBar(5, std::nullopt, 4), "[????]");
}

TEST(TopText, RatesFromTwoReadsAndFillBars) {
  json before = {{"Requests", 100}, {"TotalBytesReturnedToClients", 1'000'000}, {"TotalBytesStoredFromOrigin", 0},
                 {"TotalBytesDropped", 0}};
  json now = {{"Version", "0.1.0"},
              {"UptimeSeconds", 125},
              {"ConfigGeneration", 2},
              {"CacheStatus", "OK"},
              {"Active", true},
              {"Connections", 4},
              {"Requests", 150},
              {"HitRatio", 0.75},
              {"ByteHitRatio", 0.5},
              {"TotalBytesReturnedToClients", 21'000'000},
              {"TotalBytesStoredFromOrigin", 4'000'000},
              {"TotalBytesDropped", 0},
              {"CacheUsed", 50'000'000'000ull},
              {"CacheLimit", 200'000'000'000ull},
              {"Objects", 7},
              {"FillsInFlight", 1},
              {"Fills", {{{"url", "http://swcdn.apple.com/big.pkg"}, {"received", 250}, {"length", 1000}, {"clients", 2}}}}};
  TopFrame f;
  f.now = &now;
  f.prev = &before;
  f.seconds = 2.0;
  f.url = "http://127.0.0.1:8080";
  f.clock = "14:03:22";
  f.width = 200;
  const std::string text = topText(f);
  EXPECT_NE(text.find("orchard 0.1.0 at http://127.0.0.1:8080  up 2m05s, config generation 2    14:03:22"),
            std::string::npos) << text;
  EXPECT_NE(text.find("25.0/s"), std::string::npos) << text;     // 50 requests in 2 s
  EXPECT_NE(text.find("10 MB/s"), std::string::npos) << text;    // 20 MB to clients in 2 s
  EXPECT_NE(text.find("from origin 2 MB/s"), std::string::npos) << text;
  EXPECT_NE(text.find("hit ratio 75.0%, by bytes 50.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("50 GB of 200 GB (25.0%), 7 objects"), std::string::npos) << text;
  EXPECT_NE(text.find("[######------------------] 25.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("2 clients"), std::string::npos) << text;
  EXPECT_NE(text.find("http://swcdn.apple.com/big.pkg"), std::string::npos) << text;

  // The first frame has no rates yet.
  f.prev = nullptr;
  const std::string first = topText(f);
  EXPECT_NE(first.find("requests    -"), std::string::npos) << first;
  // A narrow terminal cuts the URL, never the numbers.
  f.width = 70;
  const std::string narrow = topText(f);
  EXPECT_NE(narrow.find("..."), std::string::npos) << narrow;
  EXPECT_NE(narrow.find("25.0%"), std::string::npos) << narrow;
}

}  // namespace
}  // namespace orchard::ctl
