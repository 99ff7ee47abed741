// TlsStream: TLS over an inner Stream through memory BIOs; see
// tls_stream.h for the contract. The hard parts: the handshake reads the
// inner stream whether or not anyone reads this one; writes made before it
// ends wait (owned) and go out in order once it does; plaintext already
// decrypted (or ciphertext already read) when the reader stops is kept and
// delivered from a posted task when it starts again; and close() must
// outlive two handles (the inner stream and the task) before it notifies.
#include "server/net/tls_stream.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>
#include <utility>

#include "server/net/tls_context.h"

namespace orchard::server {
namespace {

constexpr size_t kReadBuf = 64 * 1024;
thread_local char tPlain[kReadBuf];

// The write BIO: SSL's records are appended to the stream's `out_` string,
// which goes to the inner stream as it is (moved, never copied again).
int outWrite(BIO* b, const char* data, int n) {
  static_cast<std::string*>(BIO_get_data(b))->append(data, static_cast<size_t>(n));
  return n;
}
long outCtrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING: return static_cast<long>(static_cast<std::string*>(BIO_get_data(b))->size());
    default: return 0;
  }
}
int outCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}
BIO_METHOD* outMethod() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "orchard-tls-out");
    BIO_meth_set_write(bm, outWrite);
    BIO_meth_set_ctrl(bm, outCtrl);
    BIO_meth_set_create(bm, outCreate);
    return bm;
  }();
  return m;
}

// Several buffers of a small answer (head and body) become one record.
constexpr size_t kCoalesce = 16 * 1024;
thread_local char tGather[kCoalesce];

const char* sslErrorName(int e) {
  switch (e) {
    case SSL_ERROR_SSL: return "protocol error";
    case SSL_ERROR_SYSCALL: return "transport error";
    case SSL_ERROR_ZERO_RETURN: return "closed by the peer";
    case SSL_ERROR_WANT_X509_LOOKUP: return "certificate lookup pending";
    default: return "error";
  }
}

}  // namespace

TlsStream* TlsStream::create(uv_loop_t* loop, Stream* inner, SSL* ssl) {
  auto* s = new TlsStream(loop, inner, ssl);
  // A client speaks first: its ClientHello goes out now (no callback runs
  // here: the inner write completes later). Both roles read from now on.
  if (!SSL_is_server(ssl)) s->advanceHandshake();
  s->updateInnerReading();
  return s;
}

TlsStream::TlsStream(uv_loop_t* loop, Stream* inner, SSL* ssl) : inner_(inner), ssl_(ssl) {
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(outMethod());
  BIO_set_data(wbio_, &out_);
  BIO_set_mem_eof_return(rbio_, -1);  // an empty read BIO means "wait", not end of stream
  SSL_set_bio(ssl_, rbio_, wbio_);
  uv_idle_init(loop, &task_);
  task_.data = this;
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

// ---- reading ----

int TlsStream::startReading(StreamReader* reader) {
  if (closing_) return UV_ECANCELED;
  reader_ = reader;
  if (reading_) return 0;
  if (peerClosed_ && !endPending_) return UV_EOF;  // the end was delivered already
  reading_ = true;
  if (brokenStatus_ != 0 || endPending_ ||
      (handshakeDone_ && (SSL_pending(ssl_) > 0 || BIO_ctrl_pending(rbio_) > 0)))
    scheduleDeliver();
  updateInnerReading();
  return 0;
}

void TlsStream::stopReading() {
  if (!reading_) return;
  reading_ = false;
  updateInnerReading();
}

void TlsStream::updateInnerReading() {
  if (closing_ || brokenStatus_ != 0 || innerEnded_) return;
  const bool want = !handshakeDone_ || reading_;
  if (want && !inner_->reading()) {
    if (int rc = inner_->startReading(this); rc != 0) {
      failure_ = std::string("connection broke: ") + uv_strerror(rc);
      brokenStatus_ = rc;
      scheduleDeliver();
    }
  } else if (!want && inner_->reading()) {
    inner_->stopReading();
  }
}

void TlsStream::onStreamData(const char* data, size_t n) {
  if (closing_ || brokenStatus_ != 0) return;
  if (BIO_write(rbio_, data, static_cast<int>(n)) != static_cast<int>(n)) {
    fail("buffering a record", SSL_ERROR_SSL);
    notifyBroken();
    return;
  }
  pump();
}

void TlsStream::onStreamEnd() {
  innerEnded_ = true;
  if (closing_ || brokenStatus_ != 0) return;
  pump();
}

void TlsStream::onStreamError(int status) {
  if (closing_ || brokenStatus_ != 0) return;
  failure_ = std::string("connection broke: ") + uv_strerror(status);
  if (!handshakeDone_) tls::counters().handshake_failures.fetch_add(1, std::memory_order_relaxed);
  brokenStatus_ = status;
  notifyBroken();
}

void TlsStream::pump() {
  if (inPump_) return;  // a reader's callback re-entered; the outer loop goes on
  inPump_ = true;
  if (handshakeDone_ || advanceHandshake()) deliver();
  inPump_ = false;
  if (brokenStatus_ != 0) notifyBroken();
  else updateInnerReading();
}

bool TlsStream::advanceHandshake() {
  const int rc = SSL_do_handshake(ssl_);
  const int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
  // Whatever the handshake produced (its next flight, or an alert) goes out.
  if (int f = flush(Completion{}, true); f != 0 && rc == 1) {
    failure_ = std::string("connection broke: ") + uv_strerror(f);
    brokenStatus_ = f;
    return false;
  }
  if (rc == 1) {
    handshakeDone_ = true;
    auto& c = tls::counters();
    c.handshakes.fetch_add(1, std::memory_order_relaxed);
    c.userspace_connections.fetch_add(1, std::memory_order_relaxed);
    if (SSL_session_reused(ssl_)) c.resumed.fetch_add(1, std::memory_order_relaxed);
    flushPendingWrites();
    return brokenStatus_ == 0;
  }
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    if (innerEnded_) fail("the peer closed the connection during the handshake", SSL_ERROR_SYSCALL);
    return false;
  }
  fail("handshake failed", err);
  return false;
}

void TlsStream::deliver() {
  while (reading_ && reader_ && !closing_ && brokenStatus_ == 0) {
    size_t got = 0;
    int err = SSL_ERROR_NONE;
    while (got < kReadBuf) {
      size_t n = 0;
      if (SSL_read_ex(ssl_, tPlain + got, kReadBuf - got, &n) == 1) {
        got += n;
        continue;
      }
      err = SSL_get_error(ssl_, 0);
      break;
    }
    if (got > 0) {
      reader_->onStreamData(tPlain, got);
      if (err == SSL_ERROR_NONE || err == SSL_ERROR_WANT_READ) continue;  // read again: the reader may have stopped
    }
    if (err == SSL_ERROR_NONE) continue;
    // A post-handshake message (a key update) may need an answer.
    if (int f = flush(Completion{}, true); f != 0) {
      failure_ = std::string("connection broke: ") + uv_strerror(f);
      brokenStatus_ = f;
      return;
    }
    if (err == SSL_ERROR_WANT_READ && !innerEnded_) return;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_ZERO_RETURN) {
      // close_notify, or the socket ended without one: an end of stream
      // (HTTP frames its own bodies, so a cut body still shows as one).
      peerClosed_ = true;
      endPending_ = false;
      reading_ = false;
      if (inner_->reading()) inner_->stopReading();
      reader_->onStreamEnd();
      return;
    }
    fail("reading a record", err);
    return;
  }
}

void TlsStream::fail(const char* what, int sslError) {
  if (brokenStatus_ != 0) return;
  const std::string why = tls::drainErrors();
  const long vr = SSL_get_verify_result(ssl_);
  if (!SSL_is_server(ssl_) && vr != X509_V_OK) {
    verifyFailed_ = true;
    failure_ = std::string("certificate verify failed: ") + X509_verify_cert_error_string(vr);
    tls::counters().verify_failures.fetch_add(1, std::memory_order_relaxed);
  } else {
    failure_ = std::string(what) + ": " + (why.empty() ? sslErrorName(sslError) : why);
  }
  if (!handshakeDone_) tls::counters().handshake_failures.fetch_add(1, std::memory_order_relaxed);
  brokenStatus_ = UV_EPROTO;
}

void TlsStream::notifyBroken() {
  // From an inner callback: tell the reader now; pending writes fail from
  // the task (their completions never run inside a caller's call).
  if (!pending_.empty()) scheduleDeliver();
  if (closing_ || !reading_ || !reader_) return;
  reading_ = false;
  endPending_ = false;
  reader_->onStreamError(brokenStatus_);
}

void TlsStream::scheduleDeliver() {
  if (taskActive_ || closing_) return;
  taskActive_ = true;
  uv_idle_start(&task_, &TlsStream::onTask);
}

void TlsStream::onTask(uv_idle_t* h) {
  auto* self = static_cast<TlsStream*>(h->data);
  uv_idle_stop(h);
  self->taskActive_ = false;
  if (self->closing_) return;
  if (self->brokenStatus_ != 0) {
    std::deque<Pending> failed = std::move(self->pending_);
    self->pending_.clear();
    for (auto& p : failed) p.done(self->brokenStatus_);
    if (self->closing_) return;
    self->notifyBroken();
    return;
  }
  if (self->handshakeDone_) self->pump();
}

// ---- writing ----

int TlsStream::encrypt(const char* data, size_t n) {
  size_t off = 0;
  while (off < n) {
    size_t w = 0;
    if (SSL_write_ex(ssl_, data + off, n - off, &w) != 1) {
      fail("writing a record", SSL_get_error(ssl_, 0));
      return UV_EPROTO;
    }
    off += w;
  }
  return 0;
}

int TlsStream::flush(Completion done, bool tryFirst) {
  if (out_.empty()) {
    if (!done.fn) return 0;
    return inner_->writeOwned(std::string(), done);
  }
  size_t sent = 0;
  if (tryFirst && inner_->queuedBytes() == 0) {
    uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    int w = inner_->tryWrite(&b, 1);
    if (w < 0) {
      out_.clear();
      return w;
    }
    sent = static_cast<size_t>(w);
  }
  if (sent == out_.size() && !done.fn) {
    out_.clear();  // keeps its capacity: the next small answer allocates nothing
    return 0;
  }
  if (sent > 0) out_.erase(0, sent);
  std::string rest = std::move(out_);
  out_.clear();
  return inner_->writeOwned(std::move(rest), done);
}

int TlsStream::encryptAll(const uv_buf_t* bufs, unsigned n, size_t* total) {
  size_t t = 0;
  for (unsigned i = 0; i < n; ++i) t += bufs[i].len;
  *total = t;
  if (n > 1 && t <= kCoalesce) {
    size_t off = 0;
    for (unsigned i = 0; i < n; ++i) {
      std::memcpy(tGather + off, bufs[i].base, bufs[i].len);
      off += bufs[i].len;
    }
    return encrypt(tGather, t);
  }
  for (unsigned i = 0; i < n; ++i)
    if (int rc = encrypt(bufs[i].base, bufs[i].len); rc != 0) return rc;
  return 0;
}

void TlsStream::flushPendingWrites() {
  while (!pending_.empty() && brokenStatus_ == 0 && !closing_) {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    if (p.shutdown) {
      (void)SSL_shutdown(ssl_);
      tls::drainErrors();
      shutdownSent_ = true;
      int rc = flush(Completion{}, false);
      if (rc == 0) rc = inner_->shutdown(p.done);
      if (rc != 0) {
        brokenStatus_ = rc;
        pending_.push_front(Pending{std::string(), p.done, false});  // fails from the task
      }
      continue;
    }
    int rc = encrypt(p.data.data(), p.data.size());
    if (rc == 0) rc = flush(p.done, false);
    if (rc != 0) {
      if (brokenStatus_ == 0) brokenStatus_ = rc;
      pending_.push_front(Pending{std::string(), p.done, false});
    }
  }
  if (brokenStatus_ != 0 && !pending_.empty()) scheduleDeliver();
}

int TlsStream::tryWrite(const uv_buf_t* bufs, unsigned n) {
  if (closing_) return UV_ECANCELED;
  if (brokenStatus_ != 0) return brokenStatus_;
  if (!handshakeDone_ || !pending_.empty() || inner_->queuedBytes() > 0) return 0;
  size_t total = 0;
  if (int rc = encryptAll(bufs, n, &total); rc != 0) return rc;
  // The plaintext is consumed: what the socket does not take now is queued
  // here (it shows in queuedBytes(), so the caller waits for it).
  if (int rc = flush(Completion{}, true); rc != 0) return rc;
  return static_cast<int>(total);
}

int TlsStream::write(const uv_buf_t* bufs, unsigned n, Completion done) {
  if (closing_) return UV_ECANCELED;
  if (brokenStatus_ != 0) return brokenStatus_;
  if (!handshakeDone_ || !pending_.empty()) {
    Pending p;
    p.done = done;
    for (unsigned i = 0; i < n; ++i) p.data.append(bufs[i].base, bufs[i].len);
    pending_.push_back(std::move(p));
    return 0;
  }
  size_t total = 0;
  if (int rc = encryptAll(bufs, n, &total); rc != 0) return rc;
  return flush(done, false);
}

int TlsStream::writeOwned(std::string data, Completion done) {
  if (closing_) return UV_ECANCELED;
  if (brokenStatus_ != 0) return brokenStatus_;
  if (!handshakeDone_ || !pending_.empty()) {
    pending_.push_back(Pending{std::move(data), done, false});
    return 0;
  }
  if (int rc = encrypt(data.data(), data.size()); rc != 0) return rc;
  return flush(done, false);
}

size_t TlsStream::queuedBytes() const {
  size_t n = inner_->queuedBytes() + out_.size();
  for (const auto& p : pending_) n += p.data.size();
  return n;
}

int TlsStream::shutdown(Completion done) {
  if (closing_) return UV_ECANCELED;
  if (brokenStatus_ != 0) return brokenStatus_;
  if (shutdownSent_) return UV_EALREADY;
  if (!handshakeDone_ || !pending_.empty()) {
    pending_.push_back(Pending{std::string(), done, true});
    return 0;
  }
  shutdownSent_ = true;
  (void)SSL_shutdown(ssl_);  // close_notify into the write BIO; the peer's is not waited for
  tls::drainErrors();
  if (int rc = flush(Completion{}, false); rc != 0) return rc;
  return inner_->shutdown(done);
}

// ---- closing ----

void TlsStream::close(Completion closed) {
  if (closing_) return;
  closing_ = true;
  closed_ = closed;
  reader_ = nullptr;
  reading_ = false;
  uv_idle_stop(&task_);
  uv_close(reinterpret_cast<uv_handle_t*>(&task_), &TlsStream::onTaskClosed);
  inner_->close(Completion::to<&TlsStream::onInnerClosed>(this));
}

void TlsStream::onTaskClosed(uv_handle_t* h) { static_cast<TlsStream*>(h->data)->onInnerClosed(0); }

void TlsStream::onInnerClosed(int) {
  if (--open_ > 0) return;
  // Writes still waiting for the handshake never went out.
  std::deque<Pending> cancelled = std::move(pending_);
  for (auto& p : cancelled) p.done(UV_ECANCELED);
  tls::drainErrors();
  Completion c = closed_;
  delete this;
  c(0);
}

int TlsStream::peerAddress(struct sockaddr_storage* out) const { return inner_->peerAddress(out); }

}  // namespace orchard::server
