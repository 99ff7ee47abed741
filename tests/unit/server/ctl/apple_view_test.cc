// Tables for orchardctl's Apple-content rendering (server/ctl/apple_view.h):
// canned answers of the API routes in, the exact text `apple products`,
// `apple show`, `apple mirrors`, `apple os-versions`, `prewarm list|show`
// print out; the mirror follower's decision per job state; its progress
// line (the box's percent, rate, ETA and current file through Progress);
// the --interval, --window and --sha256 checks; and answers with missing
// or mistyped fields, which must render as "-" and never throw.
#include "server/ctl/apple_view.h"

#include <gtest/gtest.h>

#include <string>

namespace orchard::ctl {
namespace {

using nlohmann::json;

json productsAnswer() {
  return json::parse(R"({
    "catalog_url": "https://swscan.apple.com/content/catalogs/others/index-15.merged-1.sucatalog",
    "loaded_at": "2024-10-04T08:00:00Z", "cache_status": "hit", "matched": 2,
    "products": [
      {"id": "062-78825", "kind": "installer", "title": "macOS Sequoia", "version": "15.0.1", "build": "24A348",
       "post_date": "2024-10-03T17:00:00Z", "size": 14495514624, "held_percent": 100, "mirror": "done",
       "packages": []},
      {"id": "052-15137", "kind": "update", "title": "Safari", "version": "18.0", "build": "20619.1.26",
       "post_date": "2024-09-16T17:00:00Z", "size": 183500800, "held_percent": 37.9,
       "packages": []}
    ]})");
}

TEST(AppleProducts, CatalogLineThenTable) {
  EXPECT_EQ(productsText(productsAnswer()),
            "catalog https://swscan.apple.com/content/catalogs/others/index-15.merged-1.sucatalog, loaded "
            "2024-10-04T08:00:00Z (hit): 2 products match\n"
            "ID         KIND       TITLE          VERSION  BUILD       POSTED           SIZE  HELD  MIRROR\n"
            "062-78825  installer  macOS Sequoia  15.0.1   24A348      2024-10-03   13.5 GiB  100%  done\n"
            "052-15137  update     Safari         18.0     20619.1.26  2024-09-16  175.0 MiB   37%  -\n");
}

TEST(AppleProducts, MoreMatchedThanShownAndNone) {
  json a = productsAnswer();
  a["matched"] = 40;
  a["loaded_at"] = 1728028800;  // Unix seconds render as RFC 3339
  std::string text = productsText(a);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "catalog https://swscan.apple.com/content/catalogs/others/index-15.merged-1.sucatalog, loaded "
            "2024-10-04T08:00:00Z (hit): 40 products match, 2 shown (--limit)");
  json none = {{"catalog_url", "u"}, {"loaded_at", "t"}, {"matched", 0}, {"products", json::array()}};
  EXPECT_EQ(productsText(none), "catalog u, loaded t: 0 products match\n");
  none["matched"] = 1;
  none["products"] = {{{"id", "x"}}};
  EXPECT_NE(productsText(none).find("1 product matches\n"), std::string::npos);
}

TEST(AppleShow, FieldsThenPackages) {
  json p = json::parse(R"({
    "id": "062-78825", "kind": "installer", "title": "macOS Sequoia", "version": "15.0.1", "build": "24A348",
    "post_date": "2024-10-03T17:00:00Z", "size": 14495514624, "held_percent": 51, "mirror": "running",
    "packages": [
      {"url": "https://swcdn.apple.com/content/downloads/1/InstallAssistant.pkg", "size": 14495000000,
       "integrity_url": "https://swcdn.apple.com/content/downloads/1/InstallAssistant.pkg.integrityDataV1",
       "held": {"state": "partial", "bytes": 7395000000, "percent": 51}},
      {"url": "https://swcdn.apple.com/content/downloads/1/BuildManifest.plist", "size": 514624,
       "held": {"state": "complete", "bytes": 514624, "percent": 100}}
    ]})");
  EXPECT_EQ(productText(p),
            "062-78825  macOS Sequoia\n"
            "  kind      installer\n"
            "  version   15.0.1 (24A348)\n"
            "  posted    2024-10-03T17:00:00Z\n"
            "  size      13.5 GiB\n"
            "  held      51%\n"
            "  mirror    running\n"
            "  packages  2\n"
            "STATE     PERCENT       HELD       SIZE  INTEGRITY                             URL\n"
            "partial       51%   6.89 GiB   13.5 GiB  InstallAssistant.pkg.integrityDataV1  "
            "https://swcdn.apple.com/content/downloads/1/InstallAssistant.pkg\n"
            "complete     100%  502.6 KiB  502.6 KiB  -                                     "
            "https://swcdn.apple.com/content/downloads/1/BuildManifest.plist\n");
  p.erase("mirror");
  EXPECT_NE(productText(p).find("  mirror    not mirrored\n"), std::string::npos);
}

TEST(AppleMirrors, WindowLineAndJobs) {
  json a = json::parse(R"({"window_open": false, "mirrors": [
    {"id": "7", "kind": "mirror", "state": "running", "percent": 42, "held_percent": 45, "rate": 20971520,
     "eta_seconds": 400, "total_bytes": 100, "done_bytes": 42, "items": []},
    {"id": "8", "kind": "mirror", "state": "waiting", "percent": 0, "held_percent": 0, "rate": 0,
     "reason": "outside apple.mirror_window 22:00-06:00", "items": []},
    {"id": "6", "kind": "mirror", "state": "failed", "percent": 10, "held_percent": 10, "rate": 0,
     "reason": "InstallAssistant.pkg: size differs from the catalog", "items": []}]})");
  EXPECT_EQ(mirrorsText(a),
            "mirror window: closed (jobs wait until apple.mirror_window opens)\n"
            "ID  STATE    PERCENT  HELD        RATE    ETA  REASON\n"
            "7   running      42%   45%  20.0 MiB/s  6m40s  -\n"
            "8   waiting       0%    0%           -      -  outside apple.mirror_window 22:00-06:00\n"
            "6   failed       10%   10%           -      -  InstallAssistant.pkg: size differs from the catalog\n");
  EXPECT_EQ(mirrorsText(json{{"window_open", true}, {"mirrors", json::array()}}),
            "mirror window: open\nno mirror jobs\n");
}

json runningJob() {
  return json::parse(R"({"id": "7", "kind": "mirror", "state": "running", "created_at": "2024-10-04T22:00:00Z",
    "total_bytes": 1073741824, "done_bytes": 268435456, "percent": 25, "rate": 10485760, "eta_seconds": 77,
    "current": "https://swcdn.apple.com/content/downloads/1/InstallAssistant.pkg?x=1", "held_percent": 25,
    "items": [
      {"url": "https://swcdn.apple.com/content/downloads/1/InstallAssistant.pkg", "size": 1073700000,
       "state": "running", "held": {"state": "partial", "bytes": 268435456, "percent": 25}},
      {"url": "https://swcdn.apple.com/content/downloads/1/BuildManifest.plist", "size": 41824, "state": "done",
       "sha256": "ab", "held": {"state": "complete", "bytes": 41824, "percent": 100}}],
    "already_queued": false})");
}

TEST(AppleMirrorJob, OneLineSummaryAndNote) {
  json job = runningJob();
  EXPECT_EQ(jobText(job), "mirror job 7: running, 2 files, 1.00 GiB, held 25%\n");
  job["already_queued"] = true;
  job["state"] = "queued";
  job["note"] = "one mirror runs at a time; this one starts after job 6";
  EXPECT_EQ(jobText(job),
            "mirror job 7: queued (already queued), 2 files, 1.00 GiB, held 25%\n"
            "note: one mirror runs at a time; this one starts after job 6\n");
}

TEST(AppleMirrorJob, FailureNamesEachFailedItem) {
  json job = runningJob();
  job["state"] = "failed";
  job["reason"] = "1 of 2 files failed";
  job["items"][0]["state"] = "failed";
  job["items"][0]["reason"] = "chunklist mismatch at chunk 12";
  job["items"][0]["verify_failures"] = 3;
  EXPECT_EQ(jobFailureText(job),
            "mirror job 7 failed: 1 of 2 files failed\n"
            "  failed https://swcdn.apple.com/content/downloads/1/InstallAssistant.pkg: chunklist mismatch at "
            "chunk 12 (3 verify failures)\n");
  job["state"] = "cancelled";  // a state this orchardctl does not know ends the watch too
  job.erase("reason");
  EXPECT_EQ(jobFailureText(job).substr(0, jobFailureText(job).find('\n')),
            "mirror job 7 ended in state cancelled: no reason given");
}

TEST(AppleMirrorJob, WaitingSaysWhyAndWhatToDo) {
  json job = runningJob();
  job["state"] = "waiting";
  job["reason"] = "outside apple.mirror_window 22:00-06:00 (opens in 3h10m)";
  EXPECT_EQ(jobWaitingText(job),
            "mirror job 7 is waiting: outside apple.mirror_window 22:00-06:00 (opens in 3h10m)\n"
            "it starts by itself when the window opens; follow it with `orchardctl apple mirrors`, or wait here "
            "with --wait-window\n");
}

TEST(AppleMirrorJob, NextStepPerState) {
  struct Row {
    const char* state;
    bool waitWindow;
    MirrorNext next;
  } rows[] = {
      {"queued", false, MirrorNext::Poll},     {"running", false, MirrorNext::Poll},
      {"waiting", false, MirrorNext::Waiting}, {"waiting", true, MirrorNext::Poll},
      {"done", false, MirrorNext::Done},       {"done", true, MirrorNext::Done},
      {"failed", false, MirrorNext::Failed},   {"failed", true, MirrorNext::Failed},
      {"cancelled", false, MirrorNext::Failed}, {"", false, MirrorNext::Failed},
  };
  for (const auto& r : rows)
    EXPECT_EQ(mirrorNext(json{{"state", r.state}}, r.waitWindow), r.next) << r.state << " " << r.waitWindow;
  EXPECT_EQ(mirrorNext(json{{"state", 3}}, false), MirrorNext::Failed);
  EXPECT_EQ(mirrorNext(json::object(), true), MirrorNext::Failed);
  EXPECT_STREQ(mirrorNextName(MirrorNext::Waiting), "waiting");
}

TEST(AppleMirrorJob, ProgressLinesCarryTheBoxsRateEtaAndFile) {
  JobProgress p = jobProgress(runningJob());
  EXPECT_EQ(p.done, 268435456u);
  EXPECT_EQ(p.total, 1073741824u);
  ASSERT_TRUE(p.reported.percent && p.reported.rate && p.reported.etaSeconds);
  EXPECT_EQ(p.reported.note, "InstallAssistant.pkg");

  FakeClock clock;
  Progress plain(stdout, false, clock, "mirror");
  Progress bar(stdout, true, clock, "mirror");
  // The box's rate and ETA, not the ones this process would compute from
  // its own clock (3 s elapsed would make 85.3 MiB/s).
  EXPECT_EQ(plain.describe(p.done, p.total, 3000, false, p.reported),
            "mirror: 256.0 MiB of 1.00 GiB (25%), 10.0 MiB/s, ETA 1m17s, InstallAssistant.pkg");
  EXPECT_EQ(bar.describe(p.done, p.total, 3000, false, p.reported),
            "mirror 256.0 MiB / 1.00 GiB [######------------------] 25%  10.0 MiB/s  ETA 1m17s  InstallAssistant.pkg");
  // Without a reported percent: from the bytes; without anything yet, 0%, not 100%.
  json job = runningJob();
  job.erase("percent");
  job["done_bytes"] = 536870912;
  EXPECT_NE(plain.describe(536870912, 1073741824, 3000, false, jobProgress(job).reported).find("(50%)"),
            std::string::npos);
  JobProgress empty = jobProgress(json{{"state", "queued"}});
  EXPECT_EQ(plain.describe(empty.done, empty.total, 0, false, empty.reported), "mirror: 0 B of 0 B (0%), -, ETA -");
}

TEST(AppleOsVersions, TableThenSourceLine) {
  json a = json::parse(R"({"source": "https://gdmf.apple.com/v2/pmv", "fetched_at": "2024-10-04T06:00:00Z",
    "stale": true, "last_attempt": {"time": "2024-10-05T06:00:00Z", "ok": false, "error": "connection refused"},
    "releases": [
      {"set": "PublicAssetSets", "platform": "macOS", "version": "15.0.1", "build": "24A348",
       "posting_date": "2024-10-03", "expiration_date": "2025-01-01", "supported_devices": ["J274AP", "J293AP"]},
      {"set": "AssetSets", "platform": "macOS", "version": "14.7", "build": "23H124",
       "posting_date": "2024-09-16", "expiration_date": null, "supported_devices": []}]})");
  EXPECT_EQ(osVersionsText(a),
            "SET              PLATFORM  VERSION  BUILD   POSTED      EXPIRES     DEVICES\n"
            "PublicAssetSets  macOS     15.0.1   24A348  2024-10-03  2025-01-01        2\n"
            "AssetSets        macOS     14.7     23H124  2024-09-16  -                 0\n"
            "source https://gdmf.apple.com/v2/pmv, fetched 2024-10-04T06:00:00Z, stale; last attempt "
            "2024-10-05T06:00:00Z failed: connection refused\n");
  a["stale"] = false;
  a["last_attempt"] = {{"time", "2024-10-05T06:00:00Z"}, {"ok", true}, {"error", nullptr}};
  a["releases"] = json::array();
  EXPECT_EQ(osVersionsText(a), "no OS releases\nsource https://gdmf.apple.com/v2/pmv, fetched 2024-10-04T06:00:00Z, fresh\n");
}

TEST(Prewarm, ListTable) {
  json a = json::parse(R"({"prewarm": [
    {"name": "sequoia", "urls": ["http://swcdn.apple.com/a.pkg"], "products": ["062-78825", "052-15137"],
     "window": "22:00-06:00", "interval": 21600, "updated_at": "2024-10-04T08:00:00Z", "state": "idle",
     "coverage_percent": 80},
    {"name": "x", "urls": [], "products": [], "interval": 90, "updated_at": 1728028800}]})");
  EXPECT_EQ(prewarmListText(a),
            "NAME     URLS  PRODUCTS  WINDOW       INTERVAL  STATE  COVERAGE  UPDATED\n"
            "sequoia     1         2  22:00-06:00        6h  idle        80%  2024-10-04T08:00:00Z\n"
            "x           0         0  -                 90s  -             -  2024-10-04T08:00:00Z\n");
  EXPECT_EQ(prewarmListText(json{{"prewarm", json::array()}}), "no prewarm lists\n");
}

TEST(Prewarm, OneListWithItems) {
  json l = json::parse(R"({"name": "sequoia", "urls": ["http://swcdn.apple.com/a.pkg"], "products": ["062-78825"],
    "window": "22:00-06:00", "interval": 5400, "updated_at": "2024-10-04T08:00:00Z", "state": "waiting",
    "reason": "outside the window", "coverage_percent": 50,
    "last_run": {"started_at": "2024-10-03T22:00:00Z", "ok": true, "fetched": 2},
    "items": [{"url": "http://swcdn.apple.com/a.pkg", "size": 2048, "state": "complete",
               "held": {"state": "complete", "bytes": 2048, "percent": 100}},
              {"url": "http://swcdn.apple.com/b.pkg", "size": 4096, "state": "failed", "reason": "404 at the origin",
               "held": {"state": "absent", "bytes": 0, "percent": 0}}]})");
  EXPECT_EQ(prewarmText(l),
            "prewarm sequoia\n"
            "  window    22:00-06:00\n"
            "  interval  90m\n"
            "  updated   2024-10-04T08:00:00Z\n"
            "  state     waiting (outside the window)\n"
            "  coverage  50%\n"
            "  last run  fetched 2, ok true, started_at 2024-10-03T22:00:00Z\n"  // keys in JSON object order
            "  urls      (1)\n"
            "    http://swcdn.apple.com/a.pkg\n"
            "  products  (1)\n"
            "    062-78825\n"
            "STATE     HELD      SIZE  URL                           REASON\n"
            "complete  100%  2.00 KiB  http://swcdn.apple.com/a.pkg  -\n"
            "failed      0%  4.00 KiB  http://swcdn.apple.com/b.pkg  404 at the origin\n");
  json bare = {{"name", "n"}, {"urls", json::array()}, {"products", json::array()}};
  EXPECT_EQ(prewarmText(bare),
            "prewarm n\n  window    any time\n  interval  -\n  updated   -\n  urls      (0)\n  products  (0)\n");
}

TEST(AppleView, MistypedFieldsRenderAsDashes) {
  // Every value of the wrong type, or a document that is not an object at all.
  json bad = json::parse(R"({"catalog_url": 5, "loaded_at": [], "matched": -3, "products": [
    {"id": null, "kind": {}, "title": [1], "size": "big", "held_percent": -5, "post_date": 1.5, "mirror": false},
    "not an object", 7]})");
  std::string text;
  ASSERT_NO_THROW(text = productsText(bad));
  EXPECT_NE(text.find("catalog 5, loaded -: 3 products match"), std::string::npos) << text;
  EXPECT_NE(text.find("\n-   -     -      -        -      -          -     -  false\n"
                      "-   -     -      -        -      -          -     -  -\n"
                      "-   -     -      -        -      -          -     -  -\n"),
            std::string::npos)
      << text;
  for (const json& doc : {json(nullptr), json::array(), json("x"), json::object(), bad}) {
    EXPECT_NO_THROW(productText(doc));
    EXPECT_NO_THROW(mirrorsText(doc));
    EXPECT_NO_THROW(jobText(doc));
    EXPECT_NO_THROW(jobFailureText(doc));
    EXPECT_NO_THROW(jobWaitingText(doc));
    EXPECT_NO_THROW(osVersionsText(doc));
    EXPECT_NO_THROW(prewarmListText(doc));
    EXPECT_NO_THROW(prewarmText(doc));
    EXPECT_NO_THROW(jobProgress(doc));
  }
  json job = {{"rate", -1}, {"eta_seconds", "soon"}, {"percent", 250}, {"done_bytes", 1e300}, {"current", 3}};
  JobProgress p = jobProgress(job);
  EXPECT_EQ(p.done, 0u);
  EXPECT_EQ(p.reported.percent, 100);
  EXPECT_FALSE(p.reported.rate);
  EXPECT_FALSE(p.reported.etaSeconds);
  EXPECT_EQ(p.reported.note, "");
}

TEST(AppleView, DatesTimesAndFileNames) {
  EXPECT_EQ(dateOf(json("2024-08-07T17:00:00Z")), "2024-08-07");
  EXPECT_EQ(dateOf(json("2024-08-07")), "2024-08-07");
  EXPECT_EQ(dateOf(json(1723050000)), "2024-08-07");
  EXPECT_EQ(dateOf(json("soon")), "soon");
  EXPECT_EQ(dateOf(json("")), "-");
  EXPECT_EQ(dateOf(json(nullptr)), "-");
  EXPECT_EQ(timeOf(json(1723050000)), "2024-08-07T17:00:00Z");
  EXPECT_EQ(timeOf(json("2024-08-07T17:00:00Z")), "2024-08-07T17:00:00Z");
  EXPECT_EQ(timeOf(json(true)), "-");
  EXPECT_EQ(fileName("https://swcdn.apple.com/content/downloads/1/InstallAssistant.pkg"), "InstallAssistant.pkg");
  EXPECT_EQ(fileName("https://swcdn.apple.com/a/b.pkg?source=x#y"), "b.pkg");
  EXPECT_EQ(fileName("https://swcdn.apple.com/a/dir/"), "dir");
  EXPECT_EQ(fileName("plain"), "plain");
  EXPECT_EQ(fileName(""), "");
}

TEST(AppleView, IntervalWindowAndDigestChecks) {
  struct Row {
    const char* text;
    int64_t seconds;  // 0: refused
  } rows[] = {{"6h", 21600}, {"90m", 5400}, {"1h30m", 5400}, {"1d", 86400}, {"3600", 3600}, {"45s", 45},
              {"0", 0},      {"500ms", 0},  {"1500ms", 0},   {"-1h", 0},    {"6x", 0},      {"", 0},
              {"1.5h", 0},   {"99999999999999999999h", 0}};
  for (const auto& r : rows) {
    std::string why;
    auto got = parseInterval(r.text, &why);
    if (r.seconds == 0) {
      EXPECT_FALSE(got) << r.text;
      EXPECT_NE(why.find(std::string("\"") + r.text + "\""), std::string::npos) << why;
    } else {
      ASSERT_TRUE(got) << r.text << ": " << why;
      EXPECT_EQ(*got, r.seconds) << r.text;
    }
  }
  EXPECT_TRUE(validWindow("22:00-06:00"));
  EXPECT_TRUE(validWindow("00:00-23:59"));
  EXPECT_FALSE(validWindow("22:00-22:00"));
  EXPECT_FALSE(validWindow("24:00-06:00"));
  EXPECT_FALSE(validWindow("22-06"));
  EXPECT_FALSE(validWindow(""));
  EXPECT_TRUE(validSha256(std::string(64, 'a')));
  EXPECT_TRUE(validSha256(std::string(32, 'F') + std::string(32, '0')));
  EXPECT_FALSE(validSha256(std::string(63, 'a')));
  EXPECT_FALSE(validSha256(std::string(63, 'a') + "g"));
}

}  // namespace
}  // namespace orchard::ctl
