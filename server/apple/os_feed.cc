// OsFeed (see os_feed.h): the schedule, the keep-the-last-good-copy
// decision, and the libcurl fetch with the feed's own extra CAs. This file
// is the one place the daemon includes curl's headers; the route and its
// JSON are in os_feed_routes.cc.
#include "server/apple/os_feed.h"

#include "server/apple/box_fetch.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "catalog/targeting.h"
#include "common/log.h"
#include "server/context.h"

namespace orchard::server {

namespace {

using catalog::apple::OsVersionFeed;

std::string timeText(int64_t t) { return catalog::formatRfc3339(t).value_or(std::to_string(t)); }

// ---- the libcurl fetch ----

// The certificates of apple.feed_ca_file, owned; freed with the holder.
struct ExtraCas {
  std::vector<X509*> certs;
  ExtraCas() = default;
  ExtraCas(const ExtraCas&) = delete;
  ExtraCas& operator=(const ExtraCas&) = delete;
  ~ExtraCas() {
    for (X509* c : certs) X509_free(c);
  }
};

// Reads every PEM certificate of `path`; "" on success, else why not.
std::string loadCas(const std::string& path, ExtraCas* out) {
  errno = 0;
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (!bio) {
    const int e = errno;
    ERR_clear_error();
    return "apple.feed_ca_file " + path + ": cannot be read" + (e ? std::string(" (") + std::strerror(e) + ")" : "");
  }
  while (X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out->certs.push_back(c);
  BIO_free(bio);
  ERR_clear_error();  // the end of the file reads as an error
  if (out->certs.empty()) return "apple.feed_ca_file " + path + ": holds no PEM certificate";
  return "";
}

// CURLOPT_SSL_CTX_FUNCTION: adds the extra CAs to this connection's store
// (the handle fetches the feed's host only: no redirects, no proxy).
CURLcode addCas(CURL*, void* sslCtx, void* user) {
  auto* cas = static_cast<const ExtraCas*>(user);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(sslCtx));
  for (X509* c : cas->certs) X509_STORE_add_cert(store, c);  // a duplicate is refused, harmlessly
  ERR_clear_error();
  return CURLE_OK;
}

struct Sink {
  std::string* body;
  uint64_t maxBytes;
  bool tooBig = false;
  const std::atomic<bool>* stop;
};

size_t onBody(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t len = size * n;
  if (s->body->size() + len > s->maxBytes) {
    s->tooBig = true;
    return 0;  // CURLE_WRITE_ERROR
  }
  s->body->append(data, len);
  return len;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<Sink*>(user);
  return s->stop && s->stop->load(std::memory_order_relaxed) ? 1 : 0;
}

// The URL's host, lower-case ("" when curl cannot parse the URL).
std::string hostOf(const std::string& url) {
  CURLU* u = curl_url();
  if (!u) return "";
  std::string host;
  char* h = nullptr;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
    host = h;
    curl_free(h);
  }
  curl_url_cleanup(u);
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return host;
}

}  // namespace

FeedFetchResult fetchFeedWithCurl(const FeedFetchRequest& req, const std::atomic<bool>* stop) {
  FeedFetchResult out;
  ExtraCas cas;
  if (!req.caFile.empty()) {
    out.error = loadCas(req.caFile, &cas);
    if (!out.error.empty()) return out;
  }
  CURL* c = curl_easy_init();
  if (!c) {
    out.error = "cannot make a libcurl handle";
    return out;
  }
  curl_slist* connectTo = nullptr;
  if (auto it = req.resolve.find(hostOf(req.url)); it != req.resolve.end()) {
    const config::ListenAddress& a = it->second;
    const std::string to = it->first + "::" + (a.v6 ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
    connectTo = curl_slist_append(nullptr, to.c_str());
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  Sink sink{&out.body, req.maxBytes, false, stop};
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROXY, "");  // never a proxy from the environment
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "orchard");
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // gzip and friends; the sink bounds the decoded bytes
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connectTimeoutMs));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeoutMs));
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(req.maxBytes));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!cas.certs.empty()) {
    // No shared CA store: each connection loads the system CAs, then gets ours.
    curl_easy_setopt(c, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, addCas);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &cas);
  }
  if (connectTo) curl_easy_setopt(c, CURLOPT_CONNECT_TO, connectTo);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, onProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &sink);

  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  curl_slist_free_all(connectTo);
  if (sink.tooBig || rc == CURLE_FILESIZE_EXCEEDED) {
    out.error = "the answer is larger than " + std::to_string(req.maxBytes >> 20) + " MiB";
  } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
    out.error = "stopped";
  } else if (rc != CURLE_OK) {
    out.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  } else if (status != 200) {
    out.error = "HTTP " + std::to_string(status);
  }
  if (!out.error.empty()) out.body.clear();
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
