// BodySender: the body loop; see body_sender.h. The hard parts are the
// end of a whole object (its last bytes go out only once the fill is
// complete, so a client holding the whole body and asking again gets a hit)
// and bounded writes under buffer pressure (bytes a connection did not take
// are read again later; a chunked answer, whose chunk size is already
// written, reads 16 KiB at a time instead).
#include "server/http/body_sender.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "server/context.h"

namespace orchard::server {

BodySender::~BodySender() {
  *alive_ = false;
  releaseBuffer();
  closeFile();
}

void BodySender::releaseBuffer() {
  if (buf_) wc_->buffers.put(buf_);
  buf_ = nullptr;
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
    if (avail > 0 && !fill_ && kernelPath_ && headOut_.empty() && !chunkedOut_ && avail > BufferPool::kSize &&
        conn_->queuedBytes() == 0) {
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
