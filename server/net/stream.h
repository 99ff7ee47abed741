// Stream: one ordered byte stream to a peer, the one socket layer the HTTP
// code (ClientConn, UpstreamConn) speaks through. TCP now (tcp_stream.h);
// TLS over memory BIOs later, as a Stream that wraps a Stream.
//
// Contract. Every call and every callback happens on the owning loop's
// thread; nothing calls back from inside the call that started it (STYLE
// rule 5).
//   - Reads: startReading(reader) delivers onStreamData() for each piece
//     that arrives (the bytes are valid only during the call: copy what you
//     keep; one call per read, never per byte), then at most one of
//     onStreamEnd() (the peer finished sending) or onStreamError(status) (a
//     negative libuv code: the stream broke), after which no read callback
//     comes. After stopReading() returns, nothing is delivered until the
//     next startReading(). Starting twice is harmless. A stream may deliver
//     bytes it did not read from a socket just then (TLS: records decrypted
//     from an earlier read) and may read from its socket without delivering
//     anything (a handshake record).
//   - Writes keep their order. tryWrite() hands the transport what it takes
//     now, without queueing anything, and returns that many bytes: 0 while
//     earlier writes are queued (order), when the socket is full, or when
//     the stream has no fast path. This is the small-hit path: most answers
//     fit in the socket buffer and cost no allocation and no callback.
//     write() / writeOwned() queue the rest with a Completion. Each queued
//     write completes exactly once and never inside the call: status 0 when
//     its bytes were handed to the transport, a negative libuv code
//     otherwise (UV_ECANCELED when the stream was closed first). A write
//     that returns an error was not queued and never completes.
//   - shutdown() sends the end of stream after the queued writes (once per
//     stream); its completion follows the same rules.
//   - close() ends everything: pending writes, a pending shutdown or connect
//     complete with UV_ECANCELED, then the close notification runs, then
//     the stream frees itself (the close callback owns the memory). Every
//     completion runs before the close notification, so an owner that lives
//     until that notification never sees a late callback. The owner closes
//     each stream it holds exactly once and forgets it in the notification.
//
// TLS later (a TlsStream over an inner Stream and an OpenSSL BIO pair):
// startReading() reads the inner stream, feeds the ciphertext into the BIO
// and delivers what SSL_read gives (nothing, one record or several; bytes
// already decrypted are delivered from a posted task, never inside
// startReading()); write() encrypts into the BIO, writes the ciphertext with
// the inner stream's writeOwned() and completes when that write does;
// tryWrite() may return 0 (no fast path) or encrypt and try the inner
// stream's tryWrite(); shutdown() sends close_notify then shuts the inner
// stream; close() closes the inner stream and notifies when it has closed.
//
// CONNECT tunnel (two streams spliced, backpressure both ways; built in
// server/net/splice.h): for each direction A->B, A's onStreamData() tries
// B.tryWrite() and queues the rest with B.writeOwned(); while B has bytes
// queued, A's reads are stopped and B's write completion restarts them, so
// neither side buffers more than one read. A's onStreamEnd() becomes
// B.shutdown(); the tunnel ends when both directions ended, or at once (both
// streams closed) when either broke. Over TLS the same holds: the streams
// spliced are the TlsStreams.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace orchard::server {

// A one-shot callback with a status (0 or a negative libuv code), as a plain
// function pointer and context: no allocation, no std::function.
struct Completion {
  using Fn = void (*)(void* ctx, int status);
  Fn fn = nullptr;
  void* ctx = nullptr;
  void operator()(int status) const {
    if (fn) fn(ctx, status);
  }
  // Completion::to<&T::method>(obj) calls obj->method(status).
  template <auto Method, typename T>
  static Completion to(T* obj) {
    return Completion{[](void* c, int status) { (static_cast<T*>(c)->*Method)(status); }, obj};
  }
};

class StreamReader {
 public:
  virtual void onStreamData(const char* data, size_t n) = 0;
  virtual void onStreamEnd() = 0;
  virtual void onStreamError(int status) = 0;

 protected:
  ~StreamReader() = default;
};

class Stream {
 public:
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // 0, or a negative libuv code (then nothing will be read).
  virtual int startReading(StreamReader* reader) = 0;
  virtual void stopReading() = 0;
  // Not virtual: asked on every request before starting to read.
  bool reading() const { return reading_; }

  // Bytes taken now (0 up to the total), or a negative libuv code when the
  // stream is broken. Never queues.
  virtual int tryWrite(const uv_buf_t* bufs, unsigned n) = 0;
  // Queues the buffers; the array is copied, the bytes it points to stay the
  // caller's and must stay valid until `done` runs.
  virtual int write(const uv_buf_t* bufs, unsigned n, Completion done) = 0;
  // Queues bytes the stream keeps until they are written.
  virtual int writeOwned(std::string data, Completion done) = 0;
  // Bytes queued and not yet handed to the transport (with the bytes a
  // waitWritable() waits to send, so a send timeout runs while it waits).
  virtual size_t queuedBytes() const = 0;

  // Kernel path for file bytes (large hits). sendFile() hands the transport
  // up to `len` bytes of `fd` from `offset` without copying them through
  // user space, never queueing, and returns how many it took (0 when the
  // socket is full), or a negative libuv code: UV_ENOSYS when this stream
  // has no such path (TLS: the caller uses its copy path), UV_EINVAL when
  // this file or socket cannot (the caller falls back to the copy path for
  // the rest of the body), another one when the stream broke. Call it only
  // while nothing is queued (queuedBytes() == 0). The bytes are read at the
  // call, from the page cache or, if they are not cached, from the disk.
  virtual long sendFile(int fd, uint64_t offset, size_t len) {
    (void)fd, (void)offset, (void)len;
    return UV_ENOSYS;
  }
  // One shot: `done` runs (0) once the socket can take more bytes, or with
  // UV_ECANCELED when the stream is closed first; never inside this call.
  // `pending`: the bytes the caller waits to send, counted in
  // queuedBytes() until then. One wait at a time, only while nothing is
  // queued; UV_ENOSYS where sendFile() has no path.
  virtual int waitWritable(size_t pending, Completion done) {
    (void)pending, (void)done;
    return UV_ENOSYS;
  }

  virtual int shutdown(Completion done) = 0;
  virtual void close(Completion closed) = 0;

  // The peer's address (0), or a negative libuv code.
  virtual int peerAddress(struct sockaddr_storage* out) const = 0;

 protected:
  virtual ~Stream() = default;  // only close() frees a stream
  bool reading_ = false;  // kept by the implementation: startReading() .. stopReading(), end or error
};

}  // namespace orchard::server
