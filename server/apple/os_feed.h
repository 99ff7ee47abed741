// OsFeed: Apple's OS-version feed (apple.os_feed_url, gdmf.apple.com/v2/pmv)
// mirrored on a schedule, for GET /api/v1/apple/os-versions and for the
// check of OS targets (PUT /api/v1/os-targets/{ring}).
//
// The last good copy wins. A fetch that fails (transport, TLS, a status
// other than 200, a body past kMaxFeedBytes), does not parse
// (catalog/apple/os_versions.h), or lists no macOS release in the public
// or MDM set never replaces it: Apple has served empty lists, and tools
// that believed them told supported Macs they were obsolete. The attempt
// is recorded (time, outcome, reason), counted by outcome
// (orchard_apple_os_feed_fetches_total{result}) and logged once: a failure
// is logged when it starts or its reason changes, a recovery once. A good
// copy is saved to the box's database (catalog/apple/os_feed_store.h) and
// read back at start, so a restart serves it before the first fetch.
//
// Schedule: the first fetch runs kFirstFetchDelayMs after start(), unless
// the stored copy came from the same URL less than apple.os_feed_interval
// ago (then when that interval is up); then every apple.os_feed_interval
// after a good fetch, and after min(interval, kRetryMs) after a failed one.
// configChanged() (a reload) re-reads the interval, and fetches at once
// when the URL or apple.feed_ca_file changed. An empty apple.os_feed_url
// fetches nothing. stop() wakes the thread (a condition variable, never a
// sleep) and aborts a transfer under way (curl's progress callback, at
// least once a second).
//
// TLS (fetchFeedWithCurl): the system CAs plus the certificates of
// apple.feed_ca_file, for this fetch only (the proxy's HTTPS origins never
// see them); upstream.resolve applies to the feed's host (curl's
// CONNECT_TO: the name still decides SNI, Host and the certificate check).
// No redirect is followed, no proxy from the environment is used.
//
// Threads: one of its own; state() and fetches() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "catalog/apple/os_feed_store.h"
#include "catalog/apple/os_versions.h"
#include "config/config.h"
#include "server/http/route_table.h"

namespace orchard::server {

struct ServerContext;

// What one fetch of the feed needs, from the running config.
struct FeedFetchRequest {
  std::string url;
  std::string caFile;  // apple.feed_ca_file, "" = the system CAs only
  std::map<std::string, config::ListenAddress> resolve;  // upstream.resolve
  int64_t connectTimeoutMs = 10'000;
  int64_t timeoutMs = 60'000;  // the whole transfer
  uint64_t maxBytes = 0;
};

struct FeedFetchResult {
  std::string body;   // the 200's body
  std::string error;  // not empty: the fetch failed, in words ("HTTP 503", curl's TLS message, ...)
};

// Blocking; `stop` (may be null) true aborts the transfer.
using FeedFetcher = std::function<FeedFetchResult(const FeedFetchRequest&, const std::atomic<bool>* stop)>;
FeedFetchResult fetchFeedWithCurl(const FeedFetchRequest& request, const std::atomic<bool>* stop);

class OsFeed {
 public:
  static constexpr uint64_t kMaxFeedBytes = 8u << 20;
  static constexpr int64_t kFirstFetchDelayMs = 1000;
  static constexpr int64_t kRetryMs = 15 * 60 * 1000;

  // The outcome of one attempt; the `result` label of the fetch counter.
  enum class Outcome : uint8_t { Ok, FetchError, Invalid, Empty };
  static constexpr size_t kOutcomes = 4;
  static const char* outcomeLabel(Outcome o);  // "ok", "fetch_error", "invalid", "empty"

  struct Attempt {
    int64_t time = 0;  // Unix seconds (the box's clock)
    Outcome outcome = Outcome::Ok;
    std::string error;  // "" when ok
  };
  // A consistent copy of what the feed holds.
  struct State {
    std::shared_ptr<const catalog::apple::OsVersionFeed> feed;  // null until a good copy exists
    std::string source;      // the URL the good copy came from
    int64_t fetchedAt = 0;   // when (Unix seconds)
    std::optional<Attempt> lastAttempt;  // the latest attempt since start, if any
    int64_t intervalMs = 0;  // apple.os_feed_interval now
    // The copy is stale when the latest attempt failed, or it is older than
    // twice the interval (the schedule has not refreshed it).
    bool stale(int64_t nowSeconds) const;
  };

  // `ctx` (its clock and config snapshot) and `store` (may be null: nothing
  // persisted) outlive the feed. `fetcher` is fetchFeedWithCurl but in tests.
  OsFeed(const ServerContext* ctx, catalog::apple::OsFeedStore* store, FeedFetcher fetcher = fetchFeedWithCurl);
  ~OsFeed();  // stop()
  OsFeed(const OsFeed&) = delete;
  OsFeed& operator=(const OsFeed&) = delete;

  // Reads the stored copy into memory (a copy that no longer parses is
  // logged and dropped). The caller's thread, before start().
  void load();
  void start();
  void stop();  // idempotent
  // The config was reloaded: see the schedule above. Any thread.
  void configChanged();
  // curl_global_init, once per process (start() calls it).
  static void globalInit();

  State state() const;
  uint64_t fetches(Outcome o) const { return fetches_[static_cast<size_t>(o)].load(std::memory_order_relaxed); }

  // One attempt now with the running config, and its decision (the thread's
  // work; tests call it directly). nullopt when apple.os_feed_url is empty.
  std::optional<Outcome> fetchOnce();

 private:
  using Steady = std::chrono::steady_clock;
  config::Config config() const;
  void run(Steady::time_point due);
  std::chrono::milliseconds pauseLocked() const;  // after the latest attempt, until the next

  const ServerContext* ctx_;
  catalog::apple::OsFeedStore* store_;
  FeedFetcher fetcher_;
  std::array<std::atomic<uint64_t>, kOutcomes> fetches_{};
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  State state_;            // intervalMs unused here (state() fills it)
  std::string usedUrl_, usedCa_;  // what the latest attempt (or the stored copy) used
  int64_t intervalMs_ = 0;        // apple.os_feed_interval as the thread last read it
  Steady::time_point attemptedAt_;
  bool attempted_ = false;
  bool kicked_ = false;    // configChanged() since the thread last looked
  std::thread thread_;
};

// GET /api/v1/apple/os-versions[?platform=&set=] (scope read):
//   {"source", "fetched_at", "last_attempt": {"time", "ok", "result", "error"} | null,
//    "stale", "skipped", "releases": [{"set", "platform", "version", "build",
//    "posting_date", "expiration_date", "supported_devices", "version_extra"}]}
// Times are RFC 3339 UTC. 503 {"error", "detail", "last_attempt"} before any
// good copy (or with apple.os_feed_url empty and nothing stored).
// ctx->osFeed is read per request.
void registerOsFeedRoutes(RouteTable& routes, const ServerContext* ctx);

// The route's answer for `state` (pure: the route and the tests call it).
// `platform` and `set` filter the releases when not empty.
std::string osVersionsJson(const OsFeed::State& state, int64_t nowSeconds, std::string_view platform,
                           std::string_view set);

}  // namespace orchard::server
