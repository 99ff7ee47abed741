// Upstream client: UpstreamConn (one pooled keep-alive connection to an
// origin over a TcpStream, responses parsed by the HTTP/1 codec),
// UpstreamExchange and UpstreamPool; see upstream.h for the contract. The
// hard parts: the connection outlives its exchange (it is pooled, retried
// once on a fresh connection when a pooled one was closed under us, or
// closed), so every callback re-checks the state after calling the sink,
// which may cancel inside any of them; request body bytes written before the
// head went out queue behind it; and a connection goes back to the pool only
// when both messages are framed to their end.
#include "server/http/upstream.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "common/log.h"
#include "server/http/codec.h"
#include "server/http/origin_resolve.h"
#include "server/metrics.h"
#include "server/net/tcp_stream.h"
#include "server/net/tls_context.h"
#include "server/net/tls_stream.h"

namespace orchard::server {

OriginErrorKind classifyOriginError(const Error& e) noexcept {
  const std::string_view ctx = e.context ? e.context : "";
  const bool tls = ctx.rfind("upstream: TLS", 0) == 0 || ctx.find("TLS client context") != std::string_view::npos;
  switch (e.code) {
    case Errc::Timeout: return OriginErrorKind::Timeout;
    case Errc::NotFound:  // DNS: no such name, or no answer
    case Errc::Invalid:   // the name resolved only to refused addresses (origin_resolve.h)
      return OriginErrorKind::Resolve;
    case Errc::Protocol:
    case Errc::Unsupported: return tls ? OriginErrorKind::Tls : OriginErrorKind::Protocol;
    case Errc::Closed: return OriginErrorKind::Reset;
    case Errc::Io: return ctx.find("connect") != std::string_view::npos ? OriginErrorKind::Connect : OriginErrorKind::Reset;
    default: return OriginErrorKind::Other;
  }
}

class UpstreamConn final : private StreamReader, private Http1Codec::Sink {
 public:
  enum class State : uint8_t { Resolving, Connecting, Active, Idle, Closed };

  UpstreamConn(UpstreamPool* pool, std::string poolKey);
  void startExchange(UpstreamRequest req, UpstreamExchange* ex, bool retried);
  void writeBody(const char* data, size_t n);
  void endBody();
  size_t queuedBytes() const { return stream_ ? stream_->queuedBytes() : 0; }
  void detach() { ex_ = nullptr; }  // the exchange was cancelled
  void pauseReading();
  void resumeReading();
  void close();
  State state() const { return state_; }
  const std::string& poolKey() const { return poolKey_; }

 private:
  UpstreamSink* sink() const { return ex_ ? ex_->sink_ : nullptr; }
  void resolve();
  void connectTo(const struct sockaddr* addr);
  void sendHead();
  void startRead();
  void armStall();
  void write(std::string data);
  void armTimer(int64_t ms);
  void fail(Error e);
  void finishExchange();
  UpstreamSink* retire(UpstreamExchange* ex);
  void unref();
  // Completions (server/net/stream.h). succeeded(): false when the conn
  // closed first or the operation failed (then the exchange has failed).
  bool succeeded(int status, const char* context);
  void onConnected(int status);
  void onWritten(int status);
  void onStreamClosed(int status);
  // A stream failure as an Error: the TLS reason when TLS broke.
  Error streamError(int status, const char* context) const;

  // ---- StreamReader ----
  void onStreamData(const char* data, size_t n) override;
  void onStreamEnd() override;
  void onStreamError(int status) override;
  // ---- Http1Codec::Sink ----
  Http1Codec::Next onHead() override;
  void onInterim() override;
  bool onBody(const char* at, size_t n) override;
  bool onMessageEnd() override;

  UpstreamPool* pool_;
  const std::string poolKey_;
  // The timer is embedded, the stream is held: the conn is freed once the
  // timer, the stream (its close notification), the resolution
  // (resolveOrigin()) and every posted task have called back after close()
  // (refs_ == 0).
  Stream* stream_ = nullptr;
  TlsStream* tls_ = nullptr;  // stream_ when it is TLS (for why it broke)
  uv_timer_t timer_;
  int refs_ = 0;
  State state_ = State::Resolving;

  UpstreamExchange* ex_ = nullptr;
  UpstreamRequest req_;
  Http1Codec codec_;
  bool headDelivered_ = false;
  bool keepAlive_ = false;  // the final head allowed another exchange
  bool messageDone_ = false;
  bool gotBytes_ = false;  // any response byte on this exchange
  bool reused_ = false;    // exchange runs on a pooled connection
  bool retried_ = false;
  bool headSent_ = false;  // body bytes queue behind the head until it is written
  bool bodyEnded_ = false;  // endBody() ran: the request is framed to its end (pooling needs it)
  bool paused_ = false;     // the sink asked to stop reading (pauseReading())
};

namespace {
// Response heads: 64 KiB, any number of fields.
constexpr Http1Codec::Limits kResponseLimits{64 * 1024, SIZE_MAX};

// Error contexts are static strings; TLS reasons are a small set (the
// verification results and OpenSSL's reason strings), kept here once each.
const char* internReason(const std::string& reason) {
  static std::mutex mu;
  static std::unordered_set<std::string> reasons;
  std::lock_guard lock(mu);
  if (reasons.size() >= 512 && !reasons.count(reason)) return "upstream: TLS failed";
  return reasons.insert(reason).first->c_str();
}
}  // namespace

UpstreamConn::UpstreamConn(UpstreamPool* pool, std::string poolKey)
    : pool_(pool), poolKey_(std::move(poolKey)), codec_(Http1Codec::Type::Response, this, kResponseLimits) {
  uv_timer_init(pool_->worker_->loop(), &timer_);
  timer_.data = this;
  refs_ = 1;
}

void UpstreamConn::unref() {
  if (--refs_ == 0) delete this;
}

void UpstreamConn::startExchange(UpstreamRequest req, UpstreamExchange* ex, bool retried) {
  req_ = std::move(req);
  ex_ = ex;
  ex_->conn_ = this;
  retried_ = retried;
  headDelivered_ = false;
  keepAlive_ = false;
  messageDone_ = false;
  gotBytes_ = false;
  headSent_ = false;
  bodyEnded_ = false;
  paused_ = false;
  codec_.reset();
  if (state_ == State::Idle) {
    reused_ = true;
    state_ = State::Active;
    // Never call back inside start(): post the send.
    refs_++;
    pool_->worker_->post([this] {
      if (state_ == State::Active) sendHead();
      unref();
    });
    return;
  }
  reused_ = false;
  resolve();
}

void UpstreamConn::resolve() {
  state_ = State::Resolving;
  armTimer(pool_->options_.connectTimeoutMs);
  refs_++;  // the resolution calls back even after close(): it holds the conn
  resolveOrigin(pool_->worker_, req_.host, req_.port, pool_->options_, req_.anyAddress,
                [this](Result<ResolvedOrigin> origin, AddressClass refused) {
                  if (state_ == State::Resolving) {
                    if (refused != AddressClass::Public) {
                      if (pool_->counters_) pool_->counters_->add(pool_->counters_->upstream_address_refusals);
                      OLOG_RATE(log::Level::Warn, "origin %s refused: it resolves to an address that is %s",
                                req_.host.c_str(), addressClassName(refused));
                    }
                    if (!origin) fail(origin.error());
                    else connectTo(reinterpret_cast<const sockaddr*>(&origin->addr));
                  }
                  unref();
                });
}

void UpstreamConn::connectTo(const struct sockaddr* addr) {
  state_ = State::Connecting;
  TcpStream* tcp = TcpStream::create(pool_->worker_->loop());
  stream_ = tcp;
  refs_++;  // until the stream's close notification
  tcp->setNoDelay(true);
  int rc = tcp->connect(addr, Completion::to<&UpstreamConn::onConnected>(this));
  if (rc != 0) fail(uvError(rc, "upstream: connect"));
}

bool UpstreamConn::succeeded(int status, const char* context) {
  if (status == UV_ECANCELED || state_ == State::Closed) return false;  // closed first: nothing to do
  if (status != 0) {
    fail(streamError(status, context));
    return false;
  }
  return true;
}

void UpstreamConn::onConnected(int status) {
  if (!succeeded(status, "upstream: connect")) return;
  if (req_.tls) {
    // The head is written at once: the TLS stream keeps it until the
    // handshake (and the certificate check) is done.
    tls::ClientContext* ctx = pool_->options_.tls.get();
    SSL* ssl = ctx ? ctx->newSsl(req_.host, req_.port) : nullptr;
    if (!ssl) {
      fail(Error{Errc::Unsupported, 0, "upstream: no TLS client context (see upstream.ca_file)"});
      return;
    }
    tls_ = TlsStream::create(pool_->worker_->loop(), stream_, ssl);
    stream_ = tls_;
  }
  state_ = State::Active;
  sendHead();
}

Error UpstreamConn::streamError(int status, const char* context) const {
  if (tls_ && !tls_->failure().empty())
    return Error{Errc::Protocol, 0, internReason(std::string("upstream: TLS ") + tls_->failure())};
  return uvError(status, context);
}

void UpstreamConn::sendHead() {
  // A TLS handshake is part of connecting: upstream.connect_timeout until
  // it is done (the head's write completes after it, and re-arms the read timeout).
  armTimer(tls_ && !tls_->handshakeDone() ? pool_->options_.connectTimeoutMs : pool_->options_.readTimeoutMs);
  headSent_ = true;
  if (req_.retryable) {
    write(req_.head);  // kept for a retry on a fresh connection
  } else {
    write(std::move(req_.head));
    req_.head.clear();
  }
  if (state_ == State::Closed) return;
  startRead();
  if (state_ == State::Closed) return;
  // Body-less requests and pooled connections: tell the body source it may write.
  if (req_.hasBody && sink()) {
    refs_++;
    pool_->worker_->post([this] {
      if (state_ == State::Active && sink()) sink()->onUpstreamWritable();
      unref();
    });
  }
}

void UpstreamConn::startRead() {
  int rc = stream_->startReading(this);
  if (rc != 0) fail(uvError(rc, "upstream: read"));
}

void UpstreamConn::pauseReading() {
  if (state_ != State::Active || paused_ || !stream_) return;
  paused_ = true;
  stream_->stopReading();
  armStall();  // our reader is slow, not the origin: no read timeout while paused
}

void UpstreamConn::armStall() {
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<UpstreamConn*>(t->data);
        if (self->state_ != State::Active || !self->paused_) return;
        self->armStall();
        if (UpstreamSink* s = self->sink()) s->onUpstreamStalled();
      },
      static_cast<uint64_t>(UpstreamExchange::kPausedStallMs), 0);
}

void UpstreamConn::resumeReading() {
  if (!paused_ || state_ == State::Closed) return;
  paused_ = false;
  startRead();
  if (state_ == State::Active) armTimer(pool_->options_.readTimeoutMs);
}

void UpstreamConn::write(std::string data) {
  int rc = stream_->writeOwned(std::move(data), Completion::to<&UpstreamConn::onWritten>(this));
  if (rc != 0) fail(uvError(rc, "upstream: write"));
}

void UpstreamConn::onWritten(int status) {
  if (!succeeded(status, "upstream: write")) return;
  // Progress in either direction resets the read timeout: an upload the
  // origin is still taking is not a silent origin.
  if (state_ == State::Active && !paused_) armTimer(pool_->options_.readTimeoutMs);
  if (sink() && req_.hasBody && queuedBytes() < UpstreamExchange::kHighWater) sink()->onUpstreamWritable();
}

void UpstreamConn::writeBody(const char* data, size_t n) {
  if (n == 0 || (state_ != State::Active && state_ != State::Connecting && state_ != State::Resolving)) return;
  std::string chunk;
  if (req_.bodyChunked) {
    char len[24];
    int l = std::snprintf(len, sizeof len, "%zx\r\n", n);
    chunk.reserve(l + n + 2);
    chunk.append(len, l).append(data, n).append("\r\n");
  } else {
    chunk.assign(data, n);
  }
  if (!headSent_) {
    // Body before the head went out (connecting, or a pooled connection
    // whose head send is posted): queue behind the head.
    req_.head += chunk;
    return;
  }
  write(std::move(chunk));
}

void UpstreamConn::endBody() {
  if (state_ == State::Closed || state_ == State::Idle) return;
  bodyEnded_ = true;
  if (!req_.bodyChunked) return;
  if (headSent_) write("0\r\n\r\n");
  else req_.head += "0\r\n\r\n";
}

void UpstreamConn::armTimer(int64_t ms) {
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<UpstreamConn*>(t->data);
        if (self->state_ == State::Closed) return;
        if (self->state_ == State::Idle) {
          self->close();  // idle keep-alive connections expire too
          return;
        }
        const char* what = self->state_ != State::Active                     ? "upstream: connect timeout"
                           : self->tls_ && !self->tls_->handshakeDone() ? "upstream: TLS handshake timeout"
                                                                        : "upstream: read timeout";
        self->fail(Error{Errc::Timeout, 0, what});
      },
      static_cast<uint64_t>(ms), 0);
}

void UpstreamConn::onStreamError(int status) {
  if (state_ == State::Closed) return;
  if (state_ == State::Idle) close();
  else fail(streamError(status, "upstream: read"));
}

void UpstreamConn::onStreamData(const char* data, size_t n) {
  if (state_ == State::Closed) return;
  if (state_ != State::Active) {  // bytes on an idle connection: the origin is confused
    close();
    return;
  }
  armTimer(pool_->options_.readTimeoutMs);
  gotBytes_ = true;
  using S = Http1Codec::Status;
  const Http1Codec::Result r = codec_.execute(data, n);
  if (state_ != State::Active) return;  // failed, or the sink cancelled inside a callback
  switch (r.status) {
    case S::NeedMore:
    case S::Stopped: return;
    case S::Message:
      finishExchange();
      if (r.consumed != n) close();  // one response per exchange: extra bytes mean a broken origin
      return;
    case S::TooLarge: fail(Error{Errc::Protocol, 0, "upstream: response head over 64 KiB"}); return;
    case S::BadVersion: fail(Error{Errc::Protocol, 0, "upstream: unusable HTTP version or framing"}); return;
    case S::BodyBeforeHead: fail(Error{Errc::Protocol, 0, "upstream: body before a final head"}); return;
    case S::BadStatus: fail(Error{Errc::Protocol, 0, "upstream: status code below 100"}); return;
    case S::Invalid: fail(Error{Errc::Protocol, 0, codec_.error()}); return;
  }
}

void UpstreamConn::onStreamEnd() {
  if (state_ == State::Closed) return;
  if (state_ == State::Idle) {
    close();
    return;
  }
  if (!gotBytes_ && reused_ && req_.retryable && !retried_ && ex_) {
    // The origin closed a pooled connection before answering: retry once on a fresh one.
    UpstreamExchange* ex = ex_;
    ex_ = nullptr;
    auto* fresh = new UpstreamConn(pool_, poolKey_);
    pool_->all_.push_back(fresh);
    fresh->startExchange(std::move(req_), ex, true);
    close();
    return;
  }
  codec_.finish();
  if (state_ != State::Active) return;
  if (messageDone_) {
    finishExchange();
    close();
    return;
  }
  fail(Error{Errc::Closed, 0, headDelivered_ ? "upstream: closed mid-body" : "upstream: closed before answering"});
}

void UpstreamConn::fail(Error e) {
  if (state_ == State::Closed) return;
  UpstreamExchange* ex = ex_;
  bool afterHead = headDelivered_;
  ex_ = nullptr;
  close();
  if (UpstreamSink* s = retire(ex)) s->onUpstreamError(e, afterHead);
}

UpstreamSink* UpstreamConn::retire(UpstreamExchange* ex) {
  // The exchange's final callback is about to be made: it is detached from
  // the connection and freed after the callback stack unwinds.
  if (!ex || !ex->sink_) return nullptr;
  UpstreamSink* s = ex->sink_;
  ex->sink_ = nullptr;
  ex->conn_ = nullptr;
  pool_->worker_->deferDelete(ex);
  return s;
}

void UpstreamConn::finishExchange() {
  UpstreamExchange* ex = ex_;
  ex_ = nullptr;
  // Pooled only when both messages are framed to their end: a request body
  // we did not finish sending (the origin answered early, the client left)
  // would be read by the origin as the start of the next request.
  bool keep = keepAlive_ && codec_.keepAlive() && (!req_.hasBody || bodyEnded_);
  if (keep) {
    if (paused_) resumeReading();  // an idle pooled connection reads, to see the origin close it
    state_ = State::Idle;
    armTimer(pool_->options_.readTimeoutMs);
    pool_->release(this);
  } else {
    close();
  }
  if (UpstreamSink* s = retire(ex)) s->onUpstreamComplete();
}

void UpstreamConn::close() {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  pool_->forget(this);
  if (ex_) {
    ex_->conn_ = nullptr;
    ex_ = nullptr;
  }
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) { static_cast<UpstreamConn*>(h->data)->unref(); });
  if (stream_) stream_->close(Completion::to<&UpstreamConn::onStreamClosed>(this));
  // A pending getaddrinfo or posted task holds its own ref and sees Closed.
}

void UpstreamConn::onStreamClosed(int) {
  stream_ = nullptr;
  unref();
}

// ---- Http1Codec::Sink ----

Http1Codec::Next UpstreamConn::onHead() {
  ResponseHead& h = codec_.response();
  h.noBody = req_.headMethod || h.status == 204 || h.status == 304;
  if (h.noBody) h.contentLength = h.contentLength ? h.contentLength : std::optional<uint64_t>(0);
  keepAlive_ = h.keepAlive;
  headDelivered_ = true;
  if (UpstreamSink* s = sink()) s->onUpstreamHead(std::move(h));
  if (state_ != State::Active) return Http1Codec::Next::Stop;
  return req_.headMethod ? Http1Codec::Next::NoBody : Http1Codec::Next::Body;  // a HEAD's answer has no body
}

void UpstreamConn::onInterim() {
  if (UpstreamSink* s = sink()) s->onUpstreamInterim(codec_.response());
}

bool UpstreamConn::onBody(const char* at, size_t n) {
  if (UpstreamSink* s = sink()) s->onUpstreamBody(at, n);
  return state_ == State::Active;
}

bool UpstreamConn::onMessageEnd() {
  messageDone_ = true;
  return true;
}

// ---- UpstreamExchange ----

void UpstreamExchange::writeBody(const char* data, size_t n) {
  if (conn_) conn_->writeBody(data, n);
}
void UpstreamExchange::endBody() {
  if (conn_) conn_->endBody();
}
size_t UpstreamExchange::queuedBytes() const { return conn_ ? conn_->queuedBytes() : 0; }
void UpstreamExchange::pauseReading() {
  if (conn_) conn_->pauseReading();
}
void UpstreamExchange::resumeReading() {
  if (conn_) conn_->resumeReading();
}
void UpstreamExchange::cancel() {
  sink_ = nullptr;
  if (conn_) {
    UpstreamConn* c = conn_;
    conn_ = nullptr;
    c->detach();
    c->close();
  }
  pool_->worker_->deferDelete(this);
}

// ---- UpstreamPool ----

UpstreamPool::UpstreamPool(Worker* worker, UpstreamOptions options, Counters* counters)
    : worker_(worker), counters_(counters), options_(std::move(options)) {}

UpstreamPool::~UpstreamPool() { closeAll(); }

UpstreamExchange* UpstreamPool::start(UpstreamRequest request, UpstreamSink* sink) {
  std::string key = (request.tls ? "https://" : "") + request.host + ":" + std::to_string(request.port);
  auto* ex = new UpstreamExchange(this, sink);
  UpstreamConn* conn = nullptr;
  auto it = idle_.find(key);
  if (it != idle_.end()) {
    while (!it->second.empty() && !conn) {
      UpstreamConn* c = it->second.back();
      it->second.pop_back();
      if (c->state() == UpstreamConn::State::Idle) conn = c;
    }
  }
  if (!conn) {
    conn = new UpstreamConn(this, key);
    all_.push_back(conn);
  }
  conn->startExchange(std::move(request), ex, false);
  return ex;
}

void UpstreamPool::release(UpstreamConn* c) {
  auto& v = idle_[c->poolKey()];
  if (v.size() >= options_.maxIdlePerOrigin) {
    c->close();
    return;
  }
  v.push_back(c);
}

void UpstreamPool::forget(UpstreamConn* c) {
  auto it = idle_.find(c->poolKey());
  if (it != idle_.end()) {
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), c), v.end());
  }
  all_.erase(std::remove(all_.begin(), all_.end(), c), all_.end());
}

void UpstreamPool::closeAll() {
  auto conns = all_;
  for (auto* c : conns) c->close();
  idle_.clear();
}

void UpstreamPool::setOptions(UpstreamOptions options) {
  options_ = std::move(options);
  auto idle = std::move(idle_);
  idle_.clear();
  for (auto& [key, conns] : idle)
    for (UpstreamConn* c : conns) c->close();
}

}  // namespace orchard::server
