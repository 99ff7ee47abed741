// Transaction: carries out the proxy's decisions; see transaction.h. The
// hard parts are the hand-overs: a fill committed between the store look-up
// and the fill table (look again), a stored object that turns out missing
// or corrupt when opened (decide again without it), and a follower whose
// fill's answer is not for it (private, another variant: fetch its own).
#include "server/proxy/transaction.h"

#include "server/proxy/cache_nodes.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "cache/range.h"
#include "common/log.h"
#include "server/context.h"
#include "server/proxy/upstream_template.h"

namespace orchard::server {
namespace {

void countStep(Counters& c, cache::Step s) {
  switch (s) {
#define ORCHARD_STEP_COUNT(step, counter, tokens) \
  case cache::Step::step:                         \
    c.add(c.counter);                             \
    return;
    ORCHARD_STEPS(ORCHARD_STEP_COUNT)
#undef ORCHARD_STEP_COUNT
  }
}

// What a step makes of the request for /metrics and the access log. A
// revalidation (Stale) counts as a miss until its answer is known: a 304
// makes it Revalidated, a stale object served Stale (serveStored()).
RequestResult resultOf(cache::Step s) {
  using S = cache::Step;
  switch (s) {
    case S::Hit:
    case S::HitOnlyIfCached: return RequestResult::Hit;
    case S::HitStaleWhileRevalidate:
    case S::HitStaleIfError:
    case S::HitStaleDisconnected: return RequestResult::Stale;
    case S::Miss:
    case S::MissCollapsed:
    case S::Stale:
    case S::StaleCollapsed:
    case S::NotStored: return RequestResult::Miss;
    case S::PassMethod:
    case S::PassRequest:
    case S::PassStale:
    case S::PassMiss: return RequestResult::Pass;
  }
  return RequestResult::Miss;
}

cache::RequestFacts requestFacts(const RequestHead& req) {
  cache::RequestFacts f;
  using M = cache::RequestFacts::Method;
  f.method = req.method == "GET" ? M::Get : req.method == "HEAD" ? M::Head : M::Other;
  f.authorization = req.header("Authorization").has_value();
  auto cc = req.header("Cache-Control");
  f.cacheControl = cc ? *cc : std::string_view();
  f.pragmaNoCache = headerHasToken(req.headers, "Pragma", "no-cache");
  return f;
}

// Where a fetch would start only matters without a stored object: a range
// hit does not parse its Range here as well as in responseHead().
void noteRangeStart(cache::RequestFacts* f, const RequestHead& req) {
  if (f->rangeStart) return;
  if (auto r = req.header("Range")) {
    auto items = cache::parseRange(*r);
    if (items && items->size() == 1 && items->front().first) f->rangeStart = *items->front().first;
  }
}

}  // namespace

Transaction::Transaction(ResponseWriter* conn, RequestHead req, Route route, CacheClient client)
    : BodySender(conn->wc(), conn),
      snap_(wc_->pinSnapshot()),
      req_(std::move(req)),
      route_(std::move(route)),
      client_(client) {
  if (client == CacheClient::Child) cacheClientBytes_ = &wc_->counters.bytes_to_children;
  else if (client == CacheClient::Peer) cacheClientBytes_ = &wc_->counters.bytes_to_peers;
}

bool Transaction::hasNodes() const { return wc_->server->nodes && !wc_->server->nodes->empty(); }

Transaction::~Transaction() {
  leaveFill();
  if (driver_) driver_->detachBody();
  if (interimDriver_) interimDriver_->detachInterim();
}

void Transaction::stopReadingFill() {
  if (!fill_) return;
  if (counted_) fill_->removeReader();
  counted_ = false;
  if (fillCursor_ != kNoCursor) fill_->removeCursor(fillCursor_);  // never hold a relaying writer back
  fillCursor_ = kNoCursor;
}

void Transaction::leaveFill() {
  stopReadingFill();
  fill_.reset();
}

void Transaction::onConnClosed() {
  if (conn_ && phase_ != Phase::Finished) conn_->noteOutcome(result_, cacheStatus_);
  conn_ = nullptr;
  *alive_ = false;
  stopReadingFill();
  if (phase_ != Phase::Finished) {
    phase_ = Phase::Finished;
    finished_ = true;
    countServed();
  }
}

void Transaction::enter(cache::Step step) {
  countStep(wc_->counters, step);
  cacheStatus_ = cache::cacheStatusOf(step);
  result_ = resultOf(step);
}

// ---- answers ----

void Transaction::answer(int status, std::string_view contentType, std::string_view body, std::string_view extra) {
  status_ = status;
  // An answer before the request body ended closes the connection (the
  // rest of the body is not read): say so.
  const bool close = !req_.keepAlive || (req_.hasBody() && !requestComplete_);
  if (conn_) conn_->write(smallResponse(status, contentType, body, extra, close, req_.method == "HEAD"));
  finish(true);
}

void Transaction::answerError(int status, std::string_view detail) {
  result_ = RequestResult::Error;
  std::string extra;
  if (!cacheStatus_.empty()) extra = "Cache-Status: " + cacheStatus_ + "\r\n";
  answer(status, "application/json", errorBody(status, detail), extra);
}

// ---- deciding ----

void Transaction::start() {
  primaryKey_ = route_.keyText;
  key_ = cache::CacheKey::fromText(route_.keyText);
  facts_ = requestFacts(req_);
  headOnly_ = facts_.method == cache::RequestFacts::Method::Head;
  std::shared_ptr<const cache::ObjectMeta> stored;
  if (facts_.method != cache::RequestFacts::Method::Other) stored = lookupStored();
  if (!stored) noteRangeStart(&facts_, req_);
  const cache::Action action = cache::decide(facts_, stored.get(), wc_->server->clock->nowSeconds());
  act(action, std::move(stored));
}

std::shared_ptr<const cache::ObjectMeta> Transaction::lookupStored() {
  cache::Store* store = wc_->server->store;
  auto meta = store->lookup(key_);
  if (meta && meta->kind == cache::ObjectMeta::Kind::VaryStub) {
    const int64_t era = meta->requestTime;
    key_ = cache::CacheKey::fromText(cache::variantKeyText(primaryKey_, splitList(meta->vary), req_.headers));
    meta = store->lookup(key_);
    facts_.storedInvalidated = meta && era > 0 && meta->responseTime < era;
  }
  if (meta && meta->kind != cache::ObjectMeta::Kind::Complete) meta = nullptr;
  return meta;
}

void Transaction::act(const cache::Action& a, std::shared_ptr<const cache::ObjectMeta> stored) {
  using K = cache::Action::Kind;
  switch (a.kind) {
    case K::ServeStored:
      if (!serveStored(std::move(stored), a.step)) refetchWithoutStored();
      return;
    case K::ServeAndRefresh:
      backgroundRevalidate(stored);
      if (!serveStored(std::move(stored), a.step)) refetchWithoutStored();
      return;
    case K::Revalidate:
      revalidate(std::move(stored), a);
      return;
    case K::Fetch:
      fetch(a);
      return;
    case K::Pass:
      startPass(a.step);
      return;
    case K::Answer:
      cacheStatus_ = cache::cacheStatusOf(a.step);
      answerError(a.status, a.reason);
      return;
  }
}

void Transaction::refetchWithoutStored() {
  noteRangeStart(&facts_, req_);
  act(cache::decide(facts_, nullptr, wc_->server->clock->nowSeconds()), nullptr);
}

void Transaction::fetch(const cache::Action& a) {
  const InternalKind kind = internal();
  auto acquired = wc_->server->fills->acquire(key_, nullptr, kind == InternalKind::Capped);
  if (acquired.fill && !acquired.created && a.leadOnly) {
    startPass(cache::Step::PassRequest);  // another's fill is not for a request with credentials
    return;
  }
  if (!acquired.fill && a.leadOnly) {
    startPass(cache::Step::PassRequest);
    return;
  }
  if (!acquired.fill) {
    // Committed between our look-up and the table: look again.
    auto meta = wc_->server->store->lookup(key_);
    if (meta && meta->kind == cache::ObjectMeta::Kind::Complete && serveStored(meta, cache::Step::Hit)) return;
    startPass(cache::Step::PassMiss);
    return;
  }
  enter(cache::joinStep(cache::Step::Miss, acquired.created));
  if (!acquired.created) liftCap(*acquired.fill, kind);
  if (acquired.created) {
    wc_->counters.add(wc_->counters.fills_started);
    startDriver(acquired.fill, acquired.fill->firstFetch(a.startAt), false, true);
  }
  follow(acquired.fill, acquired.created);
}

void Transaction::revalidate(std::shared_ptr<const cache::ObjectMeta> stale, const cache::Action& a) {
  stale_ = std::move(stale);
  staleIfError_ = a.staleIfError;
  staleIfDisconnected_ = a.staleIfDisconnected;
  const InternalKind kind = internal();
  auto acquired = wc_->server->fills->acquire(key_, stale_, kind == InternalKind::Capped);
  if (!acquired.fill) {
    refetchWithoutStored();
    return;
  }
  enter(cache::joinStep(cache::Step::Stale, acquired.created));
  if (!acquired.created) liftCap(*acquired.fill, kind);
  if (acquired.created) {
    wc_->counters.add(wc_->counters.fills_started);
    startDriver(acquired.fill, acquired.fill->firstFetch(0), false, true);
  }
  follow(acquired.fill, acquired.created);
}

InternalKind Transaction::internal() const {
  return internalKind(wc_->server->internalSecret, req_, conn_ ? conn_->peer() : nullptr);
}

void Transaction::liftCap(cache::Fill& fill, InternalKind kind) {
  // A Mac joined the mirror's fill: it is not held to the mirror's rate.
  if (kind == InternalKind::None && fill.capped()) fill.setCapped(false);
}

void Transaction::fetchFrom(const cache::Fill::Fetch& fetch) {
  // A reader that makes need() start another run of a mirror fill is a Mac
  // waiting for those bytes (or the mirror itself, which keeps its cap).
  if (fill_->capped()) liftCap(*fill_, internal());
  startDriver(fill_, fetch, false, false);
}

void Transaction::backgroundRevalidate(std::shared_ptr<const cache::ObjectMeta> stale) {
  auto acquired = wc_->server->fills->acquire(key_, std::move(stale));
  if (acquired.fill && acquired.created) {
    wc_->counters.add(wc_->counters.fills_started);
    startDriver(acquired.fill, acquired.fill->firstFetch(0), false, false);
  }
}

void Transaction::startDriver(const std::shared_ptr<cache::Fill>& fill, cache::Fill::Fetch fetch, bool feedBody,
                              bool interim) {
  if (!template_)
    template_ = makeUpstreamTemplate(req_, route_, primaryKey_, wc_->server->viaName, fill->shared(), hasNodes(),
                                     client_ == CacheClient::Peer);
  if (interim && interimDriver_) {
    interimDriver_->detachInterim();
    interimDriver_ = nullptr;
  }
  FillDriver* d = FillDriver::start(wc_, fill, fetch, template_, feedBody ? this : nullptr, interim ? this : nullptr);
  // A driver that ended inside start() has already said it is gone.
  if (d->finished()) return;
  if (interim) interimDriver_ = d;
  if (feedBody) {
    driver_ = d;
    if (conn_) conn_->pauseReading();  // until the upstream connection can take bytes
  }
}

void Transaction::startPass(cache::Step step) {
  enter(step);
  auto fill = std::make_shared<cache::Fill>(key_, wc_->server->store, false);
  template_ = makeUpstreamTemplate(req_, route_, primaryKey_, wc_->server->viaName, false, hasNodes(),
                                   client_ == CacheClient::Peer);
  startDriver(fill, fill->firstFetch(0), req_.hasBody(), true);
  follow(std::move(fill), true);
}

void Transaction::onInterim(const ResponseHead& interim) {
  // RFC 9110 §15.2: a proxy forwards 1xx answers, except to an HTTP/1.0
  // client (which cannot read them), except 101 (Upgrade is never passed
  // on, so no switch was asked for) and 100 unless this client's own
  // `Expect: 100-continue` went to the origin (§10.1.1).
  if (!conn_ || phase_ != Phase::WaitingHead || req_.versionMinor == 0) return;
  if (interim.status == 101) return;
  if (interim.status == 100 && !headerHasToken(req_.headers, "Expect", "100-continue")) return;
  std::string out;
  appendStatusLine(out, interim.status);
  for (const auto& [k, v] : endToEndHeaders(interim.headers)) {
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += "\r\n";
  conn_->write(std::move(out));
}

void Transaction::onRequestBody(const char* data, size_t n) {
  if (!driver_) return;  // nobody wants it (answered already, or the exchange ended)
  driver_->writeBody(data, n);
  if (conn_ && driver_ && driver_->queuedBytes() > UpstreamExchange::kHighWater) conn_->pauseReading();
}

void Transaction::onRequestComplete() {
  requestComplete_ = true;
  if (driver_) driver_->endBody();
}

void Transaction::onBodyWritable() {
  if (conn_) conn_->resumeReading();
}

// ---- answering from the store ----

bool Transaction::serveStored(std::shared_ptr<const cache::ObjectMeta> meta, cache::Step step, std::string status) {
  cache::Store* store = wc_->server->store;
  int64_t now = wc_->server->clock->nowSeconds();
  if (cache::notModified(req_.headers, *meta)) {
    // The client already has it: 304 with the validators and caching headers.
    enter(step);
    if (revalidated_) result_ = RequestResult::Revalidated;
    if (!status.empty()) cacheStatus_ = std::move(status);
    store->touch(key_);
    status_ = 304;
    phase_ = Phase::Sending;
    if (conn_) conn_->write(notModifiedHead(*meta, now));
    finish(true);
    return true;
  }
  if (meta->size <= OpenFileCache::kMaxObjectSize) {
    fd_ = wc_->files.acquire(key_.hash, meta->gen);
    if (fd_ >= 0) cachedFd_ = true;
  }
  if (fd_ < 0) {
    auto opened = store->openForRead(key_, *meta);
    if (!opened) return false;  // missing or wrong size: dropped by the store, refetch
    fd_ = opened->fd;
    pin_ = std::move(opened->pin);  // never evicted while this transaction reads it
    if (meta->size <= OpenFileCache::kMaxObjectSize && wc_->files.insert(key_.hash, meta->gen, fd_) >= 0)
      cachedFd_ = true;
  }
  fdGen_ = meta->gen;
  cacheStatus_ = status.empty() ? cache::cacheStatusOf(step) : std::move(status);
  bool noBody = false;
  headOut_ = responseHead(*meta, meta->size, true, cache::currentAge(*meta, now), &noBody);
  if (!noBody && !segs_.empty()) {
    // The first blocks to send (up to 4 MiB: a small object whole) are
    // checked before anything is sent: a corrupt object is dropped by the
    // store and this request becomes a miss. pump() checks the blocks after
    // them as it reaches them (one atomic load once all passed).
    constexpr uint64_t kVerifyBeforeHead = 4ull << 20;
    const Segment& first = segs_.front();
    const uint64_t span = std::min<uint64_t>(std::min(first.end, meta->size) - std::min(first.first, meta->size),
                                             kVerifyBeforeHead);
    if (auto v = store->ensureVerified(key_, *meta, fd_, first.first, std::max<uint64_t>(span, 1)); !v) {
      OLOG_RATE(log::Level::Warn, "hit on %s not served: %s", key_.text.c_str(), v.error().message().c_str());
      closeFile();
      headOut_.clear();
      segs_.clear();
      trailer_.clear();
      wholeBody_ = chunkedOut_ = false;
      status_ = 0;
      return false;
    }
  }
  storedMeta_ = std::move(meta);  // the last use of the parameter
  countStep(wc_->counters, step);
  result_ = revalidated_ ? RequestResult::Revalidated : resultOf(step);
  store->touch(key_);
  phase_ = Phase::Sending;
  if (noBody || segs_.empty()) {
    flushHead();
    finish(true);
    return true;
  }
  beginBody();
  return true;
}

// ---- following a fill ----

void Transaction::follow(std::shared_ptr<cache::Fill> fill, bool leader) {
  fill_ = std::move(fill);
  fillCursor_ = fill_->addCursor(0);  // the relay's backpressure follows this reader
  leader_ = leader;
  // Every reader counts, followers too: a fill that is shared but not
  // stored (too large, or the store failing) goes on while any reader of
  // it is left, and stops when none is.
  fill_->addReader();
  counted_ = true;
  phase_ = Phase::WaitingHead;
  waitHead();
}

void Transaction::waitHead() {
  while (conn_ && phase_ == Phase::WaitingHead) {
    auto snap = fill_->snapshot();
    cache::FillFacts f;
    using S = cache::FillFacts::State;
    switch (snap.state) {
      case cache::Fill::State::Pending: f.state = S::Pending; break;
      case cache::Fill::State::Streaming: f.state = S::Streaming; break;
      case cache::Fill::State::Complete: f.state = S::Complete; break;
      case cache::Fill::State::Failed: f.state = S::Failed; break;
      case cache::Fill::State::Revalidated: f.state = S::Revalidated; break;
    }
    f.hasHead = snap.hasHead;
    f.leader = leader_;
    f.shared = fill_->shared();
    f.shareable = snap.shareable;
    f.error = snap.error.code;
    f.staleAvailable = stale_ != nullptr;
    f.staleIfError = staleIfError_;
    f.staleIfDisconnected = staleIfDisconnected_;
    std::string mine;
    if (snap.hasHead && !leader_ && fill_->shared() && fill_->storeKey().text != key_.text) {
      // It varies: which variant does this request select?
      mine = cache::variantKeyText(primaryKey_, cache::varyFields(fill_->head().headers), req_.headers);
      f.fillStoreKey = fill_->storeKey().text;
      f.myVariantKey = mine;
    }
    const auto h = cache::decideOnHead(f);
    using K = cache::HeadAction::Kind;
    switch (h.kind) {
      case K::Wait: {
        std::weak_ptr<bool> alive = alive_;
        if (fill_->waitIfUnchanged(snap, &wc_->worker->executor(), [alive, this] {
              if (auto a = alive.lock(); a && *a) waitHead();
            }))
          return;
        continue;
      }
      case K::ServeRefreshed: {
        // 304: the stored object is fresh again.
        leader_ = false;
        leaveFill();
        phase_ = Phase::Deciding;
        auto meta = wc_->server->store->lookup(key_);
        std::string status = cacheStatus_ + "; fwd-status=304";  // keeps "collapsed" for followers
        revalidated_ = true;
        if (meta && meta->kind == cache::ObjectMeta::Kind::Complete && serveStored(meta, cache::Step::Hit, status))
          return;
        if (stale_ && serveStored(stale_, cache::Step::Hit, status)) return;
        revalidated_ = false;
        answerError(502, "revalidated object vanished");
        return;
      }
      case K::ServeStale:
      case K::ServeDisconnected: {
        auto stale = stale_;
        leader_ = false;
        leaveFill();
        phase_ = Phase::Deciding;
        const auto step = h.kind == K::ServeStale ? cache::Step::HitStaleIfError : cache::Step::HitStaleDisconnected;
        if (serveStored(stale, step)) return;
        answerError(snap.error.code == Errc::Timeout ? 504 : 502, snap.error.message());
        return;
      }
      case K::Fail:
        answerError(h.status, snap.error.message());
        return;
      case K::FetchOwn:
        leaveFill();
        phase_ = Phase::Deciding;
        startPass(cache::Step::PassMiss);
        return;
      case K::FetchVariant:
        leaveFill();
        phase_ = Phase::Deciding;
        key_ = cache::CacheKey::fromText(mine);
        refetchWithoutStored();
        return;
      case K::Send:
        phase_ = Phase::Sending;
        sendFillHead(snap);
        return;
    }
  }
}

void Transaction::sendFillHead(const cache::Fill::Snapshot& snap) {
  const cache::ObjectMeta& h = fill_->head();
  if (snap.cacheable) cacheStatus_ += "; stored";
  cacheStatus_ += "; fwd-status=" + std::to_string(h.status);
  bool noBody = false;
  // A private fill carries the origin's own answer (ranges included): no
  // range handling here. A shared fill holds the whole object. The first
  // answer carries its age too (RFC 9111 §4.2.3: the origin's Age corrected
  // by the response delay), not only the hits after it.
  headOut_ = responseHead(h, snap.length, fill_->shared(), cache::currentAge(h, wc_->server->clock->nowSeconds()),
                          &noBody);
  if (noBody || segs_.empty()) {
    flushHead();
    finish(true);
    return;
  }
  beginBody();
}

void Transaction::finish(bool clean) {
  if (phase_ == Phase::Finished) return;
  phase_ = Phase::Finished;
  finished_ = true;
  releaseBuffer();
  stopReadingFill();  // fill_ itself stays for the checks after finish()
  countServed();
  if (!clean) result_ = RequestResult::Error;  // cut short: the fill failed or the file was short
  if (conn_) {
    conn_->noteOutcome(result_, cacheStatus_);  // the connection counts and logs it
    conn_->endResponse(clean);  // deletes this transaction later
  }
}

void Transaction::countServed() {
  // Once per transaction, on its loop: a probe of the loop's fixed
  // top-objects table (common/top_table.h). Bytes from stored objects are
  // counted where they are sent (bytes_from_store, body_sender.cc).
  if (!key_.text.empty()) wc_->top.add(key_.hash.lo, key_.text, bytesSent_);
}

}  // namespace orchard::server
