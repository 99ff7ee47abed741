// Upstream HTTP/1.1 client: one exchange (request, response) at a time on a
// pooled keep-alive connection per origin (a TcpStream, or a TlsStream over
// one for https: the pool keys them apart, and a new TLS connection resumes
// the origin's last session), responses parsed by the HTTP/1 codec
// (server/http/codec.h). A TLS failure is an Errc::Protocol error whose
// context names it ("upstream: TLS certificate verify failed: hostname
// mismatch"); there is no way to skip verification.
//
// Ownership: UpstreamPool (one per worker loop) owns its connections. An
// exchange started with UpstreamPool::start() reports to its UpstreamSink on
// the worker's loop thread until exactly one of onUpstreamComplete() or
// onUpstreamError() has been called, or until the sink calls cancel(); after
// that the sink is never called again. Callbacks are never made from inside
// start() (STYLE rule 5).
//
// Origins are resolved by resolveOrigin() (origin_resolve.h): upstream.resolve,
// else DNS with the private-address rule; a refused address fails the
// exchange (Errc::Invalid, the refusal as its context) before any connect.
//
// Connection states:  Resolving -> Connecting -> Active -> Idle -> Active ...
//                                                   \-> Closed (error, close-delimited, cancel)
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "config/net.h"
#include "server/http/message.h"
#include "server/net/loop.h"

namespace orchard::server::tls {
class ClientContext;
}

namespace orchard::server {

class UpstreamSink {
 public:
  virtual ~UpstreamSink() = default;
  virtual void onUpstreamHead(ResponseHead&& head) = 0;
  // An interim (1xx) answer before the final head (RFC 9110 §15.2).
  virtual void onUpstreamInterim(const ResponseHead& /*interim*/) {}
  virtual void onUpstreamBody(const char* data, size_t n) = 0;
  virtual void onUpstreamComplete() = 0;
  // afterHead: the head was already delivered (the body broke).
  virtual void onUpstreamError(Error error, bool afterHead) = 0;
  // The request body queue fell below the high-water mark again.
  virtual void onUpstreamWritable() {}
  // Reading has been paused (pauseReading()) for kPausedStallMs, and again
  // every kPausedStallMs while it stays paused.
  virtual void onUpstreamStalled() {}
};

struct UpstreamOptions {
  // host -> "addr:port" to dial instead of DNS (upstream.resolve)
  std::map<std::string, std::pair<std::string, uint16_t>> resolve;
  // Non-public ranges DNS answers may still be dialled in
  // (upstream.allow_private; see origin_resolve.h).
  std::vector<config::Cidr> allowPrivate;
  // catalog.follow's hub (host and port as written there): the admin named
  // it, so like a parent it is dialled wherever its name resolves, on that
  // port only (another port of the same host is checked as any origin is).
  std::string namedHost;
  uint16_t namedPort = 0;
  int64_t connectTimeoutMs = 10'000;
  int64_t readTimeoutMs = 60'000;
  size_t maxIdlePerOrigin = 32;
  // HTTPS origins: the system CAs plus upstream.ca_file (tls_context.h).
  // Null: an https exchange fails ("no TLS client context").
  std::shared_ptr<tls::ClientContext> tls;
  bool operator==(const UpstreamOptions&) const = default;
};

class UpstreamConn;
class UpstreamPool;
struct Counters;
enum class OriginErrorKind : uint8_t;

// Which kind of failure an exchange's error is (the kind label of
// orchard_origin_errors_by_kind_total): from its code and the static
// context this file gives it. Pure.
OriginErrorKind classifyOriginError(const Error& e) noexcept;

// Handle to one exchange in flight. Valid until the sink got its final
// callback or called cancel().
class UpstreamExchange {
 public:
  // Streams request body bytes (the head said Content-Length or chunked;
  // chunk framing is added here when `chunked`).
  void writeBody(const char* data, size_t n);
  void endBody();
  // Bytes queued to the socket but not yet written; above kHighWater the
  // caller should stop reading its source until onUpstreamWritable().
  size_t queuedBytes() const;
  static constexpr size_t kHighWater = 1 << 20;
  // Stops (and restarts) reading the response: the sink cannot take more
  // now. Bytes already read may still be delivered before the pause takes
  // hold (the rest of the current read, at most 64 KiB). The read timeout
  // does not run while paused.
  void pauseReading();
  void resumeReading();
  static constexpr int64_t kPausedStallMs = 5000;
  // Stops the exchange; the connection is closed, never reused.
  void cancel();

 private:
  friend class UpstreamConn;
  friend class UpstreamPool;
  UpstreamExchange(UpstreamPool* pool, UpstreamSink* sink) : pool_(pool), sink_(sink) {}
  UpstreamPool* pool_;
  UpstreamSink* sink_;            // null once the final callback was made or cancel()
  UpstreamConn* conn_ = nullptr;  // changes when a stale pooled connection is retried
};

struct UpstreamRequest {
  std::string host;          // origin host (for resolve and the pool key)
  uint16_t port = 80;
  bool tls = false;          // https: TLS with the certificate verified for `host` (SNI too)
  std::string head;          // serialised request line + headers + CRLF
  bool headMethod = false;   // response has no body
  bool bodyChunked = false;  // writeBody() frames chunks
  bool hasBody = false;      // writeBody()/endBody() will follow
  bool retryable = true;     // idempotent and no body: may retry once on a stale pooled connection
  bool anyAddress = false;   // a parent or peer the admin named: dialled wherever its name resolves
};

class UpstreamPool {
 public:
  // `counters`: the loop's block (origin addresses refused are counted
  // there), or null.
  UpstreamPool(Worker* worker, UpstreamOptions options, Counters* counters = nullptr);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  UpstreamExchange* start(UpstreamRequest request, UpstreamSink* sink);
  // Closes idle connections and cancels active ones (shutdown).
  void closeAll();
  // New options (a config reload), loop thread only. Exchanges started
  // afterwards use them; idle connections, dialled under the old ones (an
  // old upstream.resolve target), are closed. Exchanges in flight keep
  // their connection; their next read wait uses the new read timeout.
  void setOptions(UpstreamOptions options);
  const UpstreamOptions& options() const { return options_; }


 private:
  friend class UpstreamConn;
  friend class UpstreamExchange;
  void release(UpstreamConn* c);  // exchange ended cleanly with keep-alive
  void forget(UpstreamConn* c);   // connection closing

  Worker* const worker_;
  Counters* const counters_;
  UpstreamOptions options_;  // replaced by setOptions() only
  std::unordered_map<std::string, std::vector<UpstreamConn*>> idle_;
  std::vector<UpstreamConn*> all_;
};

}  // namespace orchard::server
