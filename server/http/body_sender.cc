// BodySender: the body loop; see body_sender.h. The hard parts are the
// end of a whole object (its last bytes go out only once the fill is
// complete, so a client holding the whole body and asking again gets a hit)
// and bounded writes under buffer pressure (bytes a connection did not take
// are read again later; a chunked answer, whose chunk size is already
// written, reads 16 KiB at a time instead).
#include "server/http/body_sender.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "server/context.h"

namespace orchard::server {
namespace {

// cachestat(2) (Linux 6.5): how much of a file range is in the page cache,
// without reading it. Declared here: older headers lack it.
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif
struct CachestatRange {
  uint64_t off;
  uint64_t len;
};
struct Cachestat {
  uint64_t nrCache, nrDirty, nrWriteback, nrEvicted, nrRecentlyEvicted;
};
std::atomic<bool> gNoCachestat{false};  // ENOSYS once: every range counts as cached (sendfile reads it on the loop)

// Whether every page of [off, off + len) is in the page cache.
bool cached(int fd, uint64_t off, size_t len) {
  if (gNoCachestat || len == 0) return true;
  const uint64_t page = 4096, first = off / page * page, end = (off + len + page - 1) / page * page;
  CachestatRange r{first, end - first};
  Cachestat cs{};
  if (::syscall(SYS_cachestat, fd, &r, &cs, 0) != 0) {
    if (errno == ENOSYS) gNoCachestat = true;
    return true;
  }
  return cs.nrCache >= (end - first) / page;
}

// preadv2(RWF_NOWAIT): the bytes the page cache has now, EAGAIN if none.
std::atomic<bool> gNoNowait{false};  // EOPNOTSUPP once: plain pread on the loop, as before
ssize_t preadNoWait(int fd, char* dst, size_t n, uint64_t off) {
  struct iovec v{dst, n};
  ssize_t r;
  if (!gNoNowait) {
    do r = ::preadv2(fd, &v, 1, static_cast<off_t>(off), RWF_NOWAIT);
    while (r < 0 && errno == EINTR);
    if (r >= 0 || errno != EOPNOTSUPP) return r;
    gNoNowait = true;
  }
  do r = ::pread(fd, dst, n, static_cast<off_t>(off));
  while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

// One verify-and-read on the thread pool. It owns a dup of the file and the
// object's pin (the sender may go meanwhile) and the buffer it reads into,
// which goes back to the sender or, if the sender is gone, to the pool.
struct BodySender::DiskRead {
  uv_work_t req;
  std::weak_ptr<bool> alive;
  BodySender* sender;
  WorkerContext* wc;
  cache::Store* store;
  cache::CacheKey key;
  std::shared_ptr<const cache::ObjectMeta> meta;
  std::shared_ptr<void> pin;
  int fd;
  char* buf;
  uint64_t off;
  size_t len;
  ssize_t n = 0;
  int err = 0;
  std::string why;  // a failed verification
};

BodySender::~BodySender() {
  *alive_ = false;
  releaseBuffer();
  closeFile();
}

void BodySender::releaseBuffer() {
  if (buf_) wc_->buffers.put(buf_);
  buf_ = nullptr;
  ready_ = 0;
}

void BodySender::closeFile() {
  if (fd_ >= 0) {
    if (cachedFd_) wc_->files.release(key_.hash, fdGen_);
    else ::close(fd_);
  }
  fd_ = -1;
  cachedFd_ = false;
  pin_.reset();
}

std::string BodySender::layoutRanges(const cache::RangeResult& rr, uint64_t length, std::string_view contentType,
                                     int* status, bool* noBody) {
  if (rr.outcome == cache::RangeOutcome::Unsatisfiable) {
    *status = 416;
    *noBody = true;
    return "Content-Range: bytes */" + std::to_string(length) + "\r\nContent-Length: 0\r\n";
  }
  *status = 206;
  if (rr.ranges.size() == 1) {
    const auto& r = rr.ranges.front();
    segs_.push_back(Segment{{}, r.first, r.last + 1});
    return "Content-Range: " + cache::contentRange(r, length) + "\r\nContent-Length: " + std::to_string(r.size()) +
           "\r\n";
  }
  static const char kBoundary[] = "ORCHARD_BYTERANGES_7d1f";
  uint64_t total = 0;
  for (const auto& r : rr.ranges) {
    std::string part = "\r\n--";
    part += kBoundary;
    part += "\r\n";
    if (!contentType.empty()) {
      part += "Content-Type: ";
      part += contentType;
      part += "\r\n";
    }
    part += "Content-Range: " + cache::contentRange(r, length) + "\r\n\r\n";
    total += part.size() + r.size();
    segs_.push_back(Segment{std::move(part), r.first, r.last + 1});
  }
  trailer_ = std::string("\r\n--") + kBoundary + "--\r\n";
  total += trailer_.size();
  return std::string("Content-Type: multipart/byteranges; boundary=") + kBoundary + "\r\nContent-Length: " +
         std::to_string(total) + "\r\n";
}

void BodySender::beginBody() {
  cursor_ = segs_.front().first;
  if (!buf_) buf_ = wc_->buffers.get();
  pump();
}

// ---- the body loop ----

void BodySender::pump() {
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
    if (avail > 0 && !fill_ && kernelPath_ && ready_ == 0 && headOut_.empty() && !chunkedOut_ &&
        avail > BufferPool::kSize && conn_->queuedBytes() == 0 &&
        rangeVerified(cursor_, std::min<uint64_t>(kKernelChunk, avail)) &&
        cached(fd, cursor_, static_cast<size_t>(std::min<uint64_t>(kKernelChunk, avail)))) {
      // A stored file with more than one buffer to go: the kernel sends it
      // from the page cache (see sendKernel()).
      if (!sendKernel(fd, avail)) return;
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
        // Blocks not verified yet are checked before their first send (a
        // corrupt one, dropped by the store, ends the response uncleanly);
        // that and bytes not in the page cache are read off the loop.
        if (ready_ > 0 && dst == buf_) {
          n = static_cast<ssize_t>(std::min(ready_, want));
        } else {
          ready_ = 0;
          if (!rangeVerified(cursor_, want)) {
            readOffLoop(fd, want);
            return;
          }
          n = preadNoWait(fd, dst, want, cursor_);
          if (n < 0 && errno == EAGAIN) {
            readOffLoop(fd, want);
            return;
          }
        }
        ready_ = 0;
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
        ready_ = 0;
      }
      cursor_ += taken;
      bytesSent_ += taken;
      wc_->counters.add(wc_->counters.bytes_to_clients, taken);
      if (cacheClientBytes_) wc_->counters.add(*cacheClientBytes_, taken);
      if (!fill_) wc_->counters.add(wc_->counters.bytes_from_store, taken);  // ByteHitRatio
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
    if (auto fetch = fill_->need(cursor_)) fetchFrom(*fetch);
    std::weak_ptr<bool> alive = alive_;
    if (fill_->waitIfUnchanged(snap, &wc_->worker->executor(), [alive, this] {
          if (auto a = alive.lock(); a && *a) pump();
        }))
      return;
  }
}

// One sendfile-style step of a stored file's segment: false when the loop
// must stop (a wait is armed, the response ended or the connection is
// closing). Blocks are verified before the kernel reads them, as on the copy
// path. The pool buffer goes back while the kernel path runs, so such a
// stream holds no user-space buffer (only its socket's send buffer in the
// kernel). After kKernelBurst bytes in one go the loop is yielded to the
// other connections (a wait that a writable socket ends at the next turn).
bool BodySender::sendKernel(int fd, uint64_t avail) {
  const size_t want = static_cast<size_t>(std::min<uint64_t>(kKernelChunk, avail));
  if (auto v = wc_->server->store->ensureVerified(key_, *storedMeta_, fd, cursor_, want); !v) {
    OLOG_RATE(log::Level::Warn, "hit on %s cut at %llu: %s", key_.text.c_str(),
              static_cast<unsigned long long>(cursor_), v.error().message().c_str());
    finish(false);
    return false;
  }
  const long n = conn_->sendFile(fd, cursor_, want);
  if (n > 0) {
    releaseBuffer();
    const auto taken = static_cast<uint64_t>(n);
    cursor_ += taken;
    bytesSent_ += taken;
    wc_->counters.add(wc_->counters.bytes_to_clients, taken);
    if (cacheClientBytes_) wc_->counters.add(*cacheClientBytes_, taken);
    wc_->counters.add(wc_->counters.bytes_from_store, taken);
    wc_->counters.add(wc_->counters.bytes_kernel_path, taken);
    burst_ += taken;
    if (burst_ < kKernelBurst) return true;
    burst_ = 0;
    return armWritable(0);
  }
  if (n == 0) return armWritable(want);  // the socket is full
  if (n == UV_ENOSYS || n == UV_EINVAL) {
    // No kernel path on this stream (TLS) or for this file: copy the rest.
    if (n == UV_EINVAL) wc_->counters.add(wc_->counters.kernel_path_fallbacks);
    kernelPath_ = false;
    if (!buf_) buf_ = wc_->buffers.get();
    return true;
  }
  if (n == UV_EOF) {
    OLOG_RATE(log::Level::Warn, "read of %s failed at %llu: short file", key_.text.c_str(),
              static_cast<unsigned long long>(cursor_));
    finish(false);  // never pass a short file off as whole
  }
  return false;  // otherwise closing: onConnClosed cleans up
}

bool BodySender::rangeVerified(uint64_t off, uint64_t len) const {
  const cache::VerifiedBlocks* v = storedMeta_->verified.get();
  if (!v || v->allVerified() || len == 0) return true;
  const uint64_t last = std::min<uint64_t>((off + len - 1) / cache::kChecksumBlockSize, v->blocks() - 1);
  for (uint64_t b = off / cache::kChecksumBlockSize; b <= last; ++b)
    if (!v->test(b)) return false;
  return true;
}

void BodySender::readOffLoop(int fd, size_t want) {
  if (!buf_) buf_ = wc_->buffers.get();
  auto* r = new DiskRead{};
  r->alive = alive_;
  r->sender = this;
  r->wc = wc_;
  r->store = wc_->server->store;
  r->key = key_;
  r->meta = storedMeta_;
  r->pin = pin_;
  r->fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  r->buf = std::exchange(buf_, nullptr);
  r->off = cursor_;
  r->len = want;
  r->req.data = r;
  wc_->counters.add(wc_->counters.disk_reads_off_loop);
  writing_ = true;  // nothing else moves until the read is back
  auto work = [](uv_work_t* q) {
    auto* d = static_cast<DiskRead*>(q->data);
    if (d->fd < 0) {
      d->n = -1;
      d->err = EMFILE;
      return;
    }
    if (auto v = d->store->ensureVerified(d->key, *d->meta, d->fd, d->off, d->len); !v) {
      d->n = -1;
      d->err = v.error().sys ? v.error().sys : EIO;
      d->why = v.error().message();
      return;
    }
    do d->n = ::pread(d->fd, d->buf, d->len, static_cast<off_t>(d->off));
    while (d->n < 0 && errno == EINTR);
    if (d->n < 0) d->err = errno;
  };
  auto after = [](uv_work_t* q, int) {
    auto* d = static_cast<DiskRead*>(q->data);
    if (d->fd >= 0) ::close(d->fd);
    if (auto a = d->alive.lock(); a && *a) d->sender->diskReadDone(d);
    else d->wc->buffers.put(d->buf);
    delete d;
  };
  if (uv_queue_work(wc_->worker->loop(), &r->req, work, after) != 0) {
    work(&r->req);  // the pool refused (shutting down): read here
    after(&r->req, 0);
  }
}

void BodySender::diskReadDone(DiskRead* r) {
  writing_ = false;
  if (buf_ || finished_ || !conn_) {
    wc_->buffers.put(r->buf);
  } else {
    buf_ = r->buf;
    ready_ = r->n > 0 ? static_cast<size_t>(r->n) : 0;
  }
  if (finished_ || !conn_) return;
  if (r->n <= 0) {
    if (!r->why.empty())
      OLOG_RATE(log::Level::Warn, "hit on %s cut at %llu: %s", key_.text.c_str(),
                static_cast<unsigned long long>(r->off), r->why.c_str());
    else
      OLOG_RATE(log::Level::Warn, "read of %s failed at %llu: %s", key_.text.c_str(),
                static_cast<unsigned long long>(r->off), r->n < 0 ? std::strerror(r->err) : "short file");
    finish(false);
    return;
  }
  pump();
}

bool BodySender::armWritable(size_t pending) {
  writing_ = true;
  if (conn_->waitWritable(pending) == 0) return false;  // bodyWritten() continues
  writing_ = false;
  return false;  // closing
}

void BodySender::flushHead() {
  if (headOut_.empty() || !conn_) return;
  conn_->write(std::move(headOut_));
  headOut_.clear();
}

void BodySender::bodyWritten(int status) {
  writing_ = false;
  burst_ = 0;
  headInFlight_.clear();
  if (status != 0) {
    finish(false);
    return;
  }
  pump();
}

}  // namespace orchard::server
