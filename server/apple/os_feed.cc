// OsFeed (see os_feed.h): the schedule, the keep-the-last-good-copy
// decision, and the fetch (server/http/curl_request.h) with the feed's own
// extra CAs; the route and its
// JSON are in os_feed_routes.cc.
#include "server/apple/os_feed.h"

#include "server/apple/box_fetch.h"


#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "catalog/targeting.h"
#include "common/log.h"
#include "server/context.h"
#include "server/http/curl_request.h"

namespace orchard::server {

namespace {

using catalog::apple::OsVersionFeed;

std::string timeText(int64_t t) { return catalog::formatRfc3339(t).value_or(std::to_string(t)); }

// ---- the fetch ----

}  // namespace

FeedFetchResult fetchFeedWithCurl(const FeedFetchRequest& req, const std::atomic<bool>* stop) {
  CurlRequest c;
  c.url = req.url;
  c.caFile = req.caFile;
  c.caFileKey = "apple.feed_ca_file";
  c.resolve = req.resolve;
  c.connectTimeoutMs = req.connectTimeoutMs;
  c.timeoutMs = req.timeoutMs;
  c.maxBytes = req.maxBytes;
  c.stop = stop;
  CurlAnswer a = curlRequest(c);
  FeedFetchResult out;
  if (a.tooBig) out.error = "the answer is larger than " + std::to_string(req.maxBytes >> 20) + " MiB";
  else if (!a.error.empty()) out.error = a.error;
  else if (a.status != 200) out.error = "HTTP " + std::to_string(a.status);
  if (out.error.empty()) out.body = std::move(a.body);
  return out;
}

// ---- OsFeed ----

const char* OsFeed::outcomeLabel(Outcome o) {
  switch (o) {
    case Outcome::Ok: return "ok";
    case Outcome::FetchError: return "fetch_error";
    case Outcome::Invalid: return "invalid";
    case Outcome::Empty: return "empty";
  }
  return "?";
}

bool OsFeed::State::stale(int64_t nowSeconds) const {
  if (lastAttempt && lastAttempt->outcome != Outcome::Ok) return true;
  return feed && intervalMs > 0 && nowSeconds - fetchedAt > 2 * (intervalMs / 1000);
}

OsFeed::OsFeed(const ServerContext* ctx, catalog::apple::OsFeedStore* store, FeedFetcher fetcher)
    : ctx_(ctx), store_(store), fetcher_(std::move(fetcher)) {}

OsFeed::~OsFeed() { stop(); }

void OsFeed::globalInit() { curlGlobalInit(); }

config::Config OsFeed::config() const {
  if (ctx_->control)
    if (auto snap = ctx_->control->snapshot()) return snap->config;
  return ctx_->startConfig;
}

void OsFeed::load() {
  if (!store_) return;
  auto stored = store_->load();
  if (!stored) {
    OLOG_WARN("apple.os_feed: the stored copy cannot be read (%s): none until the next good fetch",
              stored.error().message().c_str());
    return;
  }
  if (!stored.value()) return;
  const catalog::apple::StoredOsFeed& s = *stored.value();
  auto parsed = catalog::apple::parseOsVersionFeed(s.raw);
  if (!parsed || parsed->macReleases() == 0) {
    OLOG_WARN("apple.os_feed: the stored copy no longer parses (%s): none until the next good fetch",
              parsed ? "no macOS release" : parsed.error().message().c_str());
    return;
  }
  const int64_t interval = config().appleOsFeedIntervalMs;
  std::lock_guard lock(mu_);
  intervalMs_ = interval;
  state_.feed = std::make_shared<const OsVersionFeed>(std::move(parsed.value()));
  state_.source = s.source;
  state_.fetchedAt = s.fetchedAt;
  usedUrl_ = s.source;
  OLOG_INFO("apple.os_feed: serving the copy of %s fetched at %s (%zu releases) until the next fetch", s.source.c_str(),
            timeText(s.fetchedAt).c_str(), state_.feed->releases.size());
}

void OsFeed::start() {
  globalInit();
  const config::Config cfg = config();
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  usedCa_ = cfg.appleFeedCaFile;
  intervalMs_ = cfg.appleOsFeedIntervalMs;
  Steady::time_point due = Steady::now() + std::chrono::milliseconds(kFirstFetchDelayMs);
  if (state_.feed && state_.source == cfg.appleOsFeedUrl) {
    // A copy of this URL younger than the interval is refreshed when it is due.
    const int64_t ageMs = (ctx_->clock->nowSeconds() - state_.fetchedAt) * 1000;
    if (ageMs >= 0 && cfg.appleOsFeedIntervalMs - ageMs > kFirstFetchDelayMs)
      due = Steady::now() + std::chrono::milliseconds(cfg.appleOsFeedIntervalMs - ageMs);
  }
  thread_ = std::thread([this, due] { run(due); });
}

void OsFeed::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OsFeed::configChanged() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

OsFeed::State OsFeed::state() const {
  std::lock_guard lock(mu_);
  State s = state_;
  s.intervalMs = intervalMs_;
  return s;
}

// Called with mu_ held.
std::chrono::milliseconds OsFeed::pauseLocked() const {
  const int64_t interval = std::max<int64_t>(intervalMs_, 1000);
  const bool failed = state_.lastAttempt && state_.lastAttempt->outcome != Outcome::Ok;
  return std::chrono::milliseconds(failed ? std::min(interval, kRetryMs) : interval);
}

void OsFeed::run(Steady::time_point due) {
  std::unique_lock lock(mu_);
  for (;;) {
    const bool woken = cv_.wait_until(lock, due, [this] { return stopping_.load() || kicked_; });
    if (stopping_) return;
    if (woken) {
      kicked_ = false;
      lock.unlock();
      const config::Config cfg = config();
      lock.lock();
      intervalMs_ = cfg.appleOsFeedIntervalMs;
      if (cfg.appleOsFeedUrl != usedUrl_ || cfg.appleFeedCaFile != usedCa_) due = Steady::now();
      else if (attempted_) due = attemptedAt_ + pauseLocked();
      continue;
    }
    lock.unlock();
    (void)fetchOnce();
    lock.lock();
    due = attemptedAt_ + pauseLocked();
  }
}

std::optional<OsFeed::Outcome> OsFeed::fetchOnce() {
  const config::Config cfg = config();
  {
    std::lock_guard lock(mu_);
    usedUrl_ = cfg.appleOsFeedUrl;
    usedCa_ = cfg.appleFeedCaFile;
    intervalMs_ = cfg.appleOsFeedIntervalMs;
    attemptedAt_ = Steady::now();
    attempted_ = true;
  }
  if (cfg.appleOsFeedUrl.empty()) return std::nullopt;
  FeedFetchRequest req;
  req.url = cfg.appleOsFeedUrl;
  req.caFile = cfg.appleFeedCaFile;
  req.resolve = cfg.upstreamResolve;
  if (cfg.connectTimeoutMs > 0) req.connectTimeoutMs = cfg.connectTimeoutMs;
  req.maxBytes = kMaxFeedBytes;
  FeedFetchResult got = fetcher_(req, &stopping_);
  if (stopping_) return std::nullopt;  // cut short by stop(): not an attempt to judge the feed by

  Attempt a;
  a.time = ctx_->clock->nowSeconds();
  std::shared_ptr<const OsVersionFeed> fresh;
  if (!got.error.empty()) {
    a.outcome = Outcome::FetchError;
    a.error = std::move(got.error);
  } else if (auto parsed = catalog::apple::parseOsVersionFeed(got.body); !parsed) {
    a.outcome = Outcome::Invalid;
    a.error = std::string("the answer is not a usable feed: ") + parsed.error().context;
  } else if (parsed->macReleases() == 0) {
    a.outcome = Outcome::Empty;
    a.error = "the feed lists no macOS release in PublicAssetSets or AssetSets";
  } else {
    fresh = std::make_shared<const OsVersionFeed>(std::move(parsed.value()));
    if (store_)
      if (auto w = store_->save({got.body, a.time, req.url}); !w)
        OLOG_WARN("apple.os_feed: saving the fetched copy: %s (served from memory until a restart)",
                  w.error().message().c_str());
  }

  fetches_[static_cast<size_t>(a.outcome)].fetch_add(1, std::memory_order_relaxed);
  std::optional<Attempt> prev;
  std::shared_ptr<const OsVersionFeed> kept;
  int64_t keptAt = 0;
  {
    std::lock_guard lock(mu_);
    prev = state_.lastAttempt;
    state_.lastAttempt = a;
    if (fresh) {
      state_.feed = fresh;
      state_.source = req.url;
      state_.fetchedAt = a.time;
    }
    kept = state_.feed;
    keptAt = state_.fetchedAt;
  }
  // Logged once: when fetches start failing or the reason changes, and at the recovery.
  if (a.outcome == Outcome::Ok) {
    if (!prev || prev->outcome != Outcome::Ok)
      OLOG_INFO("apple.os_feed: %s: %zu releases, %zu of macOS in the public and MDM sets%s", req.url.c_str(),
                fresh->releases.size(), fresh->macReleases(), prev ? " (fetches work again)" : "");
  } else if (!prev || prev->outcome == Outcome::Ok || prev->error != a.error) {
    const std::string keeping =
        kept ? "kept the copy fetched at " + timeText(keptAt) : std::string("no good copy yet (the API answers 503)");
    OLOG_WARN("apple.os_feed: %s: %s: %s", req.url.c_str(), a.error.c_str(), keeping.c_str());
  }
  return a.outcome;
}

}  // namespace orchard::server
