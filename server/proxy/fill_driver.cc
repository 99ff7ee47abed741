// FillDriver implementation; see fill_driver.h. It carries out the
// response-side decisions of cache/response_decision.h (store or pass,
// Vary stub, invalidation, run validation) and owns the hard parts of a
// fetch: checkpoints and the final commit on the thread pool, the relay
// window's backpressure onto the upstream socket, and failing a fill (never
// leaving a torn object visible) on every error path.
#include "server/proxy/fill_driver.h"

#include <sys/statvfs.h>
#include <uv.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "cache/policy.h"
#include "cache/response_decision.h"
#include "common/log.h"

namespace orchard::server {
namespace {

constexpr uint64_t kCheckpointBytes = 8ull << 20;  // record durable blocks at least this often
constexpr int64_t kCheckpointMs = 1000;            // ... or this often while bytes arrive

}  // namespace

struct FillWork {
  uv_work_t req;
  std::shared_ptr<cache::Fill> fill;
  FillDriver* driver;  // null for fire-and-forget checkpoints
  int64_t now;
  bool complete;
  void (*after)(FillWork*);
};

namespace {

void queueFillWork(uv_loop_t* loop, FillWork* w) {
  w->req.data = w;
  int rc = uv_queue_work(
      loop, &w->req,
      [](uv_work_t* r) {
        auto* fw = static_cast<FillWork*>(r->data);
        if (fw->complete) fw->fill->complete(fw->now);
        else fw->fill->checkpoint(fw->now);
      },
      [](uv_work_t* r, int) {
        auto* fw = static_cast<FillWork*>(r->data);
        if (fw->after) fw->after(fw);
        delete fw;
      });
  if (rc != 0) {
    // The pool refused (shutting down): do it here, the loop is ending anyway.
    if (w->complete) w->fill->complete(w->now);
    else w->fill->checkpoint(w->now);
    if (w->after) w->after(w);
    delete w;
  }
}

}  // namespace

FillDriver::FillDriver(WorkerContext* wc, std::shared_ptr<cache::Fill> fill, cache::Fill::Fetch fetch,
                       std::shared_ptr<const UpstreamTemplate> tmpl, BodySource* body)
    : wc_(wc), fill_(std::move(fill)), fetch_(fetch), tmpl_(std::move(tmpl)), body_(body) {}

FillDriver* FillDriver::start(WorkerContext* wc, std::shared_ptr<cache::Fill> fill, cache::Fill::Fetch fetch,
                              std::shared_ptr<const UpstreamTemplate> tmpl, BodySource* body,
                              InterimSink* interim) {
  auto* d = new FillDriver(wc, std::move(fill), fetch, std::move(tmpl), body);
  d->interim_ = interim;
  wc->drivers.insert(d);
  d->lastCheckpointMs_ = wc->server->clock->monotonicMs();
  d->startExchange();
  return d;
}

void FillDriver::startExchange() {
  if (throttled_) {
    // The last exchange ended while paused for the rate: the new one starts
    // reading, and its first body bytes pause it again while the debt lasts.
    throttled_ = false;
    uv_timer_stop(throttleTimer_);
  }
  requestTime_ = wc_->server->clock->nowSeconds();
  discard_ = 0;
  skipBody_ = false;
  auto snap = fill_->snapshot();
  const cache::ObjectMeta* stored = fill_->revalidating().get();
  revalidation_ = stored && !snap.hasHead;

  if (!planned_) {
    planned_ = true;
    if (tmpl_->viaNodes && wc_->server->nodes)
      plan_ = wc_->server->nodes->plan(tmpl_->primaryKey, tmpl_->originId, tmpl_->fromPeer);
  }
  node_ = nullptr;
  for (; attempt_ < plan_.n; ++attempt_) {
    CacheNodes::Node* n = plan_.nodes[static_cast<size_t>(attempt_)];
    if (n->up.load(std::memory_order_relaxed)) {
      node_ = n;
      break;
    }
  }

  UpstreamRequest u;
  if (node_) {
    u.host = node_->addr.host;
    u.port = node_->addr.port;
    u.tls = node_->addr.tls;
    u.anyAddress = true;
    u.head.reserve(tmpl_->headPrefix.size() + tmpl_->nodeTarget.size() + 64);
    u.head += tmpl_->method;
    u.head += ' ';
    u.head += tmpl_->nodeTarget;
    u.head += " HTTP/1.1\r\nHost: ";
    u.head += node_->id;
    u.head += "\r\n";
    u.head.append(tmpl_->headPrefix, tmpl_->headersAt, std::string::npos);
  } else {
    u.host = tmpl_->host;
    u.port = tmpl_->port;
    u.tls = tmpl_->tls;
    u.head = tmpl_->headPrefix;
  }
  u.headMethod = tmpl_->method == "HEAD";
  u.hasBody = tmpl_->hasBody;
  u.bodyChunked = tmpl_->bodyChunked;
  u.retryable = (tmpl_->method == "GET" || tmpl_->method == "HEAD") && !tmpl_->hasBody;
  if (revalidation_) {
    if (!stored->etag.empty()) u.head += "If-None-Match: " + stored->etag + "\r\n";
    if (!stored->lastModified.empty()) u.head += "If-Modified-Since: " + stored->lastModified + "\r\n";
  } else if (fill_->shared() && (fetch_.start > 0 || snap.hasHead)) {
    // A run of a known object: validated so that a changed object is noticed.
    u.head += "Range: bytes=" + std::to_string(fetch_.start) + "-\r\n";
    if (snap.hasHead) {
      const auto& h = fill_->head();
      if (!h.etag.empty() && h.etag.rfind("W/", 0) != 0) u.head += "If-Range: " + h.etag + "\r\n";
      else if (!h.lastModified.empty()) u.head += "If-Range: " + h.lastModified + "\r\n";
    }
  }
  u.head += "\r\n";
  if (!node_) {
    wc_->counters.add(wc_->counters.origin_requests);
  } else {
    wc_->counters.add(node_->kind == CacheNodes::Kind::Parent ? wc_->counters.parent_requests
                                                              : wc_->counters.peer_requests);
    node_->requests.fetch_add(1, std::memory_order_relaxed);
  }
  ex_ = wc_->upstream.start(std::move(u), this);
}

void FillDriver::nodeFailed(const std::string& why) {
  OLOG_RATE(log::Level::Warn, "%s %s failed for %s: %s", node_->kind == CacheNodes::Kind::Parent ? "parent" : "peer",
            node_->id.c_str(), fill_->key().text.c_str(), why.c_str());
  wc_->server->nodes->failed(node_, why, wc_->server->clock->monotonicMs(), wc_->config().parentDownTimeMs,
                             wc_->server->clock->nowSeconds());
}

void FillDriver::retryElsewhere() {
  ++attempt_;
  wc_->counters.add(wc_->counters.node_failovers);
  startExchange();
}

void FillDriver::writeBody(const char* data, size_t n) {
  if (ex_) ex_->writeBody(data, n);
}
void FillDriver::endBody() {
  if (ex_) ex_->endBody();
}
size_t FillDriver::queuedBytes() const { return ex_ ? ex_->queuedBytes() : 0; }

bool FillDriver::unwanted() const {
  // A shared cacheable fill is wanted by the table even with no reader;
  // a purged one is no longer the table's (nothing will be stored), and a
  // mirror fill is the mirror's until a Mac joins it (its leaving is how a
  // mirror pauses).
  if (fill_->capped()) return fill_->readers() == 0;
  auto s = fill_->snapshot();
  if (s.purged) return fill_->readers() == 0;
  if (fill_->shared() && (s.state == cache::Fill::State::Pending || s.cacheable)) return false;
  return fill_->readers() == 0;
}

void FillDriver::stopExchange() {
  if (ex_) ex_->cancel();
  ex_ = nullptr;
}

void FillDriver::failFill(Error e) {
  stopExchange();
  fill_->fail(e);
  scheduleCheckpoint();  // what is durable stays resumable
  done();
}

void FillDriver::onUpstreamHead(ResponseHead&& head) {
  if (finished_) return;
  if (node_ && head.status >= 500 && head.status != 508) {
    // A parent or peer in trouble (it could not reach the origin, or is
    // failing itself): the next one, or the origin, is asked instead. A 508
    // is a loop the node saw: an answer, passed on like any other.
    stopExchange();
    nodeFailed("answered " + std::to_string(head.status));
    retryElsewhere();
    return;
  }
  if (head.status >= 500 && !node_) wc_->counters.addOriginError(OriginErrorKind::Status5xx);
  auto snap = fill_->snapshot();
  if (snap.state != cache::Fill::State::Pending && snap.state != cache::Fill::State::Streaming) {
    stopExchange();
    done();
    return;
  }
  // Unsafe methods that succeed invalidate what is stored for the URI.
  // A varying URI's stub takes the variants it lists with it.
  for (const auto& k : cache::invalidatedKeys(tmpl_->method, head.status, head.headers, tmpl_->primaryKey,
                                              tmpl_->host, tmpl_->port, wc_->config().ignoreQuery)) {
    const auto key = cache::CacheKey::fromText(k);
    if (auto stub = wc_->server->store->lookup(key); stub && stub->kind == cache::ObjectMeta::Kind::VaryStub)
      for (const auto& v : cache::stubVariants(*stub)) wc_->server->store->remove(cache::CacheKey::fromText(v)).ok();
    wc_->server->store->remove(key).ok();
  }
  if (revalidation_) headRevalidation(head);
  else if (!snap.hasHead) headFresh(head);
  else headRun(head);
}

void FillDriver::onUpstreamInterim(const ResponseHead& interim) {
  // Passed to the client that asked, never stored (the fill sees only the final head).
  if (!finished_ && interim_) interim_->onInterim(interim);
}

void FillDriver::headRevalidation(ResponseHead& head) {
  const auto& stored = *fill_->revalidating();
  const auto verdict = cache::judgeRevalidation(head.status);
  if (verdict == cache::RevalidationVerdict::Refresh) {
    cache::ObjectMeta m = stored;
    m.headers = cache::mergeNotModified(stored.headers, endToEndHeaders(head.headers));
    if (auto v = findHeader(m.headers, "ETag")) m.etag = std::string(*v);
    if (auto v = findHeader(m.headers, "Last-Modified")) m.lastModified = std::string(*v);
    m.requestTime = requestTime_;
    m.responseTime = wc_->server->clock->nowSeconds();
    auto r = wc_->server->store->refresh(fill_->key(), m);
    if (!r) OLOG_RATE(log::Level::Info, "refresh of %s: %s", fill_->key().text.c_str(), r.error().message().c_str());
    skipBody_ = true;
    fill_->revalidated();
    return;  // the exchange completes (no body) and the driver ends
  }
  if (verdict == cache::RevalidationVerdict::Fail) {
    // Origin trouble: readers may serve the stale object (stale-if-error).
    skipBody_ = true;
    failFill(Error{Errc::Busy, 0, "origin answered 5xx to revalidation"});
    return;
  }
  revalidation_ = false;
  headFresh(head);  // a new representation replaces the stored one
}

void FillDriver::headFresh(ResponseHead& head) {
  int64_t now = wc_->server->clock->nowSeconds();
  std::optional<uint64_t> length;
  bool fromZero = true;
  const auto run = cache::judgeFirstRun(head.status, head.headers, fetch_.start);
  if (run.kind == cache::FirstRun::Kind::Mismatch) {
    failFill(Error{Errc::Protocol, 0, "origin answered a range we did not ask for"});
    return;
  }
  if (run.kind == cache::FirstRun::Kind::Offset) {
    // Stored as the whole object: a 200 head without the range framing.
    head.status = 200;
    head.reason = "OK";
    HeaderList h;
    for (auto& kv : head.headers)
      if (!iequals(kv.first, "Content-Range")) h.push_back(std::move(kv));
    head.headers = std::move(h);
    length = run.total;
    fromZero = false;
  } else if (head.noBody) {
    length = 0;
  } else {
    length = head.contentLength;
  }
  if (fromZero && fetch_.start > 0) fill_->restartAtZero(fetch_.id);

  cache::ObjectMeta meta;
  meta.status = head.status;
  meta.reason = head.reason.empty() ? reasonPhrase(head.status) : head.reason;
  meta.headers = endToEndHeaders(head.headers);
  if (auto v = findHeader(head.headers, "ETag")) meta.etag = std::string(*v);
  if (auto v = findHeader(head.headers, "Last-Modified")) meta.lastModified = std::string(*v);
  meta.requestTime = requestTime_;
  meta.responseTime = now;
  // HEAD: the body length the origin declared, for the client's Content-Length.
  meta.size = head.contentLength.value_or(0);

  cache::ResponseFacts rf;
  rf.method = tmpl_->method;
  rf.status = head.status;
  rf.requestCacheControl = tmpl_->requestCacheControl;
  rf.responseHeaders = &head.headers;
  rf.requestHeaders = &tmpl_->requestHeaders;
  rf.requestHasAuthorization = tmpl_->hasAuthorization;
  rf.requestHadBody = tmpl_->hasBody;
  // A close-delimited body (neither length nor chunked, RFC 9112 §6.3) is
  // passed on but never stored: its end is the connection's end, and a
  // reset can reach us as a plain end of stream (once its error was read by
  // another call, the kernel reports EOF), so a cut body would look whole.
  rf.lengthKnown = head.contentLength.has_value() || head.chunked || length.has_value();
  rf.length = length;
  rf.maxStoredObject = wc_->config().maxStoredObject();
  rf.primaryKey = tmpl_->primaryKey;
  rf.primaryShared = fill_->key().text == tmpl_->primaryKey && fill_->shared();
  cache::StorePlan plan = cache::planStore(rf);
  if (node_ && node_->kind == CacheNodes::Kind::Peer && plan.cacheable) {
    // The peer that owns the key stores it; here it is only relayed (to
    // every reader of this fill), so the site holds each object once.
    plan.shareable = true;
    plan.cacheable = false;
    plan.varyStub.reset();
  }
  if (plan.oversize) {
    OLOG_RATE(log::Level::Info, "%s: %llu bytes is over storage.max_object_size: passing it through uncached",
              fill_->key().text.c_str(), static_cast<unsigned long long>(*length));
    wc_->counters.add(wc_->counters.oversize_passes);
  }
  if (plan.varyStub) {
    cache::ObjectMeta stub;
    stub.kind = cache::ObjectMeta::Kind::VaryStub;
    stub.vary = std::move(*plan.varyStub);
    stub.responseTime = now;
    // A stub is written only when the URI has none (first fetch, or after an
    // unsafe method invalidated it or eviction took it): variants stored
    // before it belong to an earlier era and are validated before use.
    stub.requestTime = now;
    if (plan.storeKey) cache::addStubVariant(&stub, *plan.storeKey);
    auto r = wc_->server->store->putStub(cache::CacheKey::fromText(tmpl_->primaryKey), std::move(stub));
    if (!r) plan.cacheable = false;
  } else if (plan.storeKey && plan.cacheable && fill_->shared()) {
    // Another variant of a URI whose stub exists: listed on it. (Two such
    // fills at once may each miss the other's entry; that variant is then
    // only validated, not removed, when the URI is invalidated.)
    const auto primary = cache::CacheKey::fromText(tmpl_->primaryKey);
    if (auto cur = wc_->server->store->lookup(primary); cur && cur->kind == cache::ObjectMeta::Kind::VaryStub) {
      cache::ObjectMeta stub = *cur;
      stub.verified.reset();
      if (cache::addStubVariant(&stub, *plan.storeKey)) wc_->server->store->putStub(primary, std::move(stub)).ok();
    }
  }
  std::optional<cache::CacheKey> storeKey;
  if (plan.storeKey) storeKey = cache::CacheKey::fromText(*plan.storeKey);
  lengthKnown_ = length.has_value();
  auto r = fill_->begin(std::move(meta), plan.cacheable, length, std::move(storeKey), plan.shareable);
  if (!r) {
    OLOG_RATE(log::Level::Warn, "fill %s: %s", fill_->key().text.c_str(), r.error().message().c_str());
    failFill(r.error());
    return;
  }
  if (unwanted()) failFill(Error{Errc::Closed, 0, "fill: no reader left"});
}

void FillDriver::headRun(ResponseHead& head) {
  const auto& h = fill_->head();
  auto snap = fill_->snapshot();
  switch (cache::judgeRun(head.status, head.headers, head.contentLength, h, fetch_.start, snap.length)) {
    case cache::RunVerdict::Continue:
      return;  // the bytes of our run follow
    case cache::RunVerdict::Discard:
      discard_ = fetch_.start;  // the origin ignores ranges: skip to our run
      return;
    case cache::RunVerdict::Changed:
      break;
  }
  // Another representation (If-Range failed) or an error: the blocks we
  // hold cannot be completed with this object.
  OLOG_RATE(log::Level::Info, "object %s changed at the origin (status %d): refetching whole next time",
            fill_->key().text.c_str(), head.status);
  skipBody_ = true;
  fill_->failChanged();
  stopExchange();
  done();
}

void FillDriver::onUpstreamBody(const char* data, size_t n) {
  if (finished_ || skipBody_) return;
  if (!node_) {
    wc_->counters.add(wc_->counters.bytes_from_origin, n);
  } else {
    const bool parent = node_->kind == CacheNodes::Kind::Parent;
    wc_->counters.add(parent ? wc_->counters.bytes_from_parents : wc_->counters.bytes_from_peers, n);
    if (parent && fill_->shared() && !fill_->relaying()) wc_->counters.add(wc_->counters.stored_from_parents, n);
    node_->bytes.fetch_add(n, std::memory_order_relaxed);
  }
  if (fill_->capped()) throttle(n);
  if (discard_ > 0) {
    size_t skip = static_cast<size_t>(std::min<uint64_t>(discard_, n));
    discard_ -= skip;
    data += skip;
    n -= skip;
    if (n == 0) return;
  }
  if (!held_.empty()) {
    // Waiting for room in the relay window: keep the order (the exchange is
    // paused; this is the rest of the read that was being parsed).
    if (fill_->shared()) wc_->counters.add(wc_->counters.fill_bytes, n);
    held_.append(data, n);
    return;
  }
  sinceDiskCheck_ += n;
  if (!lengthKnown_ && fill_->shared() && !fill_->relaying() && bodyBytes_ + n > wc_->config().maxStoredObject() &&
      fill_->snapshot().cacheable) {
    // A body of unknown length grew past what may be stored: stop storing
    // it and relay the rest, as on a full disk.
    OLOG_RATE(log::Level::Info, "%s: body over storage.max_object_size: passing the rest through uncached",
              fill_->key().text.c_str());
    wc_->counters.add(wc_->counters.oversize_passes);
    fill_->startRelay(fetch_.id);
  }
  if (!fill_->relaying() && fill_->storeFailed()) {
    // A checkpoint could not make our blocks durable: stop writing to a
    // failing store, carry on from memory.
    fill_->startRelay(fetch_.id);
  } else if (!fill_->relaying() && fill_->shared() && diskLow()) {
    // Keep a reserve for the index (RocksDB must never hit ENOSPC): treat a
    // nearly full disk as a full one.
    wc_->server->store->requestEviction(64ull << 20);
    fill_->startRelay(fetch_.id);
  }
  bodyBytes_ += n;
  if (fill_->shared()) wc_->counters.add(wc_->counters.fill_bytes, n);
  auto r = fill_->write(fetch_.id, data, n);
  if (!r && r.error().code == Errc::Busy) {
    // Relaying and the slowest reader has not read the window yet: hold
    // these bytes, stop reading the origin, and go on when it has room.
    held_.assign(data, n);
    holdForRoom();
    return;
  }
  if (!r && r.error().code != Errc::Closed) {
    // The store cannot take the bytes (disk full, or EIO, EROFS, EACCES...):
    // carry on as a pass-through (this fill is not stored; its readers are
    // served from memory). The origin is fine: its client must not suffer.
    // The failure is counted and logged by the store's health record.
    if (r.error().code == Errc::NoSpace) {
      OLOG_RATE(log::Level::Warn, "disk full while filling %s: passing it through uncached",
                fill_->key().text.c_str());
      wc_->server->store->requestEviction(64ull << 20);
    }
    fill_->startRelay(fetch_.id);
    r = fill_->write(fetch_.id, data, n);
  }
  if (!r) {
    OLOG_RATE(log::Level::Warn, "fill %s: %s", fill_->key().text.c_str(), r.error().message().c_str());
    failFill(r.error());
    return;
  }
  if (unwanted()) {
    failFill(Error{Errc::Closed, 0, "fill: no reader left"});
    return;
  }
  if (r.value() < n) {
    // Our run reached bytes another fetcher owns (or already has).
    stopExchange();
    runDone();
    return;
  }
  int64_t nowMs = wc_->server->clock->monotonicMs();
  if (fill_->uncheckpointedBytes() >= kCheckpointBytes ||
      (fill_->uncheckpointedBytes() > 0 && nowMs - lastCheckpointMs_ >= kCheckpointMs))
    scheduleCheckpoint();
}

bool storageBelowReserve(const std::string& dir, uint64_t* availOut, uint64_t* reserveOut) {
  struct statvfs v;
  if (::statvfs(dir.c_str(), &v) != 0) return false;
  const uint64_t size = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
  const uint64_t avail = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  const uint64_t reserve = std::min<uint64_t>(64ull << 20, size / 20);
  if (availOut) *availOut = avail;
  if (reserveOut) *reserveOut = reserve;
  return avail < reserve;
}

bool FillDriver::diskLow() {
  // statvfs is cheap, but once per 4 MiB written is plenty.
  if (diskChecked_ && sinceDiskCheck_ < (4ull << 20)) return false;
  diskChecked_ = true;
  sinceDiskCheck_ = 0;
  return storageBelowReserve(wc_->config().storageDir);
}

void FillDriver::holdForRoom() {
  if (ex_) ex_->pauseReading();
  std::weak_ptr<bool> alive = alive_;
  auto wake = [alive, this] {
    if (auto a = alive.lock(); a && *a) drainHeld();
  };
  // Never inline (we may be inside the parser's callback): post it when
  // there is room already.
  if (!fill_->waitForRoom(held_.size(), &wc_->worker->executor(), wake)) wc_->worker->post(wake);
}

void FillDriver::drainHeld() {
  if (finished_ || held_.empty()) return;
  auto r = fill_->write(fetch_.id, held_.data(), held_.size());
  if (!r && r.error().code == Errc::Busy) {
    holdForRoom();
    return;
  }
  if (!r) {
    failFill(r.error());
    return;
  }
  const bool runEnded = r.value() < held_.size();  // as in onUpstreamBody(): our run reached its end
  held_.clear();
  if (runEnded) {
    heldComplete_ = false;
    stopExchange();
    runDone();
    return;
  }
  if (unwanted()) {
    failFill(Error{Errc::Closed, 0, "fill: no reader left"});
    return;
  }
  if (heldComplete_) {
    heldComplete_ = false;
    runDone();
    return;
  }
  if (ex_ && !throttled_) ex_->resumeReading();
}

void FillDriver::throttle(size_t n) {
  const uint64_t rate = wc_->config().appleMirrorRate;
  RateLimiter* bucket = wc_->server->mirrorThrottle;
  if (rate == 0 || !bucket) return;
  const int64_t wait = bucket->take(n, rate);
  if (wait <= 0 || throttled_) return;  // paused already: this is the rest of the read being parsed
  throttled_ = true;
  if (ex_) ex_->pauseReading();
  armThrottle(wait);
}

void FillDriver::armThrottle(int64_t ms) {
  if (!throttleTimer_) {
    throttleTimer_ = new uv_timer_t;
    uv_timer_init(wc_->worker->loop(), throttleTimer_);
    throttleTimer_->data = this;
  }
  uv_timer_start(
      throttleTimer_,
      [](uv_timer_t* t) {
        if (auto* d = static_cast<FillDriver*>(t->data)) d->throttleTick();
      },
      static_cast<uint64_t>(std::clamp<int64_t>(ms, 1, kThrottleTickMs)), 0);
}

void FillDriver::throttleTick() {
  if (finished_ || !throttled_) return;
  if (unwanted()) {
    // The mirror dropped its connection while we held its bytes back.
    failFill(Error{Errc::Closed, 0, "mirror fill: no reader left"});
    return;
  }
  const uint64_t rate = wc_->config().appleMirrorRate;  // the loop's snapshot: a reload applies here
  if (fill_->capped() && rate > 0 && wc_->server->mirrorThrottle) {
    if (const int64_t wait = wc_->server->mirrorThrottle->waitMs(); wait > 0) {
      armThrottle(wait);
      return;
    }
  }
  throttled_ = false;
  if (ex_ && held_.empty()) ex_->resumeReading();  // else drainHeld() resumes once the relay has room
}

void FillDriver::onUpstreamStalled() {
  // The relay has waited kPausedStallMs for its slowest reader while others
  // wait too: let that one go (it is cut, as a reader left behind by the
  // window always was) so the rest move on. A lone reader is waited for
  // until the server's send timeout closes it.
  if (!held_.empty() && fill_->dropSlowestCursor()) {
    OLOG_RATE(log::Level::Info, "relay of %s: a reader stalled the others for %lld ms: it is cut",
              fill_->key().text.c_str(), static_cast<long long>(UpstreamExchange::kPausedStallMs));
    drainHeld();
  }
}

void FillDriver::onUpstreamComplete() {
  ex_ = nullptr;
  if (finished_) return;
  if (!held_.empty()) {
    heldComplete_ = true;  // the body ended; its last bytes wait for room (drainHeld())
    return;
  }
  if (skipBody_) {
    done();
    return;
  }
  runDone();
}

void FillDriver::runDone() {
  auto next = fill_->fetcherDone(fetch_.id);
  if (next.complete) {
    scheduleComplete();
    return;
  }
  if (next.fetch) {
    fetch_ = *next.fetch;
    startExchange();
    return;
  }
  scheduleCheckpoint();
  done();
}

void FillDriver::onUpstreamError(Error error, bool afterHead) {
  ex_ = nullptr;
  if (finished_) return;
  if (node_) {
    nodeFailed(error.message());
    if (!afterHead) {
      retryElsewhere();  // nothing of this exchange reached the fill
      return;
    }
    if (!skipBody_ && held_.empty() && fill_->shared()) {
      if (auto next = fill_->fetcherCut(fetch_.id)) {
        ++attempt_;
        wc_->counters.add(wc_->counters.node_failovers);
        if (next->complete) {
          scheduleComplete();
        } else if (next->fetch) {
          fetch_ = *next->fetch;
          startExchange();
        } else {
          scheduleCheckpoint();  // other fetchers carry the rest
          done();
        }
        return;
      }
    }
  }
  wc_->counters.add(wc_->counters.origin_errors);
  wc_->counters.addOriginError(classifyOriginError(error));
  OLOG_RATE(log::Level::Warn, "origin fetch for %s failed: %s", fill_->key().text.c_str(), error.message().c_str());
  failFill(error);
}

void FillDriver::onUpstreamWritable() {
  if (body_) body_->onBodyWritable();
}

void FillDriver::scheduleCheckpoint() {
  auto snap = fill_->snapshot();
  if (checkpointInFlight_ || !snap.cacheable || !fill_->shared()) return;
  checkpointInFlight_ = true;
  lastCheckpointMs_ = wc_->server->clock->monotonicMs();
  auto* w = new FillWork{};
  w->fill = fill_;
  w->driver = finished_ ? nullptr : this;
  w->now = wc_->server->clock->nowSeconds();
  w->complete = false;
  w->after = &FillDriver::onCheckpointDone;
  checkpointWork_ = w->driver ? w : nullptr;
  queueFillWork(wc_->worker->loop(), w);
}

void FillDriver::scheduleComplete() {
  auto snap = fill_->snapshot();
  if (!snap.cacheable) {
    fill_->complete(wc_->server->clock->nowSeconds());  // nothing to sync or record
    done();
    return;
  }
  completing_ = true;
  auto* w = new FillWork{};
  w->fill = fill_;
  w->driver = this;
  w->now = wc_->server->clock->nowSeconds();
  w->complete = true;
  w->after = &FillDriver::onCompleteDone;
  queueFillWork(wc_->worker->loop(), w);
}

void FillDriver::onCheckpointDone(FillWork* fw) {
  if (!fw->driver) return;
  fw->driver->checkpointInFlight_ = false;
  fw->driver->checkpointWork_ = nullptr;
}

void FillDriver::onCompleteDone(FillWork* fw) {
  FillDriver* d = fw->driver;
  d->completing_ = false;
  auto s = d->fill_->snapshot();
  if (s.state == cache::Fill::State::Complete && s.cacheable)
    d->wc_->counters.add(d->wc_->counters.bytes_stored, s.length.value_or(0));
  d->done();
}

void FillDriver::abort() {
  if (finished_ || completing_) return;
  stopExchange();
  fill_->fail(Error{Errc::Closed, 0, "server shutting down"});
  fill_->checkpoint(wc_->server->clock->nowSeconds());  // shutdown: blocking is fine
  done();
}

void FillDriver::done() {
  if (finished_) return;
  finished_ = true;
  *alive_ = false;
  held_.clear();
  closeHandle(throttleTimer_);  // its close callback frees it
  throttleTimer_ = nullptr;
  throttled_ = false;
  // The only driver of a fill without a head is its first one: ending
  // without a head (for whatever reason) must not leave readers waiting on
  // a fill nobody will ever answer.
  if (fill_->snapshot().state == cache::Fill::State::Pending)
    fill_->fail(Error{Errc::Protocol, 0, "origin exchange ended without an answer"});
  if (body_) body_->onDriverGone();
  body_ = nullptr;
  if (interim_) interim_->onInterimGone();
  interim_ = nullptr;
  wc_->drivers.erase(this);
  if (checkpointWork_) {
    // The checkpoint in flight completes without us.
    checkpointWork_->driver = nullptr;
    checkpointWork_ = nullptr;
  }
  wc_->worker->deferDelete(this);
}

}  // namespace orchard::server
