// Transaction implementation; see transaction.h for the steps.
#include "server/transaction.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cache/policy.h"
#include "common/log.h"
#include "server/client_conn.h"

namespace orchard::server {

Transaction::Transaction(ClientConn* conn, RequestHead req)
    : conn_(conn), wc_(conn->wc()), req_(std::move(req)), startMs_(wc_->server->clock->monotonicMs()) {}

Transaction::~Transaction() {
  *alive_ = false;
  if (buf_) wc_->buffers.put(buf_);
  if (fd_ >= 0) ::close(fd_);
  if (fill_ && leader_) fill_->removeReader();
  if (driver_) driver_->detachBody();
}

void Transaction::onConnClosed() {
  conn_ = nullptr;
  *alive_ = false;
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
  if (!req_.keepAlive) out += "Connection: close\r\n";
  out += "\r\n";
  if (req_.method != "HEAD") out += body;
  conn_->write(std::move(out));
  finish(true);
}

void Transaction::answerError(int status, std::string_view detail) {
  std::string body = "{\"error\":\"";
  body += reasonPhrase(status);
  body += "\",\"detail\":\"";
  for (char c : detail) {
    if (c == '"' || c == '\\') body += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) body += c;
  }
  body += "\"}\n";
  std::string extra;
  if (!cacheStatus_.empty()) extra = "Cache-Status: " + cacheStatus_ + "\r\n";
  answer(status, "application/json", body, extra);
}

void Transaction::start() {
  if (!conn_->peerAllowed()) {
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
  route_ = route(in, wc_->server->router);
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
  if (!get && !head) {
    startPass("orchard; fwd=method");
    return;
  }
  if (req_.header("Authorization")) {
    // Credentials: never shared with other clients' requests.
    startPass("orchard; fwd=request");
    return;
  }
  cache::CacheKey key = cache::CacheKey::fromText(route_.keyText);
  if (serveHit(key)) return;
  if (head) {
    startPass("orchard; fwd=miss");
    return;
  }
  auto acquired = wc_->server->fills->acquire(key);
  if (!acquired.fill) {
    // Committed between our lookup and the table: it is a hit now.
    if (serveHit(key)) return;
    startPass("orchard; fwd=miss");
    return;
  }
  if (acquired.created) {
    wc_->counters.add(wc_->counters.misses);
    cacheStatus_ = "orchard; fwd=miss";
    startFill(acquired.fill, true);
    follow(acquired.fill, true);
  } else {
    wc_->counters.add(wc_->counters.collapsed);
    cacheStatus_ = "orchard; fwd=miss; collapsed";
    follow(acquired.fill, false);
  }
}

bool Transaction::serveHit(const cache::CacheKey& key) {
  cache::Store* store = wc_->server->store;
  auto meta = store->lookup(key);
  if (!meta) return false;
  auto fd = store->openObject(key, *meta);
  if (!fd) return false;  // missing or wrong size: dropped by the store, refetch
  wc_->counters.add(wc_->counters.hits);
  fd_ = fd.value();
  end_ = meta->size;
  headOnly_ = req_.method == "HEAD";
  cacheStatus_ = "orchard; hit";
  status_ = meta->status;

  int64_t now = wc_->server->clock->nowSeconds();
  std::string out;
  out.reserve(512);
  out += "HTTP/1.1 ";
  out += std::to_string(meta->status);
  out += ' ';
  out += meta->reason;
  out += "\r\n";
  for (const auto& [k, v] : meta->headers) {
    if (iequals(k, "Age")) continue;
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += "Content-Length: " + std::to_string(meta->size) + "\r\n";
  out += "Age: " + std::to_string(cache::currentAge(*meta, now)) + "\r\n";
  out += "Cache-Status: orchard; hit\r\n";
  if (!findHeader(meta->headers, "Accept-Ranges")) out += "Accept-Ranges: none\r\n";
  if (!req_.keepAlive) out += "Connection: close\r\n";
  out += "\r\n";
  conn_->write(std::move(out));
  if (headOnly_) {
    finish(true);
    return true;
  }
  buf_ = wc_->buffers.get();
  pump();
  return true;
}

UpstreamRequest Transaction::upstreamRequest(bool shared) const {
  UpstreamRequest u;
  u.host = route_.host;
  u.port = route_.port;
  u.headMethod = req_.method == "HEAD";
  u.hasBody = req_.hasBody();
  u.bodyChunked = req_.chunked;
  u.retryable = (req_.method == "GET" || req_.method == "HEAD") && !u.hasBody;
  std::string& h = u.head;
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
      continue;  // the shared fill fetches the whole object for everyone
    h += k;
    h += ": ";
    h += v;
    h += "\r\n";
  }
  if (req_.chunked) h += "Transfer-Encoding: chunked\r\n";
  else if (req_.contentLength) h += "Content-Length: " + std::to_string(*req_.contentLength) + "\r\n";
  h += "Via: 1.1 orchard\r\n\r\n";
  return u;
}

void Transaction::startFill(std::shared_ptr<cache::Fill> fill, bool shared) {
  FillDriver::RequestInfo info;
  info.method = req_.method;
  if (auto cc = req_.header("Cache-Control")) info.cacheControl = std::string(*cc);
  info.hasAuthorization = req_.header("Authorization").has_value();
  BodySource* body = req_.hasBody() ? this : nullptr;
  driver_ = FillDriver::start(wc_, std::move(fill), upstreamRequest(shared), std::move(info), body);
  if (!body) driver_ = nullptr;  // only kept to feed the request body
  else conn_->pauseReading();    // until the upstream connection can take bytes
}

void Transaction::startPass(std::string cacheStatus) {
  wc_->counters.add(wc_->counters.passes);
  cacheStatus_ = std::move(cacheStatus);
  cache::CacheKey key = cache::CacheKey::fromText(route_.keyText.empty() ? req_.target : route_.keyText);
  auto fill = std::make_shared<cache::Fill>(std::move(key), wc_->server->store, false);
  startFill(fill, false);
  follow(std::move(fill), true);
}

void Transaction::onRequestBody(const char* data, size_t n) {
  if (!driver_) return;  // nobody wants it (answered already, or the exchange ended)
  driver_->writeBody(data, n);
  if (conn_ && driver_ && driver_->queuedBytes() > UpstreamExchange::kHighWater) conn_->pauseReading();
}

void Transaction::onRequestComplete() {
  if (driver_) driver_->endBody();
}

void Transaction::onBodyWritable() {
  if (conn_) conn_->resumeReading();
}

// ---- following a fill ----

void Transaction::follow(std::shared_ptr<cache::Fill> fill, bool leader) {
  fill_ = std::move(fill);
  leader_ = leader;
  if (leader_) fill_->addReader();
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
      case cache::Fill::State::Failed:
        if (!snap.hasHead) {
          // Nothing was answered: the origin failed before its head.
          answerError(snap.error.code == Errc::Timeout ? 504 : 502, snap.error.message());
          return;
        }
        [[fallthrough]];
      case cache::Fill::State::Streaming:
      case cache::Fill::State::Complete:
        if (!leader_ && fill_->shared() && !snap.cacheable && snap.state != cache::Fill::State::Failed) {
          // The answer is not shareable: fetch our own.
          fill_.reset();
          startPass("orchard; fwd=miss");
          return;
        }
        if (snap.state == cache::Fill::State::Failed) {
          answerError(502, snap.error.message());
          return;
        }
        sendFillHead(snap);
        return;
    }
  }
}

void Transaction::sendFillHead(const cache::Fill::Snapshot& snap) {
  const cache::ObjectMeta& h = fill_->head();
  status_ = h.status;
  if (snap.cacheable) cacheStatus_ += "; stored";
  std::string out;
  out.reserve(512);
  out += "HTTP/1.1 ";
  out += std::to_string(h.status);
  out += ' ';
  out += h.reason;
  out += "\r\n";
  for (const auto& [k, v] : h.headers) {
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  const bool noBody = h.status == 204 || h.status == 304 || (h.status >= 100 && h.status < 200);
  if (headOnly_) {
    if (!noBody) out += "Content-Length: " + std::to_string(h.size) + "\r\n";
  } else if (snap.length) {
    if (!noBody) out += "Content-Length: " + std::to_string(*snap.length) + "\r\n";
  } else if (req_.versionMajor == 1 && req_.versionMinor >= 1) {
    chunkedOut_ = true;
    out += "Transfer-Encoding: chunked\r\n";
  } else {
    conn_->disableKeepAlive();  // close-delimited for HTTP/1.0 clients
    req_.keepAlive = false;
  }
  out += "Cache-Status: " + cacheStatus_ + "; fwd-status=" + std::to_string(h.status) + "\r\n";
  if (!req_.keepAlive) out += "Connection: close\r\n";
  out += "\r\n";
  conn_->write(std::move(out));
  if (headOnly_ || noBody) {
    finish(true);
    return;
  }
  buf_ = wc_->buffers.get();
  pump();
}

// ---- the body loop ----

void Transaction::pump() {
  while (conn_ && !writing_ && !finished_) {
    cache::Fill::Snapshot snap;
    uint64_t avail;
    int fd;
    if (fill_) {
      snap = fill_->snapshot();
      avail = snap.committed;
      fd = fill_->fd();
    } else {
      avail = end_;
      fd = fd_;
      snap.state = cache::Fill::State::Complete;
    }
    if (cursor_ < avail) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(BufferPool::kSize, avail - cursor_));
      ssize_t n;
      do n = ::pread(fd, buf_, want, static_cast<off_t>(cursor_));
      while (n < 0 && errno == EINTR);
      if (n <= 0) {
        OLOG_RATE(log::Level::Warn, "read of %s failed at %llu: %s", route_.keyText.c_str(),
                  static_cast<unsigned long long>(cursor_), n < 0 ? std::strerror(errno) : "short file");
        finish(false);
        return;
      }
      uv_buf_t bufs[3];
      unsigned nb = 0;
      if (chunkedOut_) {
        int l = std::snprintf(chunkHead_, sizeof chunkHead_, "%zx\r\n", static_cast<size_t>(n));
        bufs[nb++] = uv_buf_init(chunkHead_, l);
      }
      bufs[nb++] = uv_buf_init(buf_, static_cast<unsigned>(n));
      if (chunkedOut_) bufs[nb++] = uv_buf_init(const_cast<char*>("\r\n"), 2);
      cursor_ += static_cast<uint64_t>(n);
      bytesSent_ += static_cast<uint64_t>(n);
      wc_->counters.add(wc_->counters.bytes_to_clients, static_cast<uint64_t>(n));
      writing_ = true;
      conn_->writeBody(bufs, nb, &Transaction::onBodyWritten);
      return;
    }
    if (snap.state == cache::Fill::State::Complete) {
      if (chunkedOut_) conn_->write("0\r\n\r\n");
      finish(true);
      return;
    }
    if (snap.state == cache::Fill::State::Failed) {
      finish(false);  // no clean end of message: the client must not take this as whole
      return;
    }
    std::weak_ptr<bool> alive = alive_;
    if (fill_->waitIfUnchanged(snap, &wc_->worker->executor(), [alive, this] {
          if (auto a = alive.lock(); a && *a) pump();
        }))
      return;
  }
}

void Transaction::onBodyWritten(Transaction* t, int status) {
  t->writing_ = false;
  if (status != 0) {
    t->finish(false);
    return;
  }
  t->pump();
}

void Transaction::finish(bool clean) {
  if (finished_) return;
  finished_ = true;
  if (buf_) {
    wc_->buffers.put(buf_);
    buf_ = nullptr;
  }
  if (fill_ && leader_) {
    fill_->removeReader();
    leader_ = false;
  }
  accessLog();
  if (conn_) conn_->endResponse(clean);  // deletes this transaction later
}

void Transaction::accessLog() const {
  if (!wc_->server->config.accessLog) return;
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
  line("store_limit_bytes", "storage.cache_limit", "gauge", ctx.config.cacheLimit);
  line("fills_in_flight", "shared origin fetches in progress", "gauge", ctx.fills->inFlight());
  return out;
}

std::string renderStatus(const ServerContext& ctx) {
  CounterTotals t = sumCounters(ctx.counters);
  auto st = ctx.store->stats();
  int64_t now = ctx.clock->nowSeconds();
  char since[30];
  cache::formatHttpDate(ctx.startedAt, since);
  uint64_t limit = ctx.config.cacheLimit;
  uint64_t freeBytes = limit > st.bytes ? limit - st.bytes : 0;
  uint64_t lookups = t.hits + t.misses + t.collapsed;
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%.4f", lookups ? static_cast<double>(t.hits) / static_cast<double>(lookups) : 0.0);
  std::string out = "{";
  auto num = [&](const char* k, uint64_t v) {
    out += '"';
    out += k;
    out += "\":";
    out += std::to_string(v);
    out += ',';
  };
  num("TotalBytesReturnedToClients", t.bytes_to_clients);
  num("TotalBytesStoredFromOrigin", t.bytes_stored);
  num("TotalBytesDropped", t.bytes_from_origin > t.bytes_stored ? t.bytes_from_origin - t.bytes_stored : 0);
  out += "\"TotalBytesAreSince\":\"";
  out += since;
  out += "\",";
  num("CacheUsed", st.bytes);
  num("CacheFree", freeBytes);
  num("CacheLimit", limit);
  out += "\"CacheStatus\":\"";
  out += (limit && freeBytes < limit / 20) ? "LOWSPACE" : "OK";
  out += "\",";
  num("Objects", st.objects);
  out += "\"HitRatio\":";
  out += ratio;
  out += ',';
  num("FillsInFlight", ctx.fills->inFlight());
  num("UptimeSeconds", static_cast<uint64_t>(std::max<int64_t>(0, now - ctx.startedAt)));
  num("Requests", t.requests);
  out.back() = '}';
  out += '\n';
  return out;
}

}  // namespace orchard::server
