// Transaction implementation; see transaction.h for the steps.
#include "server/proxy/transaction.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "cache/range.h"
#include "common/log.h"

namespace orchard::server {
namespace {
constexpr uint64_t kToEnd = std::numeric_limits<uint64_t>::max();
}

Transaction::Transaction(ResponseWriter* conn, RequestHead req)
    : conn_(conn), wc_(conn->wc()), snap_(wc_->pinSnapshot()), req_(std::move(req)), startMs_(wc_->server->clock->monotonicMs()) {}

Transaction::~Transaction() {
  *alive_ = false;
  if (buf_) wc_->buffers.put(buf_);
  if (fd_ >= 0) {
    if (cachedFd_) wc_->files.release(key_.hash, fdGen_);
    else ::close(fd_);
  }
  leaveFill();
  if (driver_) driver_->detachBody();
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
  conn_ = nullptr;
  *alive_ = false;
  stopReadingFill();
  if (!finished_) {
    finished_ = true;
    accessLog();
  }
}

// ---- answers ----

void Transaction::answer(int status, std::string_view contentType, std::string_view body, std::string_view extra) {
  status_ = status;
  std::string out;
  out.reserve(256 + body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reasonPhrase(status);
  out += "\r\n";
  if (!contentType.empty()) {
    out += "Content-Type: ";
    out += contentType;
    out += "\r\n";
  }
  out += "Content-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  out += extra;
  // An answer before the request body ended closes the connection (the
  // rest of the body is not read): say so.
  if (!req_.keepAlive || (req_.hasBody() && !requestComplete_)) out += "Connection: close\r\n";
  out += "\r\n";
  if (req_.method != "HEAD") out += body;
  if (conn_) conn_->write(std::move(out));
  finish(true);
}

void Transaction::answerError(int status, std::string_view detail) {
  std::string extra;
  if (!cacheStatus_.empty()) extra = "Cache-Status: " + cacheStatus_ + "\r\n";
  answer(status, "application/json", errorBody(status, detail), extra);
}

void Transaction::start() {
  if (!config::anyContains(snap_->config.allowClients, conn_->peer())) {
    wc_->counters.add(wc_->counters.denied);
    answerError(403, "client address not allowed");
    return;
  }
  RouteInput in;
  in.method = req_.method;
  in.target = req_.target;
  auto host = req_.header("Host");
  in.host = host ? *host : std::string_view();
  auto mf = req_.header("Max-Forwards");
  in.maxForwardsZero = mf && *mf == "0";
  route_ = route(in, snap_->router);
  if (route_.kind == Route::Kind::Proxy) {
    for (const auto& [k, v] : req_.headers) {
      if (iequals(k, "Via") && v.find(wc_->server->viaName) != std::string::npos) {
        wc_->counters.add(wc_->counters.bad_requests);
        answerError(508, "this request already passed through this box");
        return;
      }
    }
  }
  switch (route_.kind) {
    case Route::Kind::Probe:
      wc_->counters.add(wc_->counters.local);
      answer(200, "", "", "Accept-Ranges: bytes\r\n");
      return;
    case Route::Kind::Deny:
      wc_->counters.add(wc_->counters.denied);
      answerError(route_.status, route_.reason);
      return;
    case Route::Kind::Reject:
      wc_->counters.add(wc_->counters.bad_requests);
      answerError(route_.status, route_.reason);
      return;
    case Route::Kind::Local:
      local();
      return;
    case Route::Kind::Proxy:
      proxy();
      return;
  }
}

void Transaction::local() {
  const bool read = req_.method == "GET" || req_.method == "HEAD";
  if (route_.path == "/metrics" && read) {
    wc_->counters.add(wc_->counters.local);
    answer(200, "text/plain; version=0.0.4", renderMetrics(*wc_->server));
    return;
  }
  if (route_.path == "/api/v1/status" && read) {
    wc_->counters.add(wc_->counters.local);
    answer(200, "application/json", renderStatus(*wc_->server));
    return;
  }
  wc_->counters.add(wc_->counters.denied);
  if (route_.host.empty()) answerError(403, "no upstream host named and not a local route");
  else answerError(403, "host not allowed: " + route_.host);
}

// ---- proxying ----

void Transaction::proxy() {
  const bool get = req_.method == "GET";
  const bool head = req_.method == "HEAD";
  primaryKey_ = route_.keyText;
  key_ = cache::CacheKey::fromText(route_.keyText);
  if (!get && !head) {
    startPass("orchard; fwd=method");
    return;
  }
  if (req_.header("Authorization")) {
    // Credentials: never shared with other clients' requests.
    startPass("orchard; fwd=request");
    return;
  }
  lookup();
}

void Transaction::lookup() {
  cache::Store* store = wc_->server->store;
  auto meta = store->lookup(key_);
  if (meta && meta->kind == cache::ObjectMeta::Kind::VaryStub) {
    std::vector<std::string> fields;
    size_t i = 0;
    while (i <= meta->vary.size()) {
      size_t j = meta->vary.find(',', i);
      if (j == std::string::npos) j = meta->vary.size();
      if (j > i) fields.emplace_back(meta->vary.substr(i, j - i));
      i = j + 1;
    }
    key_ = cache::CacheKey::fromText(cache::variantKeyText(primaryKey_, fields, req_.headers));
    meta = store->lookup(key_);
    if (meta && meta->kind != cache::ObjectMeta::Kind::Complete) meta = nullptr;
  }
  auto cc = req_.header("Cache-Control");
  cache::CacheControl reqCc = cache::parseCacheControl(cc ? *cc : std::string_view());
  if (meta) {
    bool pragma = headerHasToken(req_.headers, "Pragma", "no-cache");
    auto d = cache::decideCached(*meta, cc ? *cc : std::string_view(), pragma, wc_->server->clock->nowSeconds(),
                                 cache::FreshnessConfig{});
    switch (d.action) {
      case cache::CachedDecision::Action::Serve:
        if (serveStored(meta, "orchard; hit")) return;
        break;
      case cache::CachedDecision::Action::ServeStaleAndRevalidate:
        if (req_.method == "GET") backgroundRevalidate(meta);  // a HEAD cannot refresh a body
        if (serveStored(meta, "orchard; hit; detail=stale-while-revalidate")) return;
        break;
      case cache::CachedDecision::Action::Revalidate:
        if (reqCc.onlyIfCached) {
          if (!d.mustRevalidate && serveStored(meta, "orchard; hit; detail=only-if-cached")) return;
          answerError(504, "only-if-cached: no usable stored response");
          return;
        }
        if (req_.method == "HEAD") {
          // A shared revalidation must be a GET (followers want the body): ask the origin directly.
          startPass("orchard; fwd=stale");
          return;
        }
        revalidate(meta, d.staleIfErrorAllowed);
        return;
    }
  }
  if (reqCc.onlyIfCached) {
    cacheStatus_ = "orchard; fwd=miss";
    answerError(504, "only-if-cached: not stored");
    return;
  }
  miss();
}

void Transaction::miss() {
  if (req_.method == "HEAD") {
    startPass("orchard; fwd=miss");
    return;
  }
  auto acquired = wc_->server->fills->acquire(key_);
  if (!acquired.fill) {
    // Committed between our lookup and the table: look again.
    auto meta = wc_->server->store->lookup(key_);
    if (meta && meta->kind == cache::ObjectMeta::Kind::Complete && serveStored(meta, "orchard; hit")) return;
    startPass("orchard; fwd=miss");
    return;
  }
  if (acquired.created) {
    wc_->counters.add(wc_->counters.misses);
    cacheStatus_ = "orchard; fwd=miss";
    // Start where this client needs bytes: a Range far in starts there, and
    // the rest of the object fills behind it.
    uint64_t start = 0;
    if (auto r = req_.header("Range")) {
      auto items = cache::parseRange(*r);
      if (items && items->size() == 1 && items->front().first && *items->front().first >= cache::Fill::kLookahead)
        start = *items->front().first;
    }
    startDriver(acquired.fill, acquired.fill->firstFetch(start), false);
    follow(acquired.fill, true);
  } else {
    wc_->counters.add(wc_->counters.collapsed);
    cacheStatus_ = "orchard; fwd=miss; collapsed";
    follow(acquired.fill, false);
  }
}

void Transaction::revalidate(std::shared_ptr<const cache::ObjectMeta> stale, bool staleIfError) {
  stale_ = std::move(stale);
  staleIfError_ = staleIfError;
  auto acquired = wc_->server->fills->acquire(key_, stale_);
  if (!acquired.fill) {
    miss();
    return;
  }
  revalidating_ = acquired.fill->revalidating() != nullptr;
  if (acquired.created) {
    wc_->counters.add(wc_->counters.misses);
    cacheStatus_ = "orchard; fwd=stale";
    startDriver(acquired.fill, acquired.fill->firstFetch(0), false);
    follow(acquired.fill, true);
  } else {
    wc_->counters.add(wc_->counters.collapsed);
    cacheStatus_ = "orchard; fwd=stale; collapsed";
    follow(acquired.fill, false);
  }
}

void Transaction::backgroundRevalidate(std::shared_ptr<const cache::ObjectMeta> stale) {
  auto acquired = wc_->server->fills->acquire(key_, std::move(stale));
  if (acquired.fill && acquired.created) startDriver(acquired.fill, acquired.fill->firstFetch(0), false);
}

std::shared_ptr<const UpstreamTemplate> Transaction::upstreamTemplate(bool shared) const {
  auto t = std::make_shared<UpstreamTemplate>();
  t->host = route_.host;
  t->port = route_.port;
  t->method = req_.method;
  t->hasBody = req_.hasBody();
  t->bodyChunked = req_.chunked;
  t->requestHeaders = req_.headers;
  if (auto cc = req_.header("Cache-Control")) t->requestCacheControl = std::string(*cc);
  t->hasAuthorization = req_.header("Authorization").has_value();
  t->primaryKey = primaryKey_.empty() ? route_.keyText : primaryKey_;
  std::string& h = t->headPrefix;
  h.reserve(1024);
  h += req_.method;
  h += ' ';
  h += route_.upstreamTarget;
  h += " HTTP/1.1\r\nHost: ";
  h += route_.hostHeader;
  h += "\r\n";
  for (const auto& [k, v] : endToEndHeaders(req_.headers)) {
    if (iequals(k, "Host")) continue;
    if (shared && (iequals(k, "Range") || iequals(k, "If-Range") || iequals(k, "If-None-Match") ||
                   iequals(k, "If-Modified-Since") || iequals(k, "If-Match") || iequals(k, "If-Unmodified-Since")))
      continue;  // the shared fill fetches the object for everyone, in its own runs
    h += k;
    h += ": ";
    h += v;
    h += "\r\n";
  }
  // Framing is ours to write. A GET or HEAD reaching here has no body (the
  // connection refused any other), so it carries none: a stray
  // Content-Length would make the origin wait for bytes that never come.
  const bool bodiless = req_.method == "GET" || req_.method == "HEAD";
  if (req_.chunked && !bodiless) h += "Transfer-Encoding: chunked\r\n";
  else if (req_.contentLength && !bodiless) h += "Content-Length: " + std::to_string(*req_.contentLength) + "\r\n";
  h += "Via: 1.1 " + wc_->server->viaName + "\r\n";
  return t;
}

void Transaction::startDriver(const std::shared_ptr<cache::Fill>& fill, cache::Fill::Fetch fetch, bool feedBody) {
  if (!template_) template_ = upstreamTemplate(fill->shared());
  FillDriver* d = FillDriver::start(wc_, fill, fetch, template_, feedBody ? this : nullptr);
  if (feedBody) {
    driver_ = d;
    if (conn_) conn_->pauseReading();  // until the upstream connection can take bytes
  }
}

void Transaction::startPass(std::string cacheStatus) {
  wc_->counters.add(wc_->counters.passes);
  cacheStatus_ = std::move(cacheStatus);
  auto fill = std::make_shared<cache::Fill>(key_, wc_->server->store, false);
  template_ = upstreamTemplate(false);
  startDriver(fill, fill->firstFetch(0), req_.hasBody());
  follow(std::move(fill), true);
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

std::string Transaction::responseHead(const cache::ObjectMeta& meta, std::optional<uint64_t> length, bool allowRanges,
                                      int64_t age, bool* noBody) {
  int status = meta.status;
  const bool bodiless = status == 204 || status == 304 || (status >= 100 && status < 200);
  segs_.clear();
  seg_ = 0;
  trailer_.clear();
  std::string framing;
  std::string contentType(meta.header("Content-Type"));

  cache::RangeResult rr;
  if (allowRanges && length && status == 200 && !bodiless) {
    auto range = req_.header("Range");
    auto ifRange = req_.header("If-Range");
    if (range && (!ifRange || cache::ifRangeMatches(*ifRange, meta.etag, meta.lastModified, meta.header("Date"))))
      rr = cache::evaluateRange(range, *length);
  }
  if (rr.outcome == cache::RangeOutcome::Unsatisfiable) {
    status = 416;
    framing = "Content-Range: bytes */" + std::to_string(*length) + "\r\nContent-Length: 0\r\n";
    *noBody = true;
  } else if (rr.outcome == cache::RangeOutcome::Partial && rr.ranges.size() == 1) {
    status = 206;
    const auto& r = rr.ranges.front();
    framing = "Content-Range: " + cache::contentRange(r, *length) + "\r\nContent-Length: " +
              std::to_string(r.size()) + "\r\n";
    segs_.push_back(Segment{{}, r.first, r.last + 1});
  } else if (rr.outcome == cache::RangeOutcome::Partial) {
    status = 206;
    static const char kBoundary[] = "ORCHARD_BYTERANGES_7d1f";
    uint64_t total = 0;
    for (const auto& r : rr.ranges) {
      std::string part = "\r\n--";
      part += kBoundary;
      part += "\r\n";
      if (!contentType.empty()) part += "Content-Type: " + contentType + "\r\n";
      part += "Content-Range: " + cache::contentRange(r, *length) + "\r\n\r\n";
      total += part.size() + r.size();
      segs_.push_back(Segment{std::move(part), r.first, r.last + 1});
    }
    trailer_ = std::string("\r\n--") + kBoundary + "--\r\n";
    total += trailer_.size();
    framing = std::string("Content-Type: multipart/byteranges; boundary=") + kBoundary + "\r\nContent-Length: " +
              std::to_string(total) + "\r\n";
  } else if (headOnly_) {
    // A stored object's size, or the length the origin declared to a HEAD.
    if (!bodiless) framing = "Content-Length: " + std::to_string(meta.size) + "\r\n";
  } else if (bodiless) {
    *noBody = true;
  } else if (length) {
    framing = "Content-Length: " + std::to_string(*length) + "\r\n";
    segs_.push_back(Segment{{}, 0, *length});
    wholeBody_ = true;
  } else if (req_.versionMajor == 1 && req_.versionMinor >= 1) {
    wholeBody_ = true;
    chunkedOut_ = true;
    framing = "Transfer-Encoding: chunked\r\n";
    segs_.push_back(Segment{{}, 0, kToEnd});
  } else {
    if (conn_) conn_->disableKeepAlive();  // close-delimited for HTTP/1.0 clients
    req_.keepAlive = false;
    segs_.push_back(Segment{{}, 0, kToEnd});
    wholeBody_ = true;
  }
  if (headOnly_) *noBody = true;
  status_ = status;

  std::string out;
  out.reserve(512);
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += status == 206 ? "Partial Content" : status == 416 ? "Range Not Satisfiable" : meta.reason;
  out += "\r\n";
  const bool multipart = rr.outcome == cache::RangeOutcome::Partial && rr.ranges.size() > 1;
  for (const auto& [k, v] : meta.headers) {
    if (iequals(k, "Age") || iequals(k, "Accept-Ranges")) continue;
    if (multipart && iequals(k, "Content-Type")) continue;
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += framing;
  if (length) out += "Accept-Ranges: bytes\r\n";
  if (age >= 0) out += "Age: " + std::to_string(age) + "\r\n";
  out += "Cache-Status: " + cacheStatus_ + "\r\n";
  if (!req_.keepAlive) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

bool Transaction::serveStored(std::shared_ptr<const cache::ObjectMeta> meta, std::string cacheStatus) {
  cache::Store* store = wc_->server->store;
  headOnly_ = req_.method == "HEAD";
  int64_t now = wc_->server->clock->nowSeconds();
  if (cache::notModified(req_.headers, *meta)) {
    // The client already has it: 304 with the validators and caching headers.
    wc_->counters.add(wc_->counters.hits);
    store->touch(key_);
    cacheStatus_ = std::move(cacheStatus);
    status_ = 304;
    std::string out = "HTTP/1.1 304 Not Modified\r\n";
    for (const auto& [k, v] : meta->headers) {
      if (iequals(k, "ETag") || iequals(k, "Cache-Control") || iequals(k, "Expires") || iequals(k, "Vary") ||
          iequals(k, "Date") || iequals(k, "Last-Modified") || iequals(k, "Content-Location"))
        out += k + ": " + v + "\r\n";
    }
    out += "Age: " + std::to_string(cache::currentAge(*meta, now)) + "\r\n";
    out += "Cache-Status: " + cacheStatus_ + "\r\n";
    if (!req_.keepAlive) out += "Connection: close\r\n";
    out += "\r\n";
    if (conn_) conn_->write(std::move(out));
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
  cacheStatus_ = std::move(cacheStatus);
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
      if (cachedFd_) wc_->files.release(key_.hash, fdGen_);
      else ::close(fd_);
      fd_ = -1;
      cachedFd_ = false;
      pin_.reset();
      headOut_.clear();
      segs_.clear();
      trailer_.clear();
      wholeBody_ = chunkedOut_ = false;
      status_ = 0;
      return false;
    }
  }
  storedMeta_ = std::move(meta);  // the last use of the parameter
  wc_->counters.add(wc_->counters.hits);
  store->touch(key_);
  if (noBody || segs_.empty()) {
    flushHead();
    finish(true);
    return true;
  }
  cursor_ = segs_.front().first;
  buf_ = wc_->buffers.get();
  pump();
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
  headOnly_ = req_.method == "HEAD";
  waitHead();
}

void Transaction::waitHead() {
  if (!conn_) return;
  while (true) {
    auto snap = fill_->snapshot();
    switch (snap.state) {
      case cache::Fill::State::Pending: {
        std::weak_ptr<bool> alive = alive_;
        if (fill_->waitIfUnchanged(snap, &wc_->worker->executor(), [alive, this] {
              if (auto a = alive.lock(); a && *a) waitHead();
            }))
          return;
        continue;
      }
      case cache::Fill::State::Revalidated: {
        // 304: the stored object is fresh again.
        leader_ = false;
        leaveFill();
        auto meta = wc_->server->store->lookup(key_);
        std::string status = cacheStatus_ + "; fwd-status=304";  // keeps "collapsed" for followers
        if (meta && meta->kind == cache::ObjectMeta::Kind::Complete && serveStored(meta, status)) return;
        if (stale_ && serveStored(stale_, status)) return;
        answerError(502, "revalidated object vanished");
        return;
      }
      case cache::Fill::State::Failed:
        if (!snap.hasHead) {
          if (stale_ && staleIfError_) {
            auto stale = stale_;
            leader_ = false;
            leaveFill();
            if (serveStored(stale, "orchard; hit; detail=stale-if-error")) return;
          }
          // Nothing was answered: the origin failed before its head.
          answerError(snap.error.code == Errc::Timeout ? 504 : 502, snap.error.message());
          return;
        }
        answerError(502, snap.error.message());
        return;
      case cache::Fill::State::Streaming:
      case cache::Fill::State::Complete: {
        if (!leader_ && fill_->shared() && !snap.shareable) {
          // The answer is not for other clients (private, Vary: *, ...): fetch our own.
          leaveFill();
          startPass("orchard; fwd=miss");
          return;
        }
        if (!leader_ && fill_->shared() && fill_->storeKey().text != key_.text) {
          // It varies, and this request selects another variant.
          auto fields = cache::varyFields(fill_->head().headers);
          std::string mine = cache::variantKeyText(primaryKey_, fields, req_.headers);
          if (mine != fill_->storeKey().text) {
            leaveFill();
            key_ = cache::CacheKey::fromText(mine);
            cacheStatus_ = "orchard; fwd=vary-miss";
            miss();
            return;
          }
        }
        sendFillHead(snap);
        return;
      }
    }
  }
}

void Transaction::sendFillHead(const cache::Fill::Snapshot& snap) {
  const cache::ObjectMeta& h = fill_->head();
  if (snap.cacheable) cacheStatus_ += "; stored";
  cacheStatus_ += "; fwd-status=" + std::to_string(h.status);
  bool noBody = false;
  // A private fill carries the origin's own answer (ranges included): no
  // range handling here. A shared fill holds the whole object.
  headOut_ = responseHead(h, snap.length, fill_->shared(), -1, &noBody);
  if (noBody || segs_.empty()) {
    flushHead();
    finish(true);
    return;
  }
  cursor_ = segs_.front().first;
  buf_ = wc_->buffers.get();
  pump();
}

// ---- the body loop ----

void Transaction::pump() {
  while (conn_ && !writing_ && !finished_) {
    if (seg_ >= segs_.size()) {
      if (fill_ && fill_->snapshot().state == cache::Fill::State::Failed) {
        finish(false);
        return;
      }
      flushHead();
      std::string tail = trailer_;
      if (chunkedOut_) tail += "0\r\n\r\n";
      if (!tail.empty() && conn_) conn_->write(std::move(tail));
      finish(true);
      return;
    }
    Segment& s = segs_[seg_];
    if (!prefixSent_) {
      if (!s.prefix.empty()) {
        flushHead();
        if (conn_) conn_->write(s.prefix);
        if (!conn_) return;  // a failed write closed the connection under us
      }
      prefixSent_ = true;
      cursor_ = s.first;
    }
    cache::Fill::Snapshot snap;
    uint64_t end = s.end;
    uint64_t avail;
    int fd;
    if (fill_) {
      snap = fill_->snapshot();  // before readable(): a change in between shows in its version
      if (snap.length) end = std::min(end, *snap.length);
      avail = cursor_ < end ? fill_->readable(cursor_) : 0;
      fd = -1;  // fill_->read() picks the file or the relay window
    } else {
      avail = cursor_ < end ? end - cursor_ : 0;
      fd = fd_;
    }
    if (cursor_ >= end) {
      ++seg_;
      prefixSent_ = false;
      continue;
    }
    if (avail > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>({BufferPool::kSize, avail, end - cursor_}));
      if (fill_ && wholeBody_ && snap.state == cache::Fill::State::Streaming && snap.length &&
          cursor_ + want >= *snap.length) {
        // The last bytes of a whole object go out only once the fill is
        // complete (durable and in the store): a client that has the whole
        // body and asks again gets a hit, and a fill that fails at the very
        // end never looks complete to anyone.
        flushHead();
        if (!conn_) return;
        std::weak_ptr<bool> alive = alive_;
        if (fill_->waitIfUnchanged(snap, &wc_->worker->executor(), [alive, this] {
              if (auto a = alive.lock(); a && *a) pump();
            }))
          return;
        continue;
      }
      ssize_t n;
      char* dst;
      // Many buffers lent out on this loop: clients that stopped reading.
      const bool pressure = wc_->buffers.inUse() > BufferPool::kPressure;
      if (chunkedOut_ && pressure) {
        // Under memory pressure (see the bounded writes below), a chunked
        // answer cannot take bytes back once its chunk size is written: it
        // reads 16 KiB at a time into a small buffer of its own instead and
        // gives the big one back.
        if (buf_) {
          wc_->buffers.put(buf_);
          buf_ = nullptr;
        }
        if (!small_) small_.reset(new char[BufferPool::kQueuedUnderPressure]);
        dst = small_.get();
        want = std::min(want, BufferPool::kQueuedUnderPressure);
        wc_->counters.add(wc_->counters.bounded_writes);
      } else {
        if (!buf_) buf_ = wc_->buffers.get();  // given back while a bounded write was queued
        dst = buf_;
      }
      if (fill_) {
        auto r = fill_->read(cursor_, dst, want, fillCursor_);
        n = r ? static_cast<ssize_t>(r.value()) : -1;
        if (!r) errno = r.error().sys ? r.error().sys : EIO;
      } else {
        // Blocks not verified yet are checked before their first send; a
        // corrupt one (dropped by the store) ends the response uncleanly.
        if (auto v = wc_->server->store->ensureVerified(key_, *storedMeta_, fd, cursor_, want); !v) {
          OLOG_RATE(log::Level::Warn, "hit on %s cut at %llu: %s", key_.text.c_str(),
                    static_cast<unsigned long long>(cursor_), v.error().message().c_str());
          finish(false);
          return;
        }
        do n = ::pread(fd, dst, want, static_cast<off_t>(cursor_));
        while (n < 0 && errno == EINTR);
      }
      if (n <= 0) {
        OLOG_RATE(log::Level::Warn, "read of %s failed at %llu: %s", key_.text.c_str(),
                  static_cast<unsigned long long>(cursor_), n < 0 ? std::strerror(errno) : "short file");
        finish(false);
        return;
      }
      uv_buf_t bufs[4];
      unsigned nb = 0;
      if (!headOut_.empty()) {
        // The head and the first bytes leave in one write.
        headInFlight_ = std::move(headOut_);
        headOut_.clear();
        bufs[nb++] = uv_buf_init(headInFlight_.data(), static_cast<unsigned>(headInFlight_.size()));
      }
      if (chunkedOut_) {
        int l = std::snprintf(chunkHead_, sizeof chunkHead_, "%zx\r\n", static_cast<size_t>(n));
        bufs[nb++] = uv_buf_init(chunkHead_, l);
      }
      bufs[nb++] = uv_buf_init(dst, static_cast<unsigned>(n));
      if (chunkedOut_) bufs[nb++] = uv_buf_init(const_cast<char*>("\r\n"), 2);
      writing_ = true;
      // Under memory pressure (many buffers lent out on this loop: clients
      // that stopped reading), a connection queues at most 16 KiB beyond
      // what its socket takes, as a copy, and this buffer goes back to the
      // pool; the rest is read again when the socket drains. Chunked
      // answers keep the plain path (a chunk's size is already written).
      const bool bounded = !chunkedOut_ && pressure;
      const size_t headLen = headInFlight_.size();
      size_t accepted = 0;
      int w = bounded ? conn_->writeBody(bufs, nb, std::max(BufferPool::kQueuedUnderPressure, headLen), &accepted)
                      : conn_->writeBody(bufs, nb);
      uint64_t taken = static_cast<uint64_t>(n);
      if (bounded && w == 0 && accepted < headLen + taken) {
        taken = accepted - headLen;  // the queued copy always covers the head
        wc_->counters.add(wc_->counters.bounded_writes);
        headInFlight_.clear();
        wc_->buffers.put(buf_);
        buf_ = nullptr;
      }
      cursor_ += taken;
      bytesSent_ += taken;
      wc_->counters.add(wc_->counters.bytes_to_clients, taken);
      if (w == 0) return;  // onBodyWritten continues
      writing_ = false;
      headInFlight_.clear();
      if (w < 0) return;  // closing: onConnClosed cleans up
      continue;
    }
    if (!fill_) {
      finish(false);  // the file is shorter than its record: never pass that off as whole
      return;
    }
    if (snap.state == cache::Fill::State::Failed) {
      finish(false);  // no clean end of message: the client must not take this as whole
      return;
    }
    if (snap.state == cache::Fill::State::Complete) {
      if (snap.length && cursor_ >= *snap.length) continue;  // end of a body of unknown length
      finish(false);
      return;
    }
    // Nothing here yet: the client gets the head now, the bytes are brought
    // (by a new fetcher if none will bring them soon), and we wait.
    flushHead();
    if (!conn_) return;
    if (auto fetch = fill_->need(cursor_)) startDriver(fill_, *fetch, false);
    std::weak_ptr<bool> alive = alive_;
    if (fill_->waitIfUnchanged(snap, &wc_->worker->executor(), [alive, this] {
          if (auto a = alive.lock(); a && *a) pump();
        }))
      return;
  }
}

void Transaction::flushHead() {
  if (headOut_.empty() || !conn_) return;
  conn_->write(std::move(headOut_));
  headOut_.clear();
}

void Transaction::onBodyWritten(int status) {
  writing_ = false;
  headInFlight_.clear();
  if (status != 0) {
    finish(false);
    return;
  }
  pump();
}

void Transaction::finish(bool clean) {
  if (finished_) return;
  finished_ = true;
  if (buf_) {
    wc_->buffers.put(buf_);
    buf_ = nullptr;
  }
  stopReadingFill();  // fill_ itself stays for the checks after finish()
  accessLog();
  if (conn_) conn_->endResponse(clean);  // deletes this transaction later
}

void Transaction::accessLog() const {
  if (!snap_->config.accessLog) return;
  int64_t ms = wc_->server->clock->monotonicMs() - startMs_;
  OLOG_INFO("access %s %s %d %llu %lldms \"%s\"", req_.method.c_str(), req_.target.c_str(), status_,
            static_cast<unsigned long long>(bytesSent_), static_cast<long long>(ms), cacheStatus_.c_str());
}

// ---- local routes ----

std::string renderMetrics(const ServerContext& ctx) {
  CounterTotals t = sumCounters(ctx.counters);
  std::string out;
  out.reserve(4096);
  auto line = [&](const char* name, const char* help, const char* type, uint64_t v) {
    out += "# HELP orchard_";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE orchard_";
    out += name;
    out += ' ';
    out += type;
    out += "\norchard_";
    out += name;
    out += ' ';
    out += std::to_string(v);
    out += '\n';
  };
#define ORCHARD_METRIC(name, help) line(#name "_total", help, "counter", t.name);
  ORCHARD_COUNTERS(ORCHARD_METRIC)
#undef ORCHARD_METRIC
  line("open_connections", "client connections open", "gauge", static_cast<uint64_t>(std::max<int64_t>(0, t.open_connections)));
  auto st = ctx.store->stats();
  line("store_objects", "complete objects in the store", "gauge", st.objects);
  line("store_bytes", "bytes of complete objects in the store", "gauge", st.bytes);
  line("store_corrupt_objects_total", "objects dropped because a block failed its checksum (hit or scrub)", "counter",
       st.corruptObjects);
  line("store_scrub_passes_total", "background scrub passes finished", "counter", st.scrubPasses);
  line("store_limit_bytes", "storage.cache_limit", "gauge", ctx.store->cacheLimit());
  line("fills_in_flight", "shared origin fetches in progress", "gauge", ctx.fills->inFlight());
  auto health = ctx.store->health().report(ctx.clock->monotonicMs());
  line("store_write_errors_total",
       "store writes (object and temp files, syncs, index records) that failed; each fill hit passed through uncached",
       "counter", health.writeErrors);
  line("store_degraded", "1 while store writes are failing (see CacheProblems in /api/v1/status)", "gauge",
       health.degraded ? 1 : 0);
  return out;
}

std::string renderStatus(const ServerContext& ctx) {
  CounterTotals t = sumCounters(ctx.counters);
  auto st = ctx.store->stats();
  int64_t now = ctx.clock->nowSeconds();
  char since[30];
  cache::formatHttpDate(ctx.startedAt, since);
  uint64_t limit = ctx.store->cacheLimit();
  uint64_t freeBytes = limit > st.bytes ? limit - st.bytes : 0;
  uint64_t lookups = t.hits + t.misses + t.collapsed;
  // CacheStatus: DEGRADED while store writes fail (misses are passed
  // through uncached), else LOWSPACE when the cache or its disk is nearly
  // full, else OK. CacheProblems says why, always present (empty when OK).
  std::vector<std::string> problems;
  auto health = ctx.store->health().report(ctx.clock->monotonicMs());
  if (health.degraded) problems.push_back(health.reason);
  uint64_t diskAvail = 0, diskReserve = 0;
  const bool diskLow = storageBelowReserve(ctx.startConfig.storageDir, &diskAvail, &diskReserve);
  if (diskLow)
    problems.push_back("disk below reserve: " + std::to_string(diskAvail) + " bytes free, " +
                       std::to_string(diskReserve) + " kept for the index (fills pass through uncached)");
  const bool cacheLow = limit && freeBytes < limit / 20;
  if (cacheLow) problems.push_back("cache nearly full: " + std::to_string(freeBytes) + " of " + std::to_string(limit) +
                                   " bytes free under storage.cache_limit");
  // Keys in the order an admin of Apple's content caching reads them.
  nlohmann::ordered_json j;
  j["TotalBytesReturnedToClients"] = t.bytes_to_clients;
  j["TotalBytesStoredFromOrigin"] = t.bytes_stored;
  j["TotalBytesDropped"] = t.bytes_from_origin > t.bytes_stored ? t.bytes_from_origin - t.bytes_stored : 0;
  j["TotalBytesAreSince"] = since;
  j["CacheUsed"] = st.bytes;
  j["CacheFree"] = freeBytes;
  j["CacheLimit"] = limit;
  j["CacheStatus"] = health.degraded ? "DEGRADED" : (diskLow || cacheLow) ? "LOWSPACE" : "OK";
  j["CacheProblems"] = problems;
  j["Objects"] = st.objects;
  j["CorruptObjectsFound"] = st.corruptObjects;
  j["HitRatio"] = lookups ? static_cast<double>(t.hits) / static_cast<double>(lookups) : 0.0;
  j["FillsInFlight"] = ctx.fills->inFlight();
  j["UptimeSeconds"] = static_cast<uint64_t>(std::max<int64_t>(0, now - ctx.startedAt));
  j["Requests"] = t.requests;
  return j.dump() + "\n";
}

}  // namespace orchard::server
