// Upstream client implementation; see upstream.h for the contract.
#include "server/http/upstream.h"

#include <llhttp.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace orchard::server {

class UpstreamConn {
 public:
  enum class State : uint8_t { Resolving, Connecting, Active, Idle, Closed };

  UpstreamConn(UpstreamPool* pool, std::string poolKey);
  void startExchange(UpstreamRequest req, UpstreamExchange* ex, bool retried);
  void writeBody(const char* data, size_t n);
  void endBody();
  size_t queuedBytes() const {
    return tcpInit_ ? uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&tcp_)) : 0;
  }
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
  void onRead(ssize_t nread, const uv_buf_t* buf);
  void onEof();
  void unref();

  static int onStatus(llhttp_t* p, const char* at, size_t n);
  static int onHeaderField(llhttp_t* p, const char* at, size_t n);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t n);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t n);
  static int onMessageComplete(llhttp_t* p);

  UpstreamPool* pool_;
  const std::string poolKey_;
  // Handles are embedded: the conn is freed once every handle and the
  // getaddrinfo request have called back after close() (openHandles_ == 0).
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_getaddrinfo_t gai_;
  uv_connect_t connect_;
  int refs_ = 0;
  bool tcpInit_ = false;
  State state_ = State::Resolving;

  UpstreamExchange* ex_ = nullptr;
  UpstreamRequest req_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  ResponseHead head_;
  std::string field_;
  bool lastWasValue_ = false;
  size_t headBytes_ = 0;
  bool headDelivered_ = false;
  bool messageDone_ = false;
  bool gotBytes_ = false;  // any response byte on this exchange
  bool reused_ = false;    // exchange runs on a pooled connection
  bool retried_ = false;
  bool headSent_ = false;  // body bytes queue behind the head until it is written
  bool bodyEnded_ = false;  // endBody() ran: the request is framed to its end (pooling needs it)
  bool paused_ = false;     // the sink asked to stop reading (pauseReading())
  char readBuf_[64 * 1024];
};

namespace {
constexpr size_t kMaxResponseHead = 64 * 1024;

struct WriteReq {
  uv_write_t req;
  std::string data;
};
}  // namespace

UpstreamConn::UpstreamConn(UpstreamPool* pool, std::string poolKey) : pool_(pool), poolKey_(std::move(poolKey)) {
  uv_timer_init(pool_->worker_->loop(), &timer_);
  timer_.data = this;
  refs_ = 1;
  llhttp_settings_init(&settings_);
  settings_.on_status = &UpstreamConn::onStatus;
  settings_.on_header_field = &UpstreamConn::onHeaderField;
  settings_.on_header_value = &UpstreamConn::onHeaderValue;
  settings_.on_headers_complete = &UpstreamConn::onHeadersComplete;
  settings_.on_body = &UpstreamConn::onBody;
  settings_.on_message_complete = &UpstreamConn::onMessageComplete;
}

void UpstreamConn::unref() {
  if (--refs_ == 0) delete this;
}

void UpstreamConn::startExchange(UpstreamRequest req, UpstreamExchange* ex, bool retried) {
  req_ = std::move(req);
  ex_ = ex;
  ex_->conn_ = this;
  retried_ = retried;
  head_ = ResponseHead{};
  field_.clear();
  lastWasValue_ = false;
  headBytes_ = 0;
  headDelivered_ = false;
  messageDone_ = false;
  gotBytes_ = false;
  headSent_ = false;
  bodyEnded_ = false;
  paused_ = false;
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
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
  auto it = pool_->options_.resolve.find(req_.host);
  if (it != pool_->options_.resolve.end()) {
    struct sockaddr_storage ss;
    std::memset(&ss, 0, sizeof ss);
    const auto& [addr, port] = it->second;
    int rc = addr.find(':') != std::string::npos
                 ? uv_ip6_addr(addr.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss))
                 : uv_ip4_addr(addr.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss));
    refs_++;
    // Connect on the next tick so start() never calls back synchronously.
    pool_->worker_->post([this, ss, rc] {
      if (state_ == State::Resolving) {
        if (rc != 0) fail(uvError(rc, "upstream: bad resolve address"));
        else connectTo(reinterpret_cast<const sockaddr*>(&ss));
      }
      unref();
    });
    return;
  }
  gai_.data = this;
  struct addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(req_.port);
  refs_++;  // the getaddrinfo request keeps the conn alive
  int rc = uv_getaddrinfo(
      pool_->worker_->loop(), &gai_,
      [](uv_getaddrinfo_t* g, int status, struct addrinfo* res) {
        auto* self = static_cast<UpstreamConn*>(g->data);
        if (self->state_ == State::Resolving) {
          if (status != 0 || !res) self->fail(uvError(status ? status : UV_EAI_NONAME, "upstream: resolve"));
          else self->connectTo(res->ai_addr);
        }
        if (res) uv_freeaddrinfo(res);
        self->unref();
      },
      req_.host.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    // refs_ stays raised: the posted failure holds it instead of the request.
    pool_->worker_->post([this, rc] {
      if (state_ == State::Resolving) fail(uvError(rc, "upstream: resolve"));
      unref();
    });
  }
}

void UpstreamConn::connectTo(const struct sockaddr* addr) {
  state_ = State::Connecting;
  uv_tcp_init(pool_->worker_->loop(), &tcp_);
  tcp_.data = this;
  tcpInit_ = true;
  refs_++;
  uv_tcp_nodelay(&tcp_, 1);
  connect_.data = this;
  int rc = uv_tcp_connect(&connect_, &tcp_, addr, [](uv_connect_t* c, int status) {
    auto* self = static_cast<UpstreamConn*>(c->data);
    if (status == UV_ECANCELED || self->state_ == State::Closed) return;
    if (status != 0) {
      self->fail(uvError(status, "upstream: connect"));
      return;
    }
    self->state_ = State::Active;
    self->sendHead();
  });
  if (rc != 0) fail(uvError(rc, "upstream: connect"));
}

void UpstreamConn::sendHead() {
  armTimer(pool_->options_.readTimeoutMs);
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
  int rc = uv_read_start(
      reinterpret_cast<uv_stream_t*>(&tcp_),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<UpstreamConn*>(h->data);
        *buf = uv_buf_init(self->readBuf_, sizeof self->readBuf_);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        static_cast<UpstreamConn*>(s->data)->onRead(nread, buf);
      });
  if (rc != 0 && rc != UV_EALREADY) fail(uvError(rc, "upstream: read"));
}

void UpstreamConn::pauseReading() {
  if (state_ != State::Active || paused_ || !tcpInit_) return;
  paused_ = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
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
  auto* w = new WriteReq;
  w->data = std::move(data);
  w->req.data = this;
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1, [](uv_write_t* r, int status) {
    auto* wr = reinterpret_cast<WriteReq*>(r);
    auto* self = static_cast<UpstreamConn*>(r->data);
    delete wr;
    if (status == UV_ECANCELED || self->state_ == State::Closed) return;
    if (status != 0) {
      self->fail(uvError(status, "upstream: write"));
      return;
    }
    // Progress in either direction resets the read timeout: an upload the
    // origin is still taking is not a silent origin.
    if (self->state_ == State::Active && !self->paused_) self->armTimer(self->pool_->options_.readTimeoutMs);
    if (self->sink() && self->req_.hasBody && self->queuedBytes() < UpstreamExchange::kHighWater)
      self->sink()->onUpstreamWritable();
  });
  if (rc != 0) {
    delete w;
    fail(uvError(rc, "upstream: write"));
  }
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
        self->fail(Error{Errc::Timeout, 0,
                         self->state_ == State::Active ? "upstream: read timeout" : "upstream: connect timeout"});
      },
      static_cast<uint64_t>(ms), 0);
}

void UpstreamConn::onRead(ssize_t nread, const uv_buf_t* buf) {
  if (state_ == State::Closed || nread == 0) return;
  if (nread < 0) {
    if (nread == UV_EOF) onEof();
    else if (state_ == State::Idle) close();
    else fail(uvError(static_cast<int>(nread), "upstream: read"));
    return;
  }
  if (state_ != State::Active) {  // bytes on an idle connection: the origin is confused
    close();
    return;
  }
  armTimer(pool_->options_.readTimeoutMs);
  gotBytes_ = true;
  const char* data = buf->base;
  size_t n = static_cast<size_t>(nread);
  llhttp_errno_t err = llhttp_execute(&parser_, data, n);
  if (state_ != State::Active) return;  // failed, or the sink cancelled inside a callback
  if (err == HPE_OK) return;
  if (err == HPE_PAUSED && messageDone_) {
    const char* pos = llhttp_get_error_pos(&parser_);
    bool trailing = pos && pos != data + n;
    finishExchange();
    if (trailing) close();  // one response per exchange: extra bytes mean a broken origin
    return;
  }
  if (err == HPE_USER) return;
  fail(Error{Errc::Protocol, 0, llhttp_errno_name(err)});
}

void UpstreamConn::onEof() {
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
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (state_ != State::Active) return;
  if (messageDone_) {
    finishExchange();
    close();
    return;
  }
  (void)err;
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
  bool keep = head_.keepAlive && llhttp_should_keep_alive(&parser_) && (!req_.hasBody || bodyEnded_);
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
  auto onClose = [](uv_handle_t* h) { static_cast<UpstreamConn*>(h->data)->unref(); };
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), onClose);
  if (tcpInit_) uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), onClose);
  // A pending getaddrinfo or posted task holds its own ref and sees Closed.
}

// ---- llhttp callbacks ----

int UpstreamConn::onStatus(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<UpstreamConn*>(p->data);
  self->head_.reason.append(at, n);
  self->headBytes_ += n;
  return self->headBytes_ > kMaxResponseHead ? -1 : 0;
}

int UpstreamConn::onHeaderField(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<UpstreamConn*>(p->data);
  self->headBytes_ += n;
  if (self->headBytes_ > kMaxResponseHead) return -1;
  if (self->lastWasValue_ || self->head_.headers.empty()) {
    self->head_.headers.emplace_back(std::string(at, n), std::string());
    self->lastWasValue_ = false;
  } else {
    self->head_.headers.back().first.append(at, n);
  }
  return 0;
}

int UpstreamConn::onHeaderValue(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<UpstreamConn*>(p->data);
  self->headBytes_ += n;
  if (self->headBytes_ > kMaxResponseHead) return -1;
  if (self->head_.headers.empty()) return -1;
  self->head_.headers.back().second.append(at, n);
  self->lastWasValue_ = true;
  return 0;
}

int UpstreamConn::onHeadersComplete(llhttp_t* p) {
  auto* self = static_cast<UpstreamConn*>(p->data);
  auto& h = self->head_;
  h.status = p->status_code;
  if (p->http_major != 1 || (p->http_minor == 0 && (p->flags & F_TRANSFER_ENCODING))) {
    // Not HTTP/1.x, or Transfer-Encoding on HTTP/1.0 (faulty framing, RFC
    // 9112 §6.1): nothing of this answer can be trusted.
    self->fail(Error{Errc::Protocol, 0, "upstream: unusable HTTP version or framing"});
    return HPE_USER;
  }
  if (h.status < 200) {
    // 1xx interim answers are dropped; the final one follows. An interim
    // answer ends at its blank line whatever framing it claims (RFC 9112
    // §6.3): 1 tells llhttp no body follows, so bytes after it must parse
    // as the next response.
    h = ResponseHead{};
    self->lastWasValue_ = false;
    return 1;
  }
  for (auto& kv : h.headers) {
    while (!kv.second.empty() && (kv.second.back() == ' ' || kv.second.back() == '\t')) kv.second.pop_back();
  }
  h.chunked = (p->flags & F_CHUNKED) != 0;
  if ((p->flags & F_CONTENT_LENGTH) && !h.chunked) h.contentLength = p->content_length;
  h.keepAlive = llhttp_should_keep_alive(p) != 0;
  h.noBody = self->req_.headMethod || h.status == 204 || h.status == 304;
  if (h.noBody) h.contentLength = h.contentLength ? h.contentLength : std::optional<uint64_t>(0);
  self->headDelivered_ = true;
  if (UpstreamSink* s = self->sink()) s->onUpstreamHead(std::move(h));
  if (self->state_ != State::Active) return HPE_USER;
  return self->req_.headMethod ? 1 : 0;  // 1: no body follows (HEAD)
}

int UpstreamConn::onBody(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<UpstreamConn*>(p->data);
  if (!self->headDelivered_) {  // body bytes before a final head: never ours
    self->fail(Error{Errc::Protocol, 0, "upstream: body before a final head"});
    return HPE_USER;
  }
  if (UpstreamSink* s = self->sink()) s->onUpstreamBody(at, n);
  return self->state_ == State::Active ? 0 : HPE_USER;
}

int UpstreamConn::onMessageComplete(llhttp_t* p) {
  auto* self = static_cast<UpstreamConn*>(p->data);
  if (!self->headDelivered_) return 0;  // end of a 1xx
  self->messageDone_ = true;
  return HPE_PAUSED;
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

UpstreamPool::UpstreamPool(Worker* worker, UpstreamOptions options) : worker_(worker), options_(std::move(options)) {}

UpstreamPool::~UpstreamPool() { closeAll(); }

UpstreamExchange* UpstreamPool::start(UpstreamRequest request, UpstreamSink* sink) {
  std::string key = request.host + ":" + std::to_string(request.port);
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
