// Splice: two Streams pumped into each other (a CONNECT tunnel). The hard
// parts: backpressure (a direction stops reading while its write is queued
// and resumes in that write's completion, so memory stays one read per
// direction), half-close (an end of stream is passed on as a shutdown while
// the other direction carries on), and the end: completions that arrive
// while the streams close (UV_ECANCELED) must touch nothing, and the Splice
// lives until both close notifications have run.
#include "server/net/splice.h"

#include <string>

namespace orchard::server {

Splice* Splice::start(Stream* a, Stream* b, Completion done) {
  auto* s = new Splice(a, b, done);
  int rc = a->startReading(&s->ab_);
  if (rc == 0) rc = b->startReading(&s->ba_);
  if (rc != 0) s->end(rc);  // done runs from the close notifications, never inside start()
  return s;
}

Splice::Splice(Stream* a, Stream* b, Completion done) : done_(done) {
  ab_.owner = ba_.owner = this;
  ab_.from = ba_.to = a;
  ab_.to = ba_.from = b;
}

void Splice::Pump::onStreamData(const char* data, size_t n) {
  if (owner->ending_) return;
  bytes += n;
  uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(n));
  int w = to->tryWrite(&b, 1);
  if (w < 0) {
    owner->end(w);
    return;
  }
  if (static_cast<size_t>(w) == n) return;
  // The other side is slower: queue the rest and stop reading until it is written.
  int rc = to->writeOwned(std::string(data + w, n - static_cast<size_t>(w)), Completion::to<&Pump::onWritten>(this));
  if (rc != 0) {
    owner->end(rc);
    return;
  }
  writing = true;
  from->stopReading();
}

void Splice::Pump::onWritten(int status) {
  writing = false;
  if (owner->ending_) return;
  if (status != 0) {
    owner->end(status);
    return;
  }
  if (!ended) {
    int rc = from->startReading(this);
    if (rc != 0) owner->end(rc);
  }
}

void Splice::Pump::onStreamEnd() {
  if (owner->ending_) return;
  ended = true;
  // The shutdown goes out after any queued write.
  int rc = to->shutdown(Completion::to<&Pump::onShut>(this));
  if (rc != 0) owner->end(rc);
}

void Splice::Pump::onShut(int status) {
  if (owner->ending_) return;
  if (status != 0) {
    owner->end(status);
    return;
  }
  shut = true;
  Pump& other = this == &owner->ab_ ? owner->ba_ : owner->ab_;
  if (other.shut) owner->end(0);
}

void Splice::end(int status) {
  if (ending_) return;
  ending_ = true;
  status_ = status;
  ab_.from->close(Completion::to<&Splice::onClosed>(this));
  ba_.from->close(Completion::to<&Splice::onClosed>(this));
}

void Splice::onClosed(int) {
  if (--open_ > 0) return;
  // done runs while the byte counts can still be read (the tunnel's last
  // tally); the Splice is freed right after it returns.
  done_(status_);
  delete this;
}

}  // namespace orchard::server
