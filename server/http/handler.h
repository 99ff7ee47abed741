// RequestHandler and ResponseWriter: the seam between a connection and
// whatever answers one request on it.
//
// The connection (ClientConn) parses a request head, asks dispatch()
// (server/routes.h) for the handler that owns it, and from then on:
//   - calls start() once, then onRequestBody() for each piece of the body
//     as it is parsed and onRequestComplete() at its end (bodies stream:
//     a handler that cannot take more calls pauseReading() and
//     resumeReading() later, so a 15 GB upload never sits in memory);
//   - calls onBodyWritten() when a writeBody() that was queued completes;
//   - calls onConnClosed() if the connection goes before the handler ended
//     its response; after that the writer must not be used.
// The handler answers through the ResponseWriter: write() for bytes the
// connection keeps (heads, small bodies), writeBody() for the handler's own
// buffers with backpressure, then endResponse() exactly once. After
// endResponse() or onConnClosed() the connection deletes the handler from a
// fresh stack (never inside one of its own callbacks).
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/metrics.h"

struct sockaddr;

namespace orchard::server {

struct WorkerContext;
class Stream;

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual WorkerContext* wc() = 0;
  virtual const struct sockaddr* peer() const = 0;
  // Whether the request arrived over TLS (an HTTPS listener): a bearer
  // token from another host is taken only then (server/routes.h).
  virtual bool secure() const { return false; }

  // Queues bytes the connection owns until written.
  virtual void write(std::string data) = 0;
  // Writes the handler's buffers. Returns 1 when everything went out at
  // once, 0 when the rest is queued and onBodyWritten() follows (not if the
  // connection closed first), -1 when the connection is closing.
  // With `accepted`: at most maxQueued bytes beyond what the socket took at
  // once are queued, as a copy; *accepted says how many of the buffers'
  // bytes were taken (sent or queued): the caller resends the rest later and
  // its buffers are free as soon as this returns.
  virtual int writeBody(uv_buf_t* bufs, unsigned n, size_t maxQueued = 0, size_t* accepted = nullptr) = 0;
  virtual size_t queuedBytes() const = 0;
  // Kernel path for file bytes (see Stream::sendFile): up to `len` bytes of
  // `fd` from `offset`, only while queuedBytes() == 0. Returns the bytes
  // taken (> 0), 0 when the socket is full (then waitWritable()), UV_ENOSYS
  // or UV_EINVAL when there is no kernel path (copy the bytes instead),
  // UV_EOF when the file ends first; any other negative code: the
  // connection is closing (onConnClosed() has run).
  virtual long sendFile(int fd, uint64_t offset, size_t len) {
    (void)fd, (void)offset, (void)len;
    return UV_ENOSYS;
  }
  // After sendFile() returned 0 (or to yield the loop): onBodyWritten()
  // follows once the socket takes more; `pending` bytes count as queued
  // until then (send timeout). 0, or -1 when the connection is closing.
  virtual int waitWritable(size_t pending) {
    (void)pending;
    return -1;
  }
  // The response ended. clean: its framing is complete, the connection may
  // be reused; otherwise it is closed so the client sees a broken message.
  virtual void endResponse(bool clean) = 0;
  // Stop and restart reading the request body (backpressure).
  virtual void pauseReading() = 0;
  virtual void resumeReading() = 0;
  // The response cannot be followed by another on this connection
  // (close-delimited body, HTTP/1.0 without keep-alive).
  virtual void disableKeepAlive() = 0;
  // Hands the connection's stream over and stops being an HTTP connection
  // (a CONNECT tunnel, once its 200 is written): the connection stops
  // reading, moves the bytes it read past the request into *leftover (the
  // new owner's, to be passed on before anything read later), ends the
  // response and frees itself later without closing the stream, which the
  // caller now owns (it closes it: server/net/stream.h). The handler is
  // deleted from a fresh stack as after endResponse(); the writer must not
  // be used again. Only after the request ended and while nothing is
  // queued (queuedBytes() == 0); otherwise, or when the connection is
  // closing or cannot hand its stream over, returns null and changes
  // nothing.
  virtual Stream* detachStream(std::string* leftover) {
    (void)leftover;
    return nullptr;
  }
  // What the request became (/metrics, the access log), told before the
  // response ends or when the connection goes (onConnClosed()); the last
  // call wins. `detail`: a short note for the access log (the Cache-Status
  // sent), copied only while the log is on. A handler that never calls it
  // counts as Local (the box's own routes).
  virtual void noteOutcome(RequestResult result, std::string_view detail = {}) {
    (void)result, (void)detail;
  }
  // How the request reached the box (dispatch(), from its route).
  virtual void noteForm(RequestForm form) { (void)form; }
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void start() = 0;
  virtual void onRequestBody(const char* data, size_t n) = 0;
  virtual void onRequestComplete() = 0;
  virtual void onBodyWritten(int status) = 0;
  virtual void onConnClosed() = 0;
};

}  // namespace orchard::server
