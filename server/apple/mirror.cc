#include "server/apple/mirror.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>

#include "catalog/apple/chunklist.h"
#include "catalog/digest.h"
#include "common/log.h"
#include "common/time_window.h"
#include "server/admin/ops_routes.h"
#include "server/apple/apple_service.h"
#include "server/context.h"

namespace orchard::server {

using catalog::apple::JobState;
using catalog::apple::MirrorItem;
using catalog::apple::MirrorJob;
using catalog::apple::PrewarmList;

namespace {

constexpr int64_t kDefaultPrewarmIntervalMs = 6LL * 3600 * 1000;
constexpr int kTransportTries = 3;         // an origin or box error is tried this often before the item fails
constexpr int64_t kRetryDelayMs = 2000;    // doubled per try
constexpr int64_t kWindowPollMs = 1000;  // how often waiting jobs look at their window again (one thread, cheap)

std::string prewarmId(const std::string& name) { return "prewarm:" + name; }

struct Sha256 {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Sha256() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx); }
  void update(const char* d, size_t n) { EVP_DigestUpdate(ctx, d, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    return catalog::hexLower(md, len);
  }
};

}  // namespace

MirrorManager::MirrorManager(AppleService* apple, std::shared_ptr<db::Database> db)
    : apple_(apple), records_(std::move(db)) {}

MirrorManager::~MirrorManager() { stop(); }

int64_t MirrorManager::nowSeconds() const { return apple_->context()->clock->nowSeconds(); }

int64_t MirrorManager::nowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void MirrorManager::start() {
  {
    std::lock_guard lock(mu_);
    jobs_ = records_.jobs();
    prewarm_ = records_.prewarmLists();
    std::sort(jobs_.begin(), jobs_.end(),
              [](const MirrorJob& a, const MirrorJob& b) { return a.createdAt < b.createdAt; });
    size_t resumed = 0;
    for (MirrorJob& j : jobs_) {
      if (j.state == JobState::Running || j.state == JobState::Waiting) {
        j.state = JobState::Queued;  // the run loop decides again
        ++resumed;
      }
    }
    if (resumed) OLOG_INFO("apple: %zu mirror job(s) were unfinished at the last stop: resuming them", resumed);
    stopping_ = false;
  }
  thread_ = std::thread([this] { run(); });
}

void MirrorManager::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  stopTransfer_.store(true);
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MirrorManager::save(const MirrorJob& job) {
  if (auto r = records_.putJob(job); !r)
    OLOG_WARN("apple: cannot record mirror job %s: %s", job.id.c_str(), r.error().message().c_str());
}

std::string MirrorManager::windowFor(const MirrorJob& job) const {
  if (job.kind == "prewarm") {
    const std::string name = job.id.substr(8);
    for (const PrewarmList& l : prewarm_)
      if (l.name == name && !l.window.empty()) return l.window;
  }
  auto snap = apple_->context()->control ? apple_->context()->control->snapshot() : nullptr;
  return snap ? snap->config.appleMirrorWindow : std::string();
}

bool MirrorManager::windowOpenFor(const std::string& window) const {
  if (window.empty()) return true;
  auto w = TimeWindow::parse(window);
  if (!w) return true;  // validated at load; an unparsable one never blocks
  return w->contains(localMinuteOfDay(nowSeconds()));
}

bool MirrorManager::windowOpen() const {
  auto snap = apple_->context()->control ? apple_->context()->control->snapshot() : nullptr;
  return windowOpenFor(snap ? snap->config.appleMirrorWindow : std::string());
}

Result<MirrorJob> MirrorManager::mirror(const catalog::apple::CatalogProduct& product, int64_t now,
                                        bool* alreadyQueued) {
  *alreadyQueued = false;
  std::lock_guard lock(mu_);
  if (stopping_) return Error{Errc::Closed, 0, "mirror: the box is stopping"};
  MirrorJob job;
  job.id = product.id;
  job.kind = "mirror";
  job.createdAt = now;
  for (const auto& p : product.packages) {
    MirrorItem item;
    item.url = p.url;
    item.size = p.size;
    item.integrityUrl = p.integrityUrl;
    job.items.push_back(std::move(item));
  }
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const MirrorJob& j) { return j.id == product.id; });
  if (it != jobs_.end()) {
    if (it->state == JobState::Queued || it->state == JobState::Running || it->state == JobState::Waiting) {
      *alreadyQueued = true;
      return *it;
    }
    jobs_.erase(it);  // asked again after it ended: a fresh run (bytes already held are hits)
  }
  save(job);
  jobs_.push_back(job);
  kick_ = true;
  cv_.notify_all();
  return job;
}

void MirrorManager::queuePrewarmJob(const PrewarmList& list, int64_t now) {
  // Under mu_. Items: the URLs, then every package of the named products
  // the catalog knows (an unknown product is a failed item that says so).
  MirrorJob job;
  job.id = prewarmId(list.name);
  job.kind = "prewarm";
  job.createdAt = now;
  for (const std::string& u : list.urls) {
    MirrorItem item;
    item.url = u;
    job.items.push_back(std::move(item));
  }
  if (!list.products.empty()) {
    auto cat = apple_->catalogIfLoaded();
    for (const std::string& id : list.products) {
      const catalog::apple::CatalogProduct* p = cat ? cat->catalog.find(id) : nullptr;
      if (!p) {
        MirrorItem item;
        item.url = "apple-product:" + id;
        item.state = JobState::Failed;
        item.reason = cat ? "the catalog has no product " + id : "Apple's catalog is not loaded (yet)";
        job.items.push_back(std::move(item));
        continue;
      }
      for (const auto& pkg : p->packages) {
        MirrorItem item;
        item.url = pkg.url;
        item.size = pkg.size;
        item.integrityUrl = pkg.integrityUrl;
        job.items.push_back(std::move(item));
      }
    }
  }
  // Keep what the last run verified, so a re-run skips bytes still held.
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const MirrorJob& j) { return j.id == job.id; });
  if (it != jobs_.end()) {
    for (MirrorItem& item : job.items) {
      for (const MirrorItem& old : it->items)
        if (old.url == item.url && old.state == JobState::Done && item.state == JobState::Queued) {
          item.sha256 = old.sha256;
          item.state = JobState::Done;
        }
    }
    jobs_.erase(it);
  }
  save(job);
  jobs_.push_back(std::move(job));
}

Result<void> MirrorManager::putPrewarm(PrewarmList list, int64_t now) {
  list.updatedAt = now;
  if (list.intervalMs == 0) list.intervalMs = kDefaultPrewarmIntervalMs;
  if (auto r = records_.putPrewarm(list); !r) return r;
  std::lock_guard lock(mu_);
  auto it = std::find_if(prewarm_.begin(), prewarm_.end(), [&](const PrewarmList& l) { return l.name == list.name; });
  if (it != prewarm_.end()) *it = list;
  else prewarm_.push_back(list);
  queuePrewarmJob(list, now);
  kick_ = true;
  cv_.notify_all();
  return {};
}

Result<void> MirrorManager::removePrewarm(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(prewarm_.begin(), prewarm_.end(), [&](const PrewarmList& l) { return l.name == name; });
  if (it == prewarm_.end()) return Error{Errc::NotFound, 0, "prewarm: no such list"};
  if (auto r = records_.removePrewarm(name); !r) return r;
  prewarm_.erase(it);
  const std::string id = prewarmId(name);
  if (runningId_ == id) stopTransfer_.store(true);
  jobs_.erase(std::remove_if(jobs_.begin(), jobs_.end(), [&](const MirrorJob& j) { return j.id == id; }), jobs_.end());
  (void)records_.removeJob(id);
  return {};
}

std::vector<PrewarmList> MirrorManager::prewarmLists() const {
  std::lock_guard lock(mu_);
  return prewarm_;
}

std::optional<PrewarmList> MirrorManager::prewarm(const std::string& name) const {
  std::lock_guard lock(mu_);
  for (const PrewarmList& l : prewarm_)
    if (l.name == name) return l;
  return std::nullopt;
}

std::vector<JobView> MirrorManager::jobs() const {
  std::lock_guard lock(mu_);
  std::vector<JobView> out;
  for (const MirrorJob& j : jobs_) {
    JobView v;
    v.job = j;
    for (const MirrorItem& i : j.items) {
      v.totalBytes += i.size;
      if (i.state == JobState::Done) v.doneBytes += i.size;
    }
    if (j.id == runningId_ && !progress_.url.empty()) {
      v.current = progress_.url;
      v.doneBytes += progress_.received;
      v.rate = progress_.rate;
      if (v.rate > 1 && v.totalBytes >= v.doneBytes)
        v.etaSeconds = static_cast<int64_t>(static_cast<double>(v.totalBytes - v.doneBytes) / v.rate);
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::optional<JobView> MirrorManager::job(const std::string& id) const {
  for (JobView& v : jobs())
    if (v.job.id == id) return std::move(v);
  return std::nullopt;
}

void MirrorManager::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    kick_ = false;
    const int64_t now = nowSeconds();
    // Lists that name products need Apple's catalog: load it first (off the lock).
    bool needCatalog = false;
    for (const PrewarmList& l : prewarm_) needCatalog = needCatalog || !l.products.empty();
    if (needCatalog && !apple_->catalogIfLoaded() && nowMs() >= nextCatalogTryMs_) {
      lock.unlock();
      auto c = apple_->catalog(false);
      lock.lock();
      if (!c) nextCatalogTryMs_ = nowMs() + 60'000;
      if (stopping_) break;
    }
    // Prewarm lists that are due again.
    for (const PrewarmList& l : prewarm_) {
      auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const MirrorJob& j) { return j.id == prewarmId(l.name); });
      if (it == jobs_.end()) {
        queuePrewarmJob(l, now);
        continue;
      }
      if ((it->state == JobState::Done || it->state == JobState::Failed) &&
          it->finishedAt * 1000 + l.intervalMs <= now * 1000)
        queuePrewarmJob(l, now);
    }
    // The first job that may run now.
    MirrorJob* next = nullptr;
    for (MirrorJob& j : jobs_) {
      if (j.state != JobState::Queued && j.state != JobState::Running && j.state != JobState::Waiting) continue;
      if (!windowOpenFor(windowFor(j))) {
        if (j.state != JobState::Waiting) {
          j.state = JobState::Waiting;
          j.reason = "outside its time window (" + windowFor(j) + ")";
          save(j);
        }
        continue;
      }
      next = &j;
      break;
    }
    if (!next) {
      // Asleep until asked, unless a job waits for its window (looked at
      // every second: the clock may jump) or a prewarm list comes due.
      bool waiting = false;
      for (const MirrorJob& j : jobs_) waiting = waiting || j.state == JobState::Waiting;
      int64_t sleepMs = waiting ? kWindowPollMs : -1;
      for (const PrewarmList& l : prewarm_) {
        auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const MirrorJob& j) { return j.id == prewarmId(l.name); });
        if (it == jobs_.end() || it->finishedAt == 0) continue;
        const int64_t due = std::max<int64_t>(1000, (it->finishedAt - now) * 1000 + l.intervalMs);
        sleepMs = sleepMs < 0 ? due : std::min(sleepMs, due);
      }
      if (sleepMs < 0) cv_.wait(lock, [&] { return stopping_ || kick_; });
      else cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(sleepMs, 60'000)), [&] { return stopping_ || kick_; });
      continue;
    }
    MirrorJob job = *next;
    job.state = JobState::Running;
    job.reason.clear();
    *next = job;
    save(job);
    runningId_ = job.id;
    stopTransfer_.store(false);
    lock.unlock();
    runJob(job);
    lock.lock();
    runningId_.clear();
    progress_ = Progress{};
    auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const MirrorJob& j) { return j.id == job.id; });
    if (it != jobs_.end() && it->createdAt == job.createdAt) {
      *it = job;
      save(job);
    }
  }
}

void MirrorManager::runJob(MirrorJob& job) {
  const std::string window = windowFor(job);
  for (MirrorItem& item : job.items) {
    if (item.state == JobState::Done) {
      // A prewarm re-run: bytes still held are not read again.
      if (job.kind == "prewarm" && apple_->holdingOfUrl(item.url, item.size).state == Holding::State::Complete) continue;
      if (job.kind == "prewarm") item.state = JobState::Queued;
      else continue;
    }
    if (item.state == JobState::Failed) continue;
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) {
          job.state = JobState::Queued;  // resumes at the next start
          return;
        }
      }
      ItemEnd end = fetchItem(item, window);
      if (end == ItemEnd::Done || end == ItemEnd::Failed) break;
      if (end == ItemEnd::Stopped) {
        std::lock_guard lock(mu_);
        if (stopping_) {
          job.state = JobState::Queued;
        } else {
          job.state = JobState::Waiting;
          job.reason = "outside its time window (" + window + ")";
        }
        return;
      }
      // Retry: once more after a verification failure.
    }
    {
      std::lock_guard lock(mu_);
      // Let the API see items as they finish.
      auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const MirrorJob& j) { return j.id == job.id; });
      if (it != jobs_.end() && it->createdAt == job.createdAt) it->items = job.items;
    }
    save(job);
  }
  job.finishedAt = nowSeconds();
  job.state = JobState::Done;
  for (const MirrorItem& item : job.items)
    if (item.state == JobState::Failed) {
      job.state = JobState::Failed;
      job.reason = item.url + ": " + item.reason;
      break;
    }
  if (job.state == JobState::Done) OLOG_INFO("apple: %s %s: every item verified", job.kind.c_str(), job.id.c_str());
  else OLOG_WARN("apple: %s %s failed: %s", job.kind.c_str(), job.id.c_str(), job.reason.c_str());
}

MirrorManager::ItemEnd MirrorManager::fetchItem(MirrorItem& item, const std::string& window) {
  const BoxFetch& fetch = apple_->fetcher();
  auto fail = [&](std::string reason) {
    item.state = JobState::Failed;
    item.reason = std::move(reason);
    return ItemEnd::Failed;
  };
  // A verification failure: drop the object (nobody is handed bytes that
  // failed), then one more try.
  auto mismatch = [&](std::string reason) {
    // The chunklist too: a copy damaged on its way would fail every retry.
    ServerContext* ctx = apple_->context();
    for (const std::string& url : {item.url, item.integrityUrl}) {
      if (url.empty()) continue;
      if (auto key = fetch.cacheKeyText(url); key && ctx->store && ctx->fills)
        (void)purgeKey(*ctx->store, *ctx->fills, cache::CacheKey::fromText(*key));
    }
    ++item.attempts;
    OLOG_WARN("apple: %s: %s (attempt %u)", item.url.c_str(), reason.c_str(), item.attempts);
    if (item.attempts >= 2) return fail(reason + " (again after refetching it)");
    return ItemEnd::Retry;
  };

  std::optional<catalog::apple::Chunklist> chunks;
  if (!item.integrityUrl.empty()) {
    int status = 0;
    auto bytes = fetch.getSmall(item.integrityUrl, catalog::apple::kChunklistMaxBytes, &status);
    if (!bytes) {
      if (status != 0) return fail("chunklist " + item.integrityUrl + ": the box answered " + std::to_string(status));
      return fail("chunklist " + item.integrityUrl + ": " + bytes.error().message());
    }
    auto parsed = catalog::apple::parseChunklist(*bytes);
    if (!parsed) return mismatch(std::string("chunklist does not parse: ") + parsed.error().context);
    if (item.size > 0 && parsed->totalSize() != item.size)
      return mismatch("the chunklist covers " + std::to_string(parsed->totalSize()) +
                      " bytes, the catalog's Size says " + std::to_string(item.size));
    chunks = std::move(parsed).value();
  }

  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<catalog::apple::ChunkVerifier> verifier;
    if (chunks) verifier = std::make_unique<catalog::apple::ChunkVerifier>(*chunks);
    Sha256 sha;
    uint64_t received = 0;
    bool verifyFailed = false;
    int64_t lastWindowCheck = nowMs();
    {
      std::lock_guard lock(mu_);
      progress_ = Progress{item.url, 0, 0, nowMs(), 0};
    }
    BoxFetch::Sink sink = [&](const char* d, size_t n) {
      received += n;
      sha.update(d, n);
      if (verifier && !verifier->update(d, n)) {
        verifyFailed = true;
        return false;
      }
      if (item.size > 0 && received > item.size) {
        verifyFailed = true;
        return false;
      }
      const int64_t t = nowMs();
      if (t - lastWindowCheck >= 250) {
        lastWindowCheck = t;
        if (!windowOpenFor(window)) stopTransfer_.store(true);
        std::lock_guard lock(mu_);
        progress_.received = received;
        const int64_t span = t - progress_.windowStartMs;
        if (span >= 1000) {
          const double r = static_cast<double>(received - progress_.windowStartBytes) * 1000.0 / span;
          progress_.rate = progress_.rate == 0 ? r : 0.5 * progress_.rate + 0.5 * r;
          progress_.windowStartBytes = received;
          progress_.windowStartMs = t;
        }
      }
      return true;
    };
    BoxFetchOptions opts;
    opts.capped = true;
    opts.stop = &stopTransfer_;
    auto r = fetch.get(item.url, sink, opts);
    if (verifyFailed) {
      if (verifier && !verifier->failure().empty()) return mismatch(verifier->failure());
      return mismatch("more bytes than the catalog's Size (" + std::to_string(item.size) + ")");
    }
    if (!r) {
      if (stopTransfer_.load()) return ItemEnd::Stopped;
      if (attempt + 1 >= kTransportTries) return fail(r.error().message());
    } else if (r->status != 200) {
      // 4xx: the origin does not have it; trying again will not help.
      if (r->status >= 400 && r->status < 500) return fail("the origin answered " + std::to_string(r->status));
      if (attempt + 1 >= kTransportTries) return fail("the origin answered " + std::to_string(r->status));
    } else {
      if (item.size > 0 && received != item.size)
        return mismatch("got " + std::to_string(received) + " bytes, the catalog's Size says " +
                        std::to_string(item.size));
      if (verifier && !verifier->finish()) return mismatch(verifier->failure());
      item.state = JobState::Done;
      item.sha256 = sha.hex();
      item.reason.clear();
      if (item.size == 0) item.size = received;
      return ItemEnd::Done;
    }
    // Transport trouble or a 5xx: wait (stoppable), then again.
    std::unique_lock lock(mu_);
    const int64_t delay = kRetryDelayMs << attempt;
    if (cv_.wait_for(lock, std::chrono::milliseconds(delay), [&] { return stopping_; })) return ItemEnd::Stopped;
  }
}

}  // namespace orchard::server
