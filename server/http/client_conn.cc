// ClientConn: one client connection over a Stream, requests parsed by the
// HTTP/1 codec; see client_conn.h for the state table. The hard parts: a
// request's handler can end its response, pause the body or close the
// connection from inside any codec callback, so every callback re-checks
// the state on return; pipelined bytes read while a response is written are
// kept (bounded) and parsed from a fresh stack once it ends; and the small
// answer goes out by tryWrite() with no allocation, only the rest is queued.
#include "server/http/client_conn.h"

#include <malloc.h>

#include <cstring>

#include "common/log.h"
#include "server/http/access_log.h"
#include "server/net/tcp_stream.h"
#include "server/net/tls_context.h"
#include "server/net/tls_stream.h"
#include "server/routes.h"

namespace orchard::server {
namespace {

// Request heads: server.max_header_bytes and server.max_header_count (431
// past them), server.max_uri_length for the target (414), as they are when
// the connection opens.
Http1Codec::Limits requestLimits(const config::Config& c) {
  return Http1Codec::Limits{static_cast<size_t>(c.maxHeaderBytes), static_cast<size_t>(c.maxHeaderCount),
                            static_cast<size_t>(c.maxUriLength)};
}
constexpr size_t kMaxPending = 64 * 1024;  // pipelined bytes held while a response is written

}  // namespace

ClientConn::ClientConn(WorkerContext* wc, Stream* stream)
    : wc_(wc), stream_(stream), codec_(Http1Codec::Type::Request, this, requestLimits(wc->config())) {}

ClientConn::~ClientConn() {
  if (peerCounted_) wc_->server->peers.remove(peer());
  wc_->conns.erase(this);
  wc_->counters.open_connections.fetch_sub(1, std::memory_order_relaxed);
}

void ClientConn::accept(WorkerContext* wc, uv_stream_t* listener, bool tls) {
  TcpStream* tcp = TcpStream::create(wc->worker->loop());
  auto* c = new ClientConn(wc, tcp);
  uv_timer_init(wc->worker->loop(), &c->timer_);
  c->timer_.data = c;
  c->refs_ = 2;
  wc->conns.insert(c);
  wc->counters.open_connections.fetch_add(1, std::memory_order_relaxed);
  if (tcp->accept(listener) != 0) {
    c->close();
    return;
  }
  wc->counters.add(wc->counters.connections_accepted);
  tcp->peerAddress(&c->peer_);
  tcp->setNoDelay(true);
  if (tls) {
    SSL* ssl = wc->snapshot().tls->server ? tls::newServerSsl(wc->snapshot().tls->server.get()) : nullptr;
    if (!ssl) {
      c->close();
      return;
    }
    c->stream_ = TlsStream::create(wc->worker->loop(), tcp, ssl);
    c->secure_ = true;
  }
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
  // Per address, across loops: one locked map update here and one when the
  // connection is freed, nothing per request.
  if (const int64_t perClient = wc->config().maxConnectionsPerClient; perClient > 0) {
    c->peerCounted_ = true;
    if (wc->server->peers.add(c->peer()) > static_cast<uint64_t>(perClient)) {
      wc->counters.add(wc->counters.client_limit_refusals);
      OLOG_RATE(log::Level::Warn, "server.max_connections_per_client (%lld) reached: answering 503",
                static_cast<long long>(perClient));
      c->failRequest(503,
                     "this address has server.max_connections_per_client (" + std::to_string(perClient) +
                         ") connections open already; retry when one has closed",
                     "Retry-After: 1\r\n");
      return;
    }
  }
  c->armHead();
  c->startReading();
}

void ClientConn::unref() {
  if (--refs_ == 0) delete this;
}

void ClientConn::onCloseHandle(uv_handle_t* h) { static_cast<ClientConn*>(h->data)->unref(); }

void ClientConn::onStreamClosed(int) {
  stream_ = nullptr;
  unref();
}

void ClientConn::armIdle() {
  idleTimer_ = true;
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<ClientConn*>(t->data);
        if (self->state_ == State::Idle || self->state_ == State::Reading) self->close();
      },
      static_cast<uint64_t>(wc_->config().idleTimeoutMs > 0 ? wc_->config().idleTimeoutMs : 60000), 0);
}

void ClientConn::armHead() {
  idleTimer_ = false;
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<ClientConn*>(t->data);
        if (self->handlesClosed_ || self->txn_ || (self->state_ != State::Idle && self->state_ != State::Reading))
          return;
        self->wc_->counters.add(self->wc_->counters.header_timeouts);
        self->failRequest(408, "no whole request head within server.header_timeout");
      },
      static_cast<uint64_t>(wc_->config().headerTimeoutMs > 0 ? wc_->config().headerTimeoutMs : 10000), 0);
}

void ClientConn::startReading() {
  if (state_ == State::Closing || stream_->reading()) return;
  stream_->startReading(this);
}

void ClientConn::stopReading() {
  if (stream_) stream_->stopReading();
}

void ClientConn::pauseReading() {
  readingPaused_ = true;
  stopReading();
}

void ClientConn::resumeReading() {
  if (!readingPaused_) return;
  readingPaused_ = false;
  if (!requestDone_ && state_ != State::Closing) startReading();
}

void ClientConn::onStreamEnd() {
  if (state_ == State::Closing) return;
  if (requestDone_ && state_ == State::Responding) {
    // The client half-closed after its request(s): answer everything it
    // sent (resumeParsing() closes once nothing is left), then close.
    peerEof_ = true;
    return;
  }
  close();  // EOF mid-request: nothing more can be delivered
}

void ClientConn::onStreamError(int) {
  if (state_ != State::Closing) close();  // reset: nothing more can be delivered
}

void ClientConn::onStreamData(const char* data, size_t n) {
  if (state_ == State::Closing) return;
  if (requestDone_ && state_ == State::Responding) {
    // Reading goes on while we answer (no epoll churn per request, and a
    // client that goes away is noticed at once); what arrives is the next
    // pipelined request, kept until this response ends.
    pending_.append(data, n);
    if (pending_.size() > kMaxPending) stopReading();
    return;
  }
  parse(data, n);
}

void ClientConn::parse(const char* data, size_t n) {
  using S = Http1Codec::Status;
  const Http1Codec::Result r = codec_.execute(data, n);
  if (state_ == State::Closing) return;
  switch (r.status) {
    case S::NeedMore:
      // A later request on a keep-alive connection whose head did not come
      // whole in this read: it is timed from now, the read that brought its
      // first byte (the wait before it was server.idle_timeout's). A head
      // that comes whole, the usual case, costs no timer at all.
      if (idleTimer_ && state_ == State::Reading && !txn_) armHead();
      return;
    case S::Message:
      // A request completed: keep what follows for later. Reading goes on.
      if (r.consumed < n) pending_.assign(data + r.consumed, n - r.consumed);
      else pending_.clear();
      if (responseDone_) finishResponse();
      return;
    case S::Stopped: return;  // a callback already answered or closed
    case S::BadVersion:
      wc_->counters.add(wc_->counters.requests);
      wc_->counters.add(wc_->counters.bad_requests);
      failRequest(505, "only HTTP/1.0 and HTTP/1.1 are spoken on this connection");
      return;
    default: break;
  }
  if (state_ == State::Responding || txn_) {
    // Broken body framing after the head was routed: the exchange is lost.
    close();
    return;
  }
  wc_->counters.add(wc_->counters.bad_requests);
  const Http1Codec::Limits& lim = codec_.limits();
  if (r.status == S::TooLarge && codec_.targetTooLong()) {
    wc_->counters.add(wc_->counters.uri_too_long);
    failRequest(414, "request target longer than server.max_uri_length (" + std::to_string(lim.maxTargetBytes) +
                         " bytes)");
  } else if (r.status == S::TooLarge) {
    wc_->counters.add(wc_->counters.heads_too_large);
    failRequest(431, "request head over server.max_header_bytes (" + std::to_string(lim.maxHeadBytes) +
                         " bytes) or server.max_header_count (" + std::to_string(lim.maxFields) + " fields)");
  } else {
    failRequest(400, codec_.error());
  }
}

void ClientConn::failRequest(int status, std::string_view why, std::string_view extra) {
  OLOG_RATE(log::Level::Info, "client request refused with %d: %.*s", status, static_cast<int>(why.size()), why.data());
  write(smallResponse(status, "application/json", errorBody(status, why), extra, true, false));
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
    codec_.resume();
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
  if (reqOpen_) {
    noteOut(data.data(), data.size());
    respBytes_ += data.size();
  }
  uv_buf_t b = uv_buf_init(data.data(), static_cast<unsigned>(data.size()));
  // Most answers fit in the socket buffer: write now, without a request
  // (tryWrite() takes nothing while earlier writes are queued, keeping order).
  int n = stream_->tryWrite(&b, 1);
  if (n == static_cast<int>(data.size())) return;
  if (n < 0) {
    close();
    return;
  }
  std::string rest = n > 0 ? data.substr(static_cast<size_t>(n)) : std::move(data);
  if (stream_->writeOwned(std::move(rest), Completion::to<&ClientConn::onWritten>(this)) != 0) {
    close();
    return;
  }
  refs_++;  // the completion may come after detachStream() handed the stream on
  armSend();
}

void ClientConn::onWritten(int status) {
  if (status == 0) armSend();
  unref();
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
  if (reqOpen_ && n > 0) noteOut(bufs[0].base, bufs[0].len);
  int w0 = stream_->tryWrite(bufs, n);
  if (w0 < 0) {
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
  if (first == n) {
    respBytes_ += total;
    return 1;  // all written now
  }
  bufs[first].base += written;
  bufs[first].len -= static_cast<unsigned>(written);
  const Completion done = Completion::to<&ClientConn::onBodyWriteDone>(this);
  int rc;
  if (accepted && total - sent > maxQueued) {
    // Bounded: queue a copy of at most maxQueued bytes; the caller takes
    // the rest back (and may free its buffer now).
    std::string copy;
    copy.reserve(maxQueued);
    for (unsigned i = first; i < n && copy.size() < maxQueued; ++i)
      copy.append(bufs[i].base, std::min<size_t>(bufs[i].len, maxQueued - copy.size()));
    *accepted = sent + copy.size();
    rc = stream_->writeOwned(std::move(copy), done);
  } else {
    rc = stream_->write(bufs + first, n - first, done);
  }
  if (rc != 0) {
    close();
    return -1;
  }
  respBytes_ += accepted ? *accepted : total;
  refs_++;
  armSend();
  return 0;
}

void ClientConn::onBodyWriteDone(int status) {
  if (status == 0 && txn_ && state_ != State::Closing) txn_->onBodyWritten(0);
  else if (status != 0 && state_ != State::Closing) close();
  if (status == 0) armSend();
  unref();
}

size_t ClientConn::queuedBytes() const { return stream_ ? stream_->queuedBytes() : 0; }

long ClientConn::sendFile(int fd, uint64_t offset, size_t len) {
  if (state_ == State::Closing || !stream_) return UV_ECANCELED;
  long n = stream_->sendFile(fd, offset, len);
  if (n > 0) {
    if (reqOpen_ && firstByteNs_ == 0) firstByteNs_ = monotonicNs();
    respBytes_ += static_cast<uint64_t>(n);
  }
  if (n >= 0 || n == UV_ENOSYS || n == UV_EINVAL || n == UV_EOF) return n;
  close();  // the socket broke
  return n;
}

int ClientConn::waitWritable(size_t pending) {
  if (state_ == State::Closing || !stream_) return -1;
  if (stream_->waitWritable(pending, Completion::to<&ClientConn::onBodyWriteDone>(this)) != 0) {
    close();
    return -1;
  }
  refs_++;
  armSend();  // a client that takes nothing for send_timeout is closed, as with queued writes
  return 0;
}

void ClientConn::endResponse(bool clean) {
  if (state_ == State::Closing) return;
  recordRequest(false);
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
  stopReading();
  if (stream_->shutdown(Completion::to<&ClientConn::onShutdown>(this)) != 0) {
    closeHandles();
    return;
  }
  refs_++;
  armSend();  // a client that never reads the rest is not waited for forever
}

Stream* ClientConn::detachStream(std::string* leftover) {
  // Nothing queued (handler.h): what the connection still had to send would
  // go out under the new owner's name, past its own send timeout.
  if (state_ == State::Closing || handlesClosed_ || !requestDone_ || stream_->queuedBytes() != 0) return nullptr;
  Stream* s = stream_;
  s->stopReading();
  stream_ = nullptr;
  *leftover = std::move(pending_);  // read past the head: the tunnel's first bytes
  pending_.clear();
  result_ = RequestResult::Tunnel;  // its line is the tunnel's own, when it closes
  recordRequest(true);
  if (txn_) {
    wc_->worker->deferDelete(txn_);
    txn_ = nullptr;
  }
  state_ = State::Closing;
  handlesClosed_ = true;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &ClientConn::onCloseHandle);
  unref();  // the stream's reference; the timer's close callback frees the connection
  return s;
}

void ClientConn::onShutdown(int) {
  closeHandles();
  unref();
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
      t->onConnClosed();  // may tell its outcome first
      wc_->worker->deferDelete(t);
    }
    recordRequest(false);
  }
  closeHandles();
}

void ClientConn::closeHandles() {
  if (handlesClosed_) return;
  handlesClosed_ = true;
  state_ = State::Closing;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &ClientConn::onCloseHandle);
  stream_->close(Completion::to<&ClientConn::onStreamClosed>(this));
}

// ---- what the request became ----

void ClientConn::noteOutcome(RequestResult result, std::string_view detail) {
  result_ = result;
  if (log_ && log_->sink) log_->detail.assign(detail);
}

void ClientConn::noteOut(const char* start, size_t startLen) {
  if (firstByteNs_ == 0) firstByteNs_ = monotonicNs();
  // The status is only the access log's. Heads are written whole, at the
  // start of a write: "HTTP/1.1 200 ...". An interim 1xx is followed by the
  // final head in a later write.
  if (respStatus_ < 200 && log_ && log_->sink && startLen >= 12 && std::memcmp(start, "HTTP/1.", 7) == 0) {
    const char* d = start + 9;
    if (d[0] >= '1' && d[0] <= '5' && d[1] >= '0' && d[1] <= '9' && d[2] >= '0' && d[2] <= '9')
      respStatus_ = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
  }
}

void ClientConn::recordRequest(bool tunnel) {
  if (!reqOpen_) return;
  reqOpen_ = false;
  const uint64_t now = monotonicNs();
  Counters& c = wc_->counters;
  c.addResponse(result_, form_);
  c.add(c.response_bytes, respBytes_);
  if (firstByteNs_ != 0) c.ttfb[static_cast<size_t>(result_)].record(firstByteNs_ - reqStartNs_);
  if (tunnel) return;  // the tunnel's duration and line come when it closes
  c.duration.record(now - reqStartNs_);
  if (!log_ || !log_->sink) return;
  struct timespec wall;
  ::clock_gettime(CLOCK_REALTIME, &wall);
  AccessEntry e;
  e.unixMs = static_cast<int64_t>(wall.tv_sec) * 1000 + wall.tv_nsec / 1'000'000;
  e.peer = peer();
  e.method = log_->method;
  e.target = log_->target;
  e.host = log_->host;
  e.status = respStatus_;
  e.bytes = respBytes_;
  e.result = result_;
  e.form = form_;
  e.ttfbUs = firstByteNs_ != 0 ? static_cast<int64_t>((firstByteNs_ - reqStartNs_) / 1000) : -1;
  e.durationUs = static_cast<int64_t>((now - reqStartNs_) / 1000);
  e.detail = log_->detail;
  wc_->accessLog.append(log_->sink, e);
  log_->sink.reset();  // an idle connection holds no file a reload replaced
}

// ---- Http1Codec::Sink ----

void ClientConn::onMessageBegin() { state_ = State::Reading; }

Http1Codec::Next ClientConn::onHead() {
  RequestHead& r = codec_.request();
  if (const char* why = requestHeadProblem(r)) {
    // Refused before anything is routed or forwarded; the connection closes
    // because the body (if any) cannot be framed safely.
    wc_->counters.add(wc_->counters.requests);
    wc_->counters.add(wc_->counters.bad_requests);
    failRequest(400, why);
    return Http1Codec::Next::Stop;
  }
  uv_timer_stop(&timer_);
  state_ = State::Responding;
  wc_->counters.add(wc_->counters.requests);
  reqOpen_ = true;
  result_ = RequestResult::Local;
  form_ = RequestForm::Local;
  respStatus_ = 0;
  firstByteNs_ = 0;
  respBytes_ = 0;
  reqStartNs_ = monotonicNs();
  if (const auto& sink = wc_->snapshot().accessLog) {
    // Copied now (the handler takes the head): reused strings, no
    // allocation once a connection has logged a request or two.
    if (!log_) log_ = std::make_unique<LogFields>();
    log_->sink = sink;
    log_->method.assign(r.method);
    log_->target.clear();
    appendMaskedTarget(&log_->target, r.target, wc_->config().accessLogMask);
    auto host = r.header("Host");
    log_->host.assign(host ? *host : std::string_view());
    log_->detail.clear();
  } else if (log_) {
    log_->sink.reset();
  }
  reqKeepAlive_ = r.keepAlive;
  reqHasBody_ = r.hasBody();
  txn_ = dispatch(this, std::move(r));
  txn_->start();
  return state_ == State::Closing ? Http1Codec::Next::Stop : Http1Codec::Next::Body;
}

bool ClientConn::onBody(const char* at, size_t n) {
  if (txn_) txn_->onRequestBody(at, n);
  return state_ != State::Closing;
}

bool ClientConn::onMessageEnd() {
  requestDone_ = true;
  if (txn_) txn_->onRequestComplete();
  return state_ != State::Closing;
}

}  // namespace orchard::server
