// TcpStream: Stream over a uv_tcp_t. The hard parts are the lifetimes: the
// handle and the connect and shutdown requests live inside the object, each
// queued write owns a small record (its uv_write_t, its completion and, for
// writeOwned(), its bytes) freed in its callback, and the object is freed in
// the handle's close callback, which libuv runs only after every pending
// request has called back (with UV_ECANCELED if need be), so a completion
// never finds its stream gone. Reads share one per-thread buffer: the data
// handed to onStreamData() is valid only during that call.
#include "server/net/tcp_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <utility>

namespace orchard::server {
namespace {

constexpr size_t kReadBuf = 64 * 1024;
thread_local char tReadBuf[kReadBuf];

struct TcpWrite {
  uv_write_t req;
  Completion done;
  std::string data;  // writeOwned(): the bytes, kept until written
};

TcpStream::FilePath gFilePath = TcpStream::kDefaultFilePath;

}  // namespace

struct TcpStream::WritablePoll {
  uv_poll_t poll;
  int fd;  // the dup of the socket, closed with the poll
};

void TcpStream::setFilePath(FilePath p) { gFilePath = p; }
TcpStream::FilePath TcpStream::filePath() { return gFilePath; }

bool TcpStream::parseFilePath(const char* s, FilePath* out) {
  static constexpr struct {
    const char* name;
    FilePath path;
  } kNames[] = {{"sendfile", FilePath::Sendfile}, {"splice", FilePath::Splice}, {"copy", FilePath::Copy},
                {"einval", FilePath::Einval}};
  for (const auto& n : kNames)
    if (std::strcmp(s, n.name) == 0) {
      *out = n.path;
      return true;
    }
  return false;
}

TcpStream::TcpStream(uv_loop_t* loop) {
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
}

TcpStream* TcpStream::create(uv_loop_t* loop) { return new TcpStream(loop); }

int TcpStream::accept(uv_stream_t* listener) { return uv_accept(listener, stream()); }

int TcpStream::connect(const struct sockaddr* addr, Completion done) {
  connectDone_ = done;
  connect_.data = this;
  return uv_tcp_connect(&connect_, &tcp_, addr, [](uv_connect_t* c, int status) {
    auto* self = static_cast<TcpStream*>(c->data);
    Completion d = std::exchange(self->connectDone_, Completion{});
    d(status);
  });
}

int TcpStream::setNoDelay(bool on) { return uv_tcp_nodelay(&tcp_, on ? 1 : 0); }

int TcpStream::peerAddress(struct sockaddr_storage* out) const {
  std::memset(out, 0, sizeof *out);
  int len = sizeof *out;
  return uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(out), &len);
}

int TcpStream::startReading(StreamReader* reader) {
  if (closing_) return UV_ECANCELED;
  reader_ = reader;
  if (reading_) return 0;
  int rc = uv_read_start(
      stream(), [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = uv_buf_init(tReadBuf, kReadBuf); },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<TcpStream*>(s->data);
        if (nread > 0 && self->reader_) {
          self->reader_->onStreamData(buf->base, static_cast<size_t>(nread));
          return;
        }
        self->onRead(nread);
      });
  if (rc == UV_EALREADY) rc = 0;
  reading_ = rc == 0;
  return rc;
}

void TcpStream::onRead(ssize_t nread) {
  if (nread == 0 || !reader_) return;
  // End of stream or an error: nothing more will be read from this socket
  // (libuv stopped reading at EOF itself; after an error we do).
  StreamReader* r = reader_;
  uv_read_stop(stream());
  reading_ = false;
  if (nread == UV_EOF) r->onStreamEnd();
  else r->onStreamError(static_cast<int>(nread));
}

void TcpStream::stopReading() {
  if (!reading_) return;
  uv_read_stop(stream());
  reading_ = false;
}

int TcpStream::tryWrite(const uv_buf_t* bufs, unsigned n) {
  if (pipeBytes_ > 0) dropPipe();
  // uv_try_write refuses (UV_EAGAIN) while earlier writes are queued: order is kept.
  int w = uv_try_write(stream(), bufs, n);
  return w == UV_EAGAIN ? 0 : w;
}

int TcpStream::write(const uv_buf_t* bufs, unsigned n, Completion done) { return queue(bufs, n, done, nullptr); }

int TcpStream::writeOwned(std::string data, Completion done) {
  return queue(nullptr, 0, done, &data);
}

int TcpStream::queue(const uv_buf_t* bufs, unsigned n, Completion done, std::string* owned) {
  if (closing_) return UV_ECANCELED;
  if (pipeBytes_ > 0) dropPipe();
  auto* w = new TcpWrite;
  w->done = done;
  w->req.data = w;
  uv_buf_t one;
  if (owned) {
    w->data = std::move(*owned);
    one = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    bufs = &one;
    n = 1;
  }
  int rc = uv_write(&w->req, stream(), bufs, n, [](uv_write_t* r, int status) {
    auto* tw = static_cast<TcpWrite*>(r->data);
    Completion d = tw->done;
    delete tw;
    d(status);
  });
  if (rc != 0) delete w;
  return rc;
}

size_t TcpStream::queuedBytes() const {
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&tcp_)) + waitPending_;
}

long TcpStream::sendFile(int fd, uint64_t offset, size_t len) {
  if (closing_) return UV_ECANCELED;
  switch (gFilePath) {
    case FilePath::Copy: return UV_ENOSYS;
    case FilePath::Einval: return UV_EINVAL;
    default: break;
  }
  uv_os_fd_t sock;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &sock) != 0) return UV_EINVAL;
  if (gFilePath == FilePath::Splice) return spliceFile(sock, fd, offset, len);
  off_t off = static_cast<off_t>(offset);
  ssize_t n;
  do n = ::sendfile(sock, fd, &off, len);
  while (n < 0 && errno == EINTR);
  if (n > 0) return static_cast<long>(n);
  if (n == 0) return len == 0 ? 0 : UV_EOF;  // the file ends before offset + len
  if (errno == EAGAIN) return 0;
  return uv_translate_sys_error(errno);
}

long TcpStream::spliceFile(int sock, int fd, uint64_t offset, size_t len) {
  // The bytes in the pipe are only ever sent as the bytes they are: for the
  // same descriptor at the offset where they start. A caller that moved on
  // (copied some bytes itself, went to another range or answer) gets them
  // dropped, never sent in place of what it asked for.
  // The descriptor's file is checked too: a number closed and opened again
  // for another file is not the same descriptor.
  if (pipeBytes_ > 0 && (fd != pipeFd_ || offset != pipeOffset_ || fileId(fd) != pipeFile_)) dropPipe();
  if (pipe_[0] < 0) {
    if (::pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) != 0) return uv_translate_sys_error(errno);
    (void)::fcntl(pipe_[1], F_SETPIPE_SZ, 1 << 20);  // the default 64 KiB if refused
  }
  if (pipeBytes_ == 0) pipeFile_ = fileId(fd);
  if (pipeBytes_ < len) {
    loff_t o = static_cast<loff_t>(offset + pipeBytes_);
    ssize_t n;
    do n = ::splice(fd, &o, pipe_[1], nullptr, len - pipeBytes_, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    if (n > 0) pipeBytes_ += static_cast<size_t>(n);
    else if (n == 0 && pipeBytes_ == 0) return UV_EOF;
    else if (n < 0 && errno != EAGAIN) return uv_translate_sys_error(errno);
  }
  pipeFd_ = fd;
  pipeOffset_ = offset;
  ssize_t m;
  do m = ::splice(pipe_[0], nullptr, sock, nullptr, std::min(pipeBytes_, len), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  while (m < 0 && errno == EINTR);
  if (m < 0) return errno == EAGAIN ? 0 : uv_translate_sys_error(errno);
  pipeBytes_ -= static_cast<size_t>(m);
  pipeOffset_ += static_cast<uint64_t>(m);
  return static_cast<long>(m);
}

std::pair<uint64_t, uint64_t> TcpStream::fileId(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return {0, 0};
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

// A pipe cannot be emptied without reading it: closed, and made again by
// the next splice (rare: only when a caller leaves the kernel path with
// bytes in flight).
void TcpStream::dropPipe() {
  if (pipeBytes_ > 0) ++pipeDrops_;
  for (int& p : pipe_) {
    if (p >= 0) ::close(p);
    p = -1;
  }
  pipeBytes_ = 0;
  pipeFd_ = -1;
}

int TcpStream::waitWritable(size_t pending, Completion done) {
  if (closing_) return UV_ECANCELED;
  if (gFilePath == FilePath::Copy) return UV_ENOSYS;
  if (!wpoll_) {
    uv_os_fd_t sock;
    if (int rc = uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &sock); rc != 0) return rc;
    int d = ::fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (d < 0) return uv_translate_sys_error(errno);
    auto* w = new WritablePoll;
    w->fd = d;
    if (int rc = uv_poll_init_socket(tcp_.loop, &w->poll, d); rc != 0) {
      ::close(d);
      delete w;
      return rc;
    }
    w->poll.data = this;
    wpoll_ = w;
  }
  int rc = uv_poll_start(&wpoll_->poll, UV_WRITABLE, [](uv_poll_t* p, int status, int) {
    auto* self = static_cast<TcpStream*>(p->data);
    if (!self) return;
    uv_poll_stop(p);
    self->waitPending_ = 0;
    Completion d = std::exchange(self->writable_, Completion{});
    d(status < 0 ? status : 0);
  });
  if (rc != 0) return rc;
  writable_ = done;
  waitPending_ = pending;
  return 0;
}

int TcpStream::shutdown(Completion done) {
  if (closing_) return UV_ECANCELED;
  shutdownDone_ = done;
  shutdown_.data = this;
  return uv_shutdown(&shutdown_, stream(), [](uv_shutdown_t* r, int status) {
    auto* self = static_cast<TcpStream*>(r->data);
    Completion d = std::exchange(self->shutdownDone_, Completion{});
    d(status);
  });
}

void TcpStream::close(Completion closed) {
  if (closing_) return;
  closing_ = true;
  closed_ = closed;
  reader_ = nullptr;
  reading_ = false;
  if (wpoll_) {
    uv_poll_stop(&wpoll_->poll);
    wpoll_->poll.data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&wpoll_->poll), [](uv_handle_t* h) {
      auto* w = reinterpret_cast<WritablePoll*>(h);
      ::close(w->fd);
      delete w;
    });
    wpoll_ = nullptr;
  }
  dropPipe();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* h) {
    // Every request of this handle has called back by now; a wait for the
    // socket to drain completes as cancelled, before the close notification.
    auto* self = static_cast<TcpStream*>(h->data);
    self->waitPending_ = 0;
    Completion w = std::exchange(self->writable_, Completion{});
    w(UV_ECANCELED);
    Completion c = self->closed_;
    delete self;
    c(0);
  });
}

}  // namespace orchard::server
