// TlsStream: the Stream (stream.h) as TLS over an inner Stream, OpenSSL
// driven through two memory BIOs, so the socket stays libuv's and nothing
// ever blocks: ciphertext read by the inner stream is written into the read
// BIO, SSL_read() gives the plaintext delivered to the reader, SSL_write()
// leaves ciphertext in the write BIO, which goes out by the inner stream's
// tryWrite() / writeOwned().
//
// Both ends: server (a client connection on a `[tls] listen` address) and
// client (an HTTPS origin: SNI, certificate and host name verified by the
// SSL_CTX and SSL the caller made, see tls_context.h).
//
// Handshake. It runs as soon as the stream is made (a client sends its
// ClientHello at once), whatever the reader does: the inner stream is read
// until the handshake is done. Writes made before then are kept (owned
// copies) and encrypted when it completes, in order. A handshake that fails
// breaks the stream: the reader (if any, or the next one) gets
// onStreamError(UV_EPROTO) and failure() says why ("certificate verify
// failed: unable to get local issuer certificate").
//
// Reads. After the handshake, the inner stream is read only while the
// reader reads: stopReading() stops it, and ciphertext already read stays
// in the BIO (one inner read at most, 64 KiB), decrypted and delivered from
// a posted task when reading starts again, never inside startReading().
// The peer's close_notify is onStreamEnd(); an inner end of stream without
// it is one too (HTTP/1.1 frames its own bodies; a truncation shows there).
//
// Writes keep their order. tryWrite() is the small-answer path: when
// nothing is queued it encrypts everything, hands the ciphertext to the
// inner tryWrite() and queues what the socket did not take itself (the
// plaintext is consumed once encrypted, so it counts as taken); queued
// bytes show in queuedBytes(). write() / writeOwned() encrypt at once and
// complete when the inner write of their ciphertext does. sendFile() has no
// path (UV_ENOSYS: the caller copies; kernel TLS is not used, see
// tls_context.h). shutdown() sends close_notify, then shuts the inner
// stream. close() closes the inner stream (and the task handle) and
// notifies once both have closed.
//
// Errors: every OpenSSL error queue entry left by a failed call is drained
// and counted (tls::counters(), tls_context.h); a stream never leaves one
// behind for the next connection on the thread.
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <deque>
#include <string>

#include "server/net/stream.h"

namespace orchard::server {

class TlsStream final : public Stream, private StreamReader {
 public:
  // Takes `inner` and `ssl` (the caller must not use either again; close()
  // closes and frees both). `ssl` has its role (SSL_set_accept_state or
  // SSL_set_connect_state), SNI and host check set by the caller.
  static TlsStream* create(uv_loop_t* loop, Stream* inner, SSL* ssl);

  int startReading(StreamReader* reader) override;
  void stopReading() override;
  int tryWrite(const uv_buf_t* bufs, unsigned n) override;
  int write(const uv_buf_t* bufs, unsigned n, Completion done) override;
  int writeOwned(std::string data, Completion done) override;
  size_t queuedBytes() const override;
  int shutdown(Completion done) override;
  void close(Completion closed) override;
  int peerAddress(struct sockaddr_storage* out) const override;

  bool handshakeDone() const { return handshakeDone_; }
  // Why the stream broke ("" while it has not): the handshake's or the
  // record layer's error, with the verification result for a certificate
  // that was refused.
  const std::string& failure() const { return failure_; }
  // The certificate was refused (an origin's: untrusted, expired, wrong name).
  bool verifyFailed() const { return verifyFailed_; }
  // Negotiated protocol version ("TLSv1.3") and whether the session was resumed.
  const char* version() const { return SSL_get_version(ssl_); }
  bool resumed() const { return SSL_session_reused(ssl_) == 1; }
  SSL* ssl() { return ssl_; }

 private:
  TlsStream(uv_loop_t* loop, Stream* inner, SSL* ssl);
  ~TlsStream() override;

  // ---- StreamReader (the inner stream) ----
  void onStreamData(const char* data, size_t n) override;
  void onStreamEnd() override;
  void onStreamError(int status) override;

  // Runs the handshake and then decrypts, delivering while the reader reads.
  void pump();
  bool advanceHandshake();
  void deliver();
  // Fails the stream: records why, tells the reader (now or when it starts).
  void fail(const char* what, int sslError);
  void notifyBroken();
  // Sends what the write BIO holds with the inner stream, in order; `done`
  // (if any) completes when those bytes are written. 0 or a libuv code.
  int flush(Completion done, bool tryFirst);
  int encrypt(const char* data, size_t n);
  // Encrypts the buffers (one record when they are small), *total their size.
  int encryptAll(const uv_buf_t* bufs, unsigned n, size_t* total);
  void flushPendingWrites();
  void updateInnerReading();
  void scheduleDeliver();
  void onInnerClosed(int status);
  static void onTask(uv_idle_t* h);
  static void onTaskClosed(uv_handle_t* h);

  struct Pending {
    std::string data;
    Completion done;
    bool shutdown = false;  // a shutdown() queued behind the handshake
  };

  uv_idle_t task_;  // posted delivery (started only while it has work)
  Stream* inner_;
  SSL* ssl_;
  BIO* rbio_;  // ciphertext in (owned by ssl_)
  BIO* wbio_;  // ciphertext out (owned by ssl_): appends to out_
  std::string out_;  // ciphertext not yet handed to the inner stream
  StreamReader* reader_ = nullptr;
  Completion closed_;
  std::deque<Pending> pending_;  // writes (and a shutdown) made before the handshake ended
  std::string failure_;
  int brokenStatus_ = 0;   // the libuv code the reader gets (UV_EPROTO, or the inner's)
  int open_ = 2;           // the inner stream and the task handle, until closed
  bool handshakeDone_ = false;
  bool verifyFailed_ = false;
  bool innerReading_ = false;
  bool innerEnded_ = false;   // the inner stream ended (no more ciphertext)
  bool peerClosed_ = false;   // close_notify or inner end delivered as onStreamEnd()
  bool endPending_ = false;   // an end to deliver once the reader reads
  bool closing_ = false;
  bool shutdownSent_ = false;
  bool taskActive_ = false;
  bool inPump_ = false;
};

}  // namespace orchard::server
