// ClientConn implementation; see client_conn.h for the state table.
#include "server/http/client_conn.h"

#include <malloc.h>

#include <cstring>

#include "common/log.h"
#include "server/routes.h"

namespace orchard::server {
namespace {

constexpr size_t kMaxRequestHead = 64 * 1024;
constexpr size_t kReadBuf = 64 * 1024;
constexpr size_t kMaxPending = 64 * 1024;  // pipelined bytes held while a response is written
thread_local char tReadBuf[kReadBuf];

struct OwnedWrite {
  uv_write_t req;
  std::string data;
};

struct BodyWrite {
  uv_write_t req;
  ClientConn* conn;
  std::string copy;  // bounded writes: the queued bytes, so the caller's buffer is free at once
};

}  // namespace

ClientConn::ClientConn(WorkerContext* wc) : wc_(wc) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &ClientConn::onMessageBegin;
  settings_.on_url = &ClientConn::onUrl;
  settings_.on_header_field = &ClientConn::onHeaderField;
  settings_.on_header_value = &ClientConn::onHeaderValue;
  settings_.on_headers_complete = &ClientConn::onHeadersComplete;
  settings_.on_body = &ClientConn::onBody;
  settings_.on_message_complete = &ClientConn::onMessageComplete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

ClientConn::~ClientConn() {
  wc_->conns.erase(this);
  wc_->counters.open_connections.fetch_sub(1, std::memory_order_relaxed);
}

void ClientConn::accept(WorkerContext* wc, uv_stream_t* listener) {
  auto* c = new ClientConn(wc);
  uv_tcp_init(wc->worker->loop(), &c->tcp_);
  c->tcp_.data = c;
  uv_timer_init(wc->worker->loop(), &c->timer_);
  c->timer_.data = c;
  c->refs_ = 2;
  wc->conns.insert(c);
  wc->counters.open_connections.fetch_add(1, std::memory_order_relaxed);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp_)) != 0) {
    c->close();
    return;
  }
  wc->counters.add(wc->counters.connections_accepted);
  int len = sizeof c->peer_;
  std::memset(&c->peer_, 0, sizeof c->peer_);
  uv_tcp_getpeername(&c->tcp_, reinterpret_cast<sockaddr*>(&c->peer_), &len);
  c->peerAllowed_ = config::anyContains(wc->config().allowClients, c->peer());
  uv_tcp_nodelay(&c->tcp_, 1);
  if (wc->draining) {
    c->close();
    return;
  }
  int64_t open = 0;
  for (const Counters* k : wc->server->counters) open += k->open_connections.load(std::memory_order_relaxed);
  if (open > wc->config().maxConnections) {
    OLOG_RATE(log::Level::Warn, "server.max_connections (%lld) reached: refusing a connection",
              static_cast<long long>(wc->config().maxConnections));
    c->close();
    return;
  }
  c->armIdle();
  c->startReading();
}

void ClientConn::unref() {
  if (--refs_ == 0) delete this;
}

void ClientConn::onCloseHandle(uv_handle_t* h) { static_cast<ClientConn*>(h->data)->unref(); }

void ClientConn::armIdle() {
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<ClientConn*>(t->data);
        if (self->state_ == State::Idle || self->state_ == State::Reading) self->close();
      },
      static_cast<uint64_t>(wc_->config().idleTimeoutMs > 0 ? wc_->config().idleTimeoutMs : 60000), 0);
}

void ClientConn::startReading() {
  if (readStarted_ || state_ == State::Closing) return;
  readStarted_ = true;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&tcp_),
      [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = uv_buf_init(tReadBuf, kReadBuf); },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) { static_cast<ClientConn*>(s->data)->onRead(nread, buf); });
}

void ClientConn::pauseReading() {
  readingPaused_ = true;
  if (readStarted_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    readStarted_ = false;
  }
}

void ClientConn::resumeReading() {
  if (!readingPaused_) return;
  readingPaused_ = false;
  if (!requestDone_ && state_ != State::Closing) startReading();
}

void ClientConn::onRead(ssize_t nread, const uv_buf_t* buf) {
  if (state_ == State::Closing || nread == 0) return;
  if (nread < 0) {
    if (nread == UV_EOF && requestDone_ && state_ == State::Responding) {
      // The client half-closed after its request(s): answer everything it
      // sent (resumeParsing() closes once nothing is left), then close.
      peerEof_ = true;
      if (readStarted_) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
        readStarted_ = false;
      }
      return;
    }
    // Reset, or EOF mid-request: nothing more can be delivered.
    close();
    return;
  }
  if (requestDone_ && state_ == State::Responding) {
    // Reading goes on while we answer (no epoll churn per request, and a
    // client that goes away is noticed at once); what arrives is the next
    // pipelined request, kept until this response ends.
    pending_.append(buf->base, static_cast<size_t>(nread));
    if (pending_.size() > kMaxPending && readStarted_) {
      uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
      readStarted_ = false;
    }
    return;
  }
  parse(buf->base, static_cast<size_t>(nread));
}

void ClientConn::parse(const char* data, size_t n) {
  llhttp_errno_t err = llhttp_execute(&parser_, data, n);
  if (state_ == State::Closing) return;
  if (err == HPE_OK) return;
  if (err == HPE_PAUSED) {
    // A request completed: keep what follows for later, stop reading.
    // A request completed: keep what follows for later. Reading goes on.
    const char* pos = llhttp_get_error_pos(&parser_);
    if (pos && pos < data + n) pending_.assign(pos, data + n - pos);
    else pending_.clear();
    if (responseDone_) finishResponse();
    return;
  }
  if (err == HPE_USER && !limitExceeded_) return;  // a callback already answered or closed
  if (state_ == State::Responding || txn_) {
    // Broken body framing after the head was routed: the exchange is lost.
    close();
    return;
  }
  wc_->counters.add(wc_->counters.bad_requests);
  failRequest(limitExceeded_ ? 431 : 400, limitExceeded_ ? "request head over 64 KiB or 256 fields" : llhttp_errno_name(err));
}

void ClientConn::failRequest(int status, const char* why) {
  OLOG_RATE(log::Level::Info, "client request refused with %d: %s", status, why);
  std::string body = errorBody(status, why);
  char head[256];
  int hl = std::snprintf(head, sizeof head,
                         "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                         status, reasonPhrase(status), body.size());
  write(std::string(head, static_cast<size_t>(hl)) + body);
  state_ = State::Responding;
  reqKeepAlive_ = false;
  requestDone_ = true;
  endResponse(true);
}

void ClientConn::resumeParsing() {
  // Runs on a fresh stack (posted) so a transaction's callbacks never start
  // the next transaction inline.
  refs_++;
  wc_->worker->post([this] {
    if (state_ == State::Closing) {
      unref();
      return;
    }
    state_ = State::Idle;
    requestDone_ = false;
    responseDone_ = false;
    readingPaused_ = false;  // upload backpressure belonged to the request just answered
    llhttp_resume(&parser_);
    armIdle();
    if (wc_->draining && pending_.empty()) {
      close();
      unref();
      return;
    }
    if (!pending_.empty()) {
      std::string data = std::move(pending_);
      pending_.clear();
      parse(data.data(), data.size());
    }
    if (peerEof_ && (state_ == State::Idle || state_ == State::Reading)) {
      close();  // half-closed: every complete request it sent is answered, nothing more can come
    } else if (state_ != State::Closing && !peerEof_ && !readingPaused_) {
      startReading();
    }
    unref();
  });
}

void ClientConn::write(std::string data) {
  if (state_ == State::Closing) return;
  uv_buf_t b = uv_buf_init(data.data(), static_cast<unsigned>(data.size()));
  // Most answers fit in the socket buffer: write now, without a request
  // (uv_try_write refuses while earlier writes are queued, keeping order).
  int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1);
  if (n == static_cast<int>(data.size())) return;
  if (n < 0 && n != UV_EAGAIN) {
    close();
    return;
  }
  auto* w = new OwnedWrite;
  w->data = n > 0 ? data.substr(static_cast<size_t>(n)) : std::move(data);
  b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1, [](uv_write_t* r, int status) {
        // Write callbacks run before the handle's close callback: the
        // connection is still alive here, even when closing.
        auto* c = static_cast<ClientConn*>(r->handle->data);
        delete reinterpret_cast<OwnedWrite*>(r);
        if (status == 0) c->armSend();
      }) != 0) {
    delete w;
    close();
    return;
  }
  armSend();
}

void ClientConn::trimSoon() {
  // Stalled clients usually go in a crowd (their timers fire together):
  // once their connections are freed (close callbacks run at the end of
  // this loop iteration; two posts later they are done), hand the freed
  // heap back to the system, once per crowd.
  thread_local bool pending = false;
  if (pending) return;
  pending = true;
  Worker* w = wc_->worker;
  w->post([w] {
    w->post([] {
      ::malloc_trim(0);
      pending = false;
    });
  });
}

void ClientConn::armSend() {
  if (handlesClosed_ || state_ == State::Idle || state_ == State::Reading) return;  // the idle timer is in charge
  if (queuedBytes() == 0) {
    if (state_ == State::Responding) uv_timer_stop(&timer_);
    return;
  }
  // Restarted on every write that completes: it fires only when the client
  // took nothing for server.send_timeout (it stopped reading, or its window
  // is shut), and closing frees the buffers its queued writes hold.
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<ClientConn*>(t->data);
        if (self->handlesClosed_) return;
        self->wc_->counters.add(self->wc_->counters.send_timeouts);
        OLOG_RATE(log::Level::Info, "client connection closed: no write progress for server.send_timeout");
        self->close();
        self->trimSoon();
      },
      static_cast<uint64_t>(wc_->config().sendTimeoutMs > 0 ? wc_->config().sendTimeoutMs : 60000), 0);
}

int ClientConn::writeBody(uv_buf_t* bufs, unsigned n, size_t maxQueued, size_t* accepted) {
  if (state_ == State::Closing) return -1;
  size_t total = 0;
  for (unsigned i = 0; i < n; ++i) total += bufs[i].len;
  if (accepted) *accepted = total;
  int w0 = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, n);
  if (w0 < 0 && w0 != UV_EAGAIN) {
    close();
    return -1;
  }
  // Skip what went out; queue the rest (buffers stay the caller's until done).
  const size_t sent = w0 > 0 ? static_cast<size_t>(w0) : 0;
  size_t written = sent;
  unsigned first = 0;
  while (first < n && written >= bufs[first].len) {
    written -= bufs[first].len;
    ++first;
  }
  if (first == n) return 1;  // all written now
  bufs[first].base += written;
  bufs[first].len -= static_cast<unsigned>(written);
  auto* w = new BodyWrite;
  w->conn = this;
  uv_buf_t one;
  if (accepted && total - sent > maxQueued) {
    // Bounded: queue a copy of at most maxQueued bytes; the caller takes
    // the rest back (and may free its buffer now).
    size_t take = maxQueued;
    w->copy.reserve(take);
    for (unsigned i = first; i < n && w->copy.size() < take; ++i)
      w->copy.append(bufs[i].base, std::min<size_t>(bufs[i].len, take - w->copy.size()));
    *accepted = sent + w->copy.size();
    one = uv_buf_init(w->copy.data(), static_cast<unsigned>(w->copy.size()));
    bufs = &one;
    first = 0;
    n = 1;
  }
  refs_++;
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), bufs + first, n - first, [](uv_write_t* r, int status) {
    auto* bw = reinterpret_cast<BodyWrite*>(r);
    ClientConn* c = bw->conn;
    delete bw;
    if (status == 0 && c->txn_ && c->state_ != State::Closing) c->txn_->onBodyWritten(0);
    else if (status != 0 && c->state_ != State::Closing) c->close();
    if (status == 0) c->armSend();
    c->unref();
  });
  if (rc != 0) {
    delete w;
    refs_--;
    close();
    return -1;
  }
  armSend();
  return 0;
}

size_t ClientConn::queuedBytes() const {
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&tcp_));
}

void ClientConn::endResponse(bool clean) {
  if (state_ == State::Closing) return;
  if (txn_) {
    wc_->worker->deferDelete(txn_);
    txn_ = nullptr;
  }
  if (!clean) {
    wc_->counters.add(wc_->counters.truncated_responses);
    close();
    return;
  }
  responseDone_ = true;
  if (!requestDone_) {
    // Answered before the request ended (an error for an upload, say): do not
    // read a body nobody wants; close once the answer is flushed.
    if (reqHasBody_) {
      reqKeepAlive_ = false;
      finishResponse();
    }
    // Otherwise on_message_complete follows in this same parse and
    // parse() calls finishResponse().
    return;
  }
  finishResponse();
}

void ClientConn::finishResponse() {
  if (reqKeepAlive_ && !wc_->draining) {
    resumeParsing();
    return;
  }
  // Let queued writes flush, then close.
  state_ = State::Closing;
  if (readStarted_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    readStarted_ = false;
  }
  auto* sreq = new uv_shutdown_t;
  sreq->data = this;
  refs_++;
  if (uv_shutdown(sreq, reinterpret_cast<uv_stream_t*>(&tcp_), [](uv_shutdown_t* r, int) {
        auto* c = static_cast<ClientConn*>(r->data);
        delete r;
        c->closeHandles();
        c->unref();
      }) != 0) {
    delete sreq;
    refs_--;
    closeHandles();
    return;
  }
  armSend();  // a client that never reads the rest is not waited for forever
}

void ClientConn::drain() {
  if (state_ == State::Idle && !txn_) close();
  // Otherwise endResponse() sees wc_->draining and closes after this response.
}

void ClientConn::close() {
  if (state_ != State::Closing) {
    state_ = State::Closing;
    if (txn_) {
      RequestHandler* t = txn_;
      txn_ = nullptr;
      t->onConnClosed();
      wc_->worker->deferDelete(t);
    }
  }
  closeHandles();
}

void ClientConn::closeHandles() {
  if (handlesClosed_) return;
  handlesClosed_ = true;
  state_ = State::Closing;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &ClientConn::onCloseHandle);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &ClientConn::onCloseHandle);
}

// ---- llhttp callbacks ----

int ClientConn::onMessageBegin(llhttp_t* p) {
  auto* self = static_cast<ClientConn*>(p->data);
  self->state_ = State::Reading;
  self->req_ = RequestHead{};
  self->headBytes_ = 0;
  self->lastWasValue_ = false;
  self->limitExceeded_ = false;
  return 0;
}

int ClientConn::onUrl(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<ClientConn*>(p->data);
  self->headBytes_ += n;
  if (self->headBytes_ > kMaxRequestHead) return self->overLimit();
  self->req_.target.append(at, n);
  return 0;
}

int ClientConn::onHeaderField(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<ClientConn*>(p->data);
  self->headBytes_ += n;
  if (self->headBytes_ > kMaxRequestHead) return self->overLimit();
  auto& h = self->req_.headers;
  if (self->lastWasValue_ || h.empty()) {
    if (h.size() >= 256) return self->overLimit();
    h.emplace_back(std::string(at, n), std::string());
    self->lastWasValue_ = false;
  } else {
    h.back().first.append(at, n);
  }
  return 0;
}

int ClientConn::onHeaderValue(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<ClientConn*>(p->data);
  self->headBytes_ += n;
  if (self->headBytes_ > kMaxRequestHead) return self->overLimit();
  if (self->req_.headers.empty()) return -1;
  self->req_.headers.back().second.append(at, n);
  self->lastWasValue_ = true;
  return 0;
}

int ClientConn::onHeadersComplete(llhttp_t* p) {
  auto* self = static_cast<ClientConn*>(p->data);
  auto& r = self->req_;
  r.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  r.versionMajor = p->http_major;
  r.versionMinor = p->http_minor;
  r.keepAlive = llhttp_should_keep_alive(p) != 0;
  r.chunked = (p->flags & F_CHUNKED) != 0;
  if ((p->flags & F_CONTENT_LENGTH) && !r.chunked) r.contentLength = p->content_length;
  for (auto& kv : r.headers)
    while (!kv.second.empty() && (kv.second.back() == ' ' || kv.second.back() == '\t')) kv.second.pop_back();
  if ((p->flags & F_TRANSFER_ENCODING) && !r.chunked) r.chunked = true;  // refused below, never read as bodiless
  if (p->http_major != 1) {
    // llhttp parses "HTTP/2.0" in a request line: not a version we speak here.
    self->wc_->counters.add(self->wc_->counters.requests);
    self->wc_->counters.add(self->wc_->counters.bad_requests);
    self->failRequest(505, "only HTTP/1.0 and HTTP/1.1 are spoken on this connection");
    return HPE_USER;
  }
  if (const char* why = requestHeadProblem(r)) {
    // Refused before anything is routed or forwarded; the connection closes
    // because the body (if any) cannot be framed safely.
    self->wc_->counters.add(self->wc_->counters.requests);
    self->wc_->counters.add(self->wc_->counters.bad_requests);
    self->failRequest(400, why);
    return HPE_USER;
  }
  uv_timer_stop(&self->timer_);
  self->state_ = State::Responding;
  self->wc_->counters.add(self->wc_->counters.requests);
  self->reqKeepAlive_ = r.keepAlive;
  self->reqHasBody_ = r.hasBody();
  self->txn_ = dispatch(self, std::move(r));
  self->txn_->start();
  if (self->state_ == State::Closing) return HPE_USER;
  return 0;
}

int ClientConn::onBody(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<ClientConn*>(p->data);
  if (self->txn_) self->txn_->onRequestBody(at, n);
  return self->state_ == State::Closing ? HPE_USER : 0;
}

int ClientConn::onMessageComplete(llhttp_t* p) {
  auto* self = static_cast<ClientConn*>(p->data);
  self->requestDone_ = true;
  if (self->txn_) self->txn_->onRequestComplete();
  if (self->state_ == State::Closing) return HPE_USER;
  return HPE_PAUSED;
}

}  // namespace orchard::server
