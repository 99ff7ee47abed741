#include "server/apple/apple_service.h"

#include <chrono>

#include "cache/key.h"
#include "common/log.h"
#include "server/apple/mirror.h"
#include "server/context.h"

namespace orchard::server {

namespace apple = catalog::apple;

namespace {
constexpr uint64_t kMaxMetadataBytes = 4u << 20;  // a .dist or .smd
constexpr int64_t kRetryAfterFailureMs = 60'000;  // a failed load is tried again this soon
}  // namespace

const char* Holding::name(State s) {
  switch (s) {
    case State::Absent: return "absent";
    case State::Partial: return "partial";
    case State::Complete: return "complete";
  }
  return "absent";
}

AppleService::AppleService(ServerContext* ctx, std::shared_ptr<db::Database> db)
    : ctx_(ctx), fetch_(ctx), mirrors_(std::make_unique<MirrorManager>(this, std::move(db))) {}

AppleService::~AppleService() { stop(); }

void AppleService::start() {
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  pool_.start();
  mirrors_->start();
  thread_ = std::thread([this] { refreshLoop(); });
}

void AppleService::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  mirrors_->stop();
  pool_.stop();
}

void AppleService::refreshLoop() {
  std::unique_lock lock(mu_);
  // Nothing is fetched until someone asks for the catalog (the products
  // routes, a mirror, a prewarm list naming products).
  cv_.wait(lock, [&] { return stopping_ || demanded_; });
  // The call that asked is loading it now; look again a refresh later (or
  // soon, should that load fail).
  int64_t waitMs = kRetryAfterFailureMs;
  while (!stopping_) {
    if (waitMs == 0) {
      auto snap = ctx_->control ? ctx_->control->snapshot() : nullptr;
      waitMs = snap ? snap->config.appleCatalogRefreshMs : 6LL * 3600 * 1000;
    }
    if (cv_.wait_for(lock, std::chrono::milliseconds(waitMs), [&] { return stopping_; })) break;
    lock.unlock();
    auto r = load();
    lock.lock();
    auto snap = ctx_->control ? ctx_->control->snapshot() : nullptr;
    const int64_t refresh = snap ? snap->config.appleCatalogRefreshMs : 6LL * 3600 * 1000;
    waitMs = r ? refresh : std::min(refresh, kRetryAfterFailureMs);
  }
}

std::shared_ptr<const LoadedCatalog> AppleService::catalogIfLoaded() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::string AppleService::lastError() const {
  std::lock_guard lock(mu_);
  return lastError_;
}

Result<std::shared_ptr<const LoadedCatalog>> AppleService::catalog(bool refresh) {
  {
    std::lock_guard lock(mu_);
    if (!demanded_) {
      demanded_ = true;
      cv_.notify_all();
    }
  }
  if (!refresh) {
    if (auto c = catalogIfLoaded()) return c;
  }
  auto r = load();
  if (r) return r;
  if (auto c = catalogIfLoaded()) return c;  // the last good one
  return r.error();
}

Result<std::shared_ptr<const LoadedCatalog>> AppleService::load() {
  std::lock_guard one(loadMu_);
  auto snap = ctx_->control ? ctx_->control->snapshot() : nullptr;
  if (!snap) return Error{Errc::Busy, 0, "apple: the box is not running yet"};
  const std::string url = snap->config.appleCatalogUrl;
  const uint64_t maxSize = snap->config.appleCatalogMaxSize;
  auto fail = [&](std::string why, Error e) -> Result<std::shared_ptr<const LoadedCatalog>> {
    std::lock_guard lock(mu_);
    if (lastError_ != why) OLOG_WARN("apple: cannot read the catalog %s: %s", url.c_str(), why.c_str());
    lastError_ = std::move(why);
    return e;
  };
  if (url.empty()) return fail("apple.catalog_url is empty", Error{Errc::Invalid, 0, "apple: no catalog URL"});
  // The compressed body is at most the expanded limit (gzip never grows
  // a plist by much); the expansion is bounded again by the parser.
  BoxFetchResult answer;
  int status = 0;
  auto body = fetch_.getSmall(url, maxSize, &status, BoxFetchOptions{.timeoutMs = 10 * 60 * 1000}, &answer);
  if (!body) {
    const Error& e = body.error();
    if (e.code == Errc::NoSpace) return fail("larger than apple.catalog_max_size", e);
    if (status != 0 && status != 200)
      return fail("the box answered " + std::to_string(status) + " (" + answer.cacheStatus + ")", e);
    return fail(e.message(), e);
  }
  apple::ParseLimits limits;
  limits.maxExpanded = maxSize;
  size_t skipped = 0;
  auto parsed = apple::parseSuCatalog(*body, limits, &skipped);
  if (!parsed) return fail(parsed.error().message(), parsed.error());
  auto loaded = std::make_shared<LoadedCatalog>();
  loaded->catalog = std::move(parsed).value();
  loaded->url = url;
  loaded->loadedAt = ctx_->clock->nowSeconds();
  loaded->cacheStatus = answer.cacheStatus;
  loaded->skipped = skipped;
  std::lock_guard lock(mu_);
  if (!current_ || current_->catalog.products.size() != loaded->catalog.products.size())
    OLOG_INFO("apple: catalog %s: %zu products (%zu skipped as malformed)", url.c_str(),
              loaded->catalog.products.size(), skipped);
  current_ = loaded;
  lastError_.clear();
  return std::shared_ptr<const LoadedCatalog>(current_);
}

apple::ProductInfo AppleService::info(const apple::CatalogProduct& p) {
  {
    std::lock_guard lock(mu_);
    if (auto it = info_.find(p.id); it != info_.end()) return it->second;
  }
  apple::ProductInfo out;
  bool fromDist = false;
  if (const std::string& dist = p.distributionUrl(); !dist.empty()) {
    if (auto body = fetch_.getSmall(dist, kMaxMetadataBytes)) {
      if (auto d = apple::parseDistribution(*body)) {
        out = std::move(d).value();
        fromDist = true;
      }
    }
  }
  if ((!fromDist || out.version.empty() || out.title.empty()) && !p.serverMetadataUrl.empty()) {
    if (auto body = fetch_.getSmall(p.serverMetadataUrl, kMaxMetadataBytes)) {
      if (auto s = apple::parseServerMetadata(*body)) {
        if (out.title.empty()) out.title = s->title;
        if (out.version.empty()) out.version = s->version;
      }
    }
  }
  std::lock_guard lock(mu_);
  if (info_.size() > 100'000) info_.clear();  // bounded: titles are read again on need
  // Remember only what was learnt: an unreachable .dist is asked again next time.
  if (!out.title.empty() || !out.version.empty()) info_[p.id] = out;
  return out;
}

Holding AppleService::holdingOfUrl(const std::string& url, uint64_t expectedSize) const {
  Holding h;
  auto key = fetch_.cacheKeyText(url);
  if (!key || !ctx_->store) return h;
  cache::CacheKey k = cache::CacheKey::fromText(*key);
  if (auto m = ctx_->store->lookup(k); m && m->kind == cache::ObjectMeta::Kind::Complete) {
    h.state = Holding::State::Complete;
    h.bytes = m->size;
    h.percent = 100;
    h.objectPath = ctx_->store->objectFilePath(k.hash, m->gen);
    return h;
  }
  if (auto p = ctx_->store->lookupPartial(k)) {
    const uint64_t size = p->size ? p->size : expectedSize;
    h.bytes = p->durableBytes();
    h.state = Holding::State::Partial;
    h.percent = size ? static_cast<int>(h.bytes * 100 / size) : 0;
    if (h.percent >= 100) h.percent = 99;  // not complete until the store says so
  }
  return h;
}

Holding AppleService::holding(const apple::CatalogPackage& pkg) const { return holdingOfUrl(pkg.url, pkg.size); }

Result<AppleService::Installer> AppleService::mirroredInstaller(const std::string& productId, std::string* why) {
  auto cat = catalog(false);
  if (!cat) {
    *why = "Apple's catalog is not loaded: " + lastError();
    return Error{Errc::Busy, 0, "apple: no catalog"};
  }
  const apple::CatalogProduct* p = (*cat)->catalog.find(productId);
  if (!p) {
    *why = "the catalog has no product " + productId;
    return Error{Errc::NotFound, 0, "apple: no such product"};
  }
  if (!p->installer) {
    *why = "product " + productId + " is not a macOS installer";
    return Error{Errc::Invalid, 0, "apple: not an installer"};
  }
  auto job = mirrors_->job(productId);
  if (!job || job->job.state != apple::JobState::Done) {
    *why = "product " + productId + " is not mirrored (" +
           (job ? std::string(apple::jobStateName(job->job.state)) : std::string("never asked")) +
           "): POST /api/v1/apple/products/" + productId + "/mirror first";
    return Error{Errc::Invalid, 0, "apple: not mirrored"};
  }
  const apple::CatalogPackage* biggest = nullptr;
  for (const auto& pkg : p->packages)
    if (!biggest || pkg.size > biggest->size) biggest = &pkg;
  if (!biggest) {
    *why = "product " + productId + " has no packages";
    return Error{Errc::Invalid, 0, "apple: no packages"};
  }
  Installer inst;
  inst.productId = productId;
  inst.url = biggest->url;
  inst.size = biggest->size;
  std::string path = inst.url.substr(0, inst.url.find('?'));
  inst.filename = path.substr(path.rfind('/') + 1);
  inst.info = info(*p);
  return inst;
}

}  // namespace orchard::server
