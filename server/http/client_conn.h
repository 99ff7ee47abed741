// ClientConn: one accepted client connection: reads requests from its
// Stream (server/net/stream.h), parses them with the HTTP/1 codec
// (server/http/codec.h), hands each to the RequestHandler dispatch() picks
// (one at a time, pipelined requests answered in order), and is that
// handler's ResponseWriter (server/http/handler.h). Each routed request is
// recorded once, when its response ends (or the connection goes, or the
// stream leaves for a tunnel): its result and form, time to first byte and
// duration in the loop's counters (server/metrics.h), and its access log
// line (server/http/access_log.h) while server.access_log is on.
//
// States:  Idle (waiting for a request: the head timer from connect,
//             server.header_timeout, then the idle timer between requests)
//          -> Reading (head/body of a request being parsed; a later
//             request's first byte swaps the idle timer for the head timer;
//             the head timer firing answers 408 and closes, the idle timer
//             closes quietly)
//          -> Responding (request complete, parser paused, socket reads
//             stopped until the response ends)
//          -> Idle (keep-alive) | Closing (error, Connection: close, drain)
//          Responding -> Closing by detachStream() (CONNECT): the stream
//             goes to the tunnel, the connection frees itself once its
//             timer has closed and never touches the stream again
//
// Memory: the ClientConn embeds its timer and holds its stream; it is freed
// when both have closed (the timer's close callback and the stream's close
// notification; posted tasks and queued body writes hold references too).
// Reads go into the stream's per-loop buffer; only unparsed pipelined bytes
// are copied into the connection.
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "server/context.h"
#include "server/http/handler.h"
#include "server/http/codec.h"
#include "server/http/message.h"
#include "server/net/stream.h"

namespace orchard::server {

class ClientConn final : public ResponseWriter, private StreamReader, private Http1Codec::Sink {
 public:
  // Accepts one pending connection from `listener` (a libuv server stream).
  // `tls`: a tls.listen address (the stream is a TlsStream with the
  // snapshot's certificate).
  static void accept(WorkerContext* wc, uv_stream_t* listener, bool tls);

  // ---- ResponseWriter (see handler.h) ----
  WorkerContext* wc() override { return wc_; }
  const struct sockaddr* peer() const override { return reinterpret_cast<const sockaddr*>(&peer_); }
  bool secure() const override { return secure_; }
  void write(std::string data) override;
  int writeBody(uv_buf_t* bufs, unsigned n, size_t maxQueued = 0, size_t* accepted = nullptr) override;
  size_t queuedBytes() const override;
  long sendFile(int fd, uint64_t offset, size_t len) override;
  int waitWritable(size_t pending) override;
  void endResponse(bool clean) override;
  void pauseReading() override;
  void resumeReading() override;
  // Closes now (drain timeout, fatal errors).
  void close();
  bool closing() const { return state_ == State::Closing; }
  void drain();  // server is stopping: close when idle or after this response
  void disableKeepAlive() override { reqKeepAlive_ = false; }
  Stream* detachStream(std::string* leftover) override;
  void noteOutcome(RequestResult result, std::string_view detail) override;
  void noteForm(RequestForm form) override { form_ = form; }

  static void onCloseHandle(uv_handle_t* h);
  // (Re)starts the send timeout while writes are queued; stops it when none is.
  void armSend();
  void trimSoon();  // after a send timeout: give freed heap back (malloc_trim), once per burst

 private:
  enum class State : uint8_t { Idle, Reading, Responding, Closing };
  ClientConn(WorkerContext* wc, Stream* stream);
  ~ClientConn() override;
  void startReading();
  void stopReading();
  void parse(const char* data, size_t n);
  void resumeParsing();
  void finishResponse();
  void closeHandles();
  void failRequest(int status, std::string_view why, std::string_view extra = {});
  void armIdle();
  // server.header_timeout: a head must be whole this long after it may
  // start (connect, or the first byte of a later request); 408 and close.
  void armHead();
  void unref();
  // Completions (server/net/stream.h).
  void onWritten(int status);
  void onBodyWriteDone(int status);
  void onShutdown(int status);
  void onStreamClosed(int status);
  // The request being answered, for /metrics and the access log: bytes
  // going out (the first one is the time to first byte; a status line is
  // read for its status), then one record when the response ends, the
  // connection goes or the stream leaves for a tunnel.
  void noteOut(const char* start, size_t startLen);
  void recordRequest(bool tunnel);

  // ---- StreamReader ----
  void onStreamData(const char* data, size_t n) override;
  void onStreamEnd() override;
  void onStreamError(int status) override;
  // ---- Http1Codec::Sink ----
  void onMessageBegin() override;
  Http1Codec::Next onHead() override;
  bool onBody(const char* at, size_t n) override;
  bool onMessageEnd() override;

  WorkerContext* wc_;
  Stream* stream_;  // null once its close notification ran
  uv_timer_t timer_;
  int refs_ = 0;  // open handles + posted tasks; freed at 0
  State state_ = State::Idle;
  struct sockaddr_storage peer_;
  bool readingPaused_ = false;  // backpressure from the upstream
  bool handlesClosed_ = false;
  bool reqKeepAlive_ = true;
  bool reqHasBody_ = false;
  bool peerEof_ = false;  // the client half-closed: no more requests
  bool secure_ = false;   // the stream is TLS (set by the HTTPS listener's accept)
  bool peerCounted_ = false;  // counted in ServerContext::peers (removed when freed)
  bool idleTimer_ = false;    // the timer is the keep-alive idle one (a new head re-arms it as armHead)

  Http1Codec codec_;
  std::string pending_;  // pipelined bytes not parsed yet
  RequestHandler* txn_ = nullptr;  // the handler of the request being answered
  bool requestDone_ = false;   // on_message_complete seen for txn_
  bool responseDone_ = false;  // txn_ ended its response

  // The routed request not recorded yet (recordRequest()).
  struct LogFields {
    std::shared_ptr<AccessLogSink> sink;  // the access log as the request started; null: off
    std::string method, target, host, detail;  // target masked; reused across requests (no allocation)
  };
  bool reqOpen_ = false;
  RequestResult result_ = RequestResult::Local;
  RequestForm form_ = RequestForm::Local;
  int respStatus_ = 0;        // from the status line written (0: none yet; 1xx until the final one)
  uint64_t reqStartNs_ = 0;   // head parsed
  uint64_t firstByteNs_ = 0;  // first response byte handed to the stream (0: none yet)
  uint64_t respBytes_ = 0;    // head and body bytes handed to the stream
  std::unique_ptr<LogFields> log_;  // made the first time the log is on for this connection
};

}  // namespace orchard::server
