// FillDriver: runs the origin exchanges of one fetcher of a cache::Fill and
// writes what they bring into it. It owns itself and lives on the worker
// loop that started it, independent of the client that caused it: when that
// client leaves, a shared fill keeps going for the others and completes into
// the store. A private fill, or a shared one whose answer turned out
// uncacheable, is cancelled once no reader is left.
//
// One driver fetches one run at a time: the first run of a fill (a plain GET
// from byte 0, or `Range: bytes=N-` when the first reader wants bytes far
// in), then whatever run fetcherDone() hands it next, so the rest of the
// object keeps filling behind the readers. Runs on a fill that already has
// its head are range requests validated with If-Range; a 200 with other
// validators means the object changed at the origin (the fill fails and its
// blocks are dropped). A revalidation fill sends If-None-Match /
// If-Modified-Since first: a 304 refreshes the stored object.
//
// Blocking disk work (checkpoint fdatasync + record, the final commit) runs
// on the libuv thread pool.
//
// Parents and peers (upstream.parents, upstream.peers; cache_nodes.h): an
// exchange of a GET or HEAD goes to the first usable node of the fill's
// plan, in Apple's content-cache form (`/path?source=host[:port]`, Host:
// the node), so the parent fills the object once for all its children and
// a child's range run is the parent's range-on-miss. A node that cannot be
// reached, times out or answers 5xx (but 508: a loop is an answer, passed
// on) is marked down and the run goes to the next node, then the origin. A
// body cut mid-run resumes where its blocks end, from the next source,
// with Range + If-Range: the readers see one whole object, and a changed
// object (If-Range failed) fails the fill as any changed origin object.
//
// An optional BodySource (the client transaction of a pass-through request
// with a body) feeds request bytes; the two clear each other's pointers
// when either goes away (both live on the same loop).
//
// Mirror fills (cache::Fill::capped(): created by the box's own capped
// request, server/proxy/internal_request.h): while the flag holds and the
// loop's apple.mirror_rate is above 0, every body byte from the origin is
// taken from the one bucket all loops share (ServerContext::mirrorThrottle,
// common/rate_limiter.h). When the bucket is in debt the exchange stops
// reading, and a timer looks again every min(debt, kThrottleTickMs): the
// exchange resumes once the debt is paid, or at once when the cap was
// lifted (a Mac joined) or the rate set to 0 by a reload. The same tick
// notices a mirror fill whose last reader left: it is stopped like a
// failed one (what is durable is recorded, so the next request resumes it
// with a Range request) and no more origin bytes flow. An uncapped shared
// fill goes on without readers as before.
#pragma once

#include <memory>
#include <string>

#include "cache/fill.h"
#include "server/context.h"
#include "server/http/upstream.h"
#include "server/proxy/cache_nodes.h"

namespace orchard::server {

struct FillWork;

// Free space on the file system of `dir` is under the reserve kept for the
// index (min(64 MiB, 5 % of the file system)): fills stop writing to disk.
// Fills *availOut / *reserveOut when given. False when statvfs fails.
bool storageBelowReserve(const std::string& dir, uint64_t* availOut = nullptr, uint64_t* reserveOut = nullptr);

class BodySource {
 public:
  virtual ~BodySource() = default;
  virtual void onBodyWritable() = 0;  // the upstream can take more request body
  virtual void onDriverGone() = 0;    // the driver finished; stop feeding it
};

// The request every exchange of a fill starts from.
// The client whose request started an exchange, told of the origin's
// interim (1xx) answers before the final head.
class InterimSink {
 public:
  virtual void onInterim(const ResponseHead& interim) = 0;
  virtual void onInterimGone() = 0;  // the driver finished
 protected:
  ~InterimSink() = default;
};

struct UpstreamTemplate {
  std::string host;
  uint16_t port = 80;
  bool tls = false;  // https: fetched over TLS (verified)
  std::string headPrefix;  // request line and headers, each ending in CRLF, without the blank line
  std::string method;
  bool hasBody = false;
  bool bodyChunked = false;
  HeaderList requestHeaders;  // the client's headers (Vary selection, store decision)
  std::string requestCacheControl;
  bool hasAuthorization = false;
  std::string primaryKey;     // cache key before any Vary variant
  // Parents and peers (server/proxy/cache_nodes.h): set when the box has
  // some and this request may go through them (GET or HEAD, no body).
  bool viaNodes = false;
  bool fromPeer = false;      // a peer's request: never sent on to another peer
  std::string originId;       // the origin's "host:port" (a node that is the origin is not asked)
  std::string nodeTarget;     // the target in Apple's content-cache form (?source=host[:port])
  size_t headersAt = 0;       // where headPrefix's lines after Host begin
};

class FillDriver final : public UpstreamSink {
 public:
  // Starts fetching `fetch`; the driver deletes itself when it ends (it
  // may have ended already when start() returns: see finished()).
  static FillDriver* start(WorkerContext* wc, std::shared_ptr<cache::Fill> fill, cache::Fill::Fetch fetch,
                           std::shared_ptr<const UpstreamTemplate> tmpl, BodySource* body,
                           InterimSink* interim = nullptr);
  bool finished() const { return finished_; }

  void writeBody(const char* data, size_t n);
  void endBody();
  size_t queuedBytes() const;
  void detachBody() { body_ = nullptr; }
  void detachInterim() { interim_ = nullptr; }
  // Shutdown: record what is durable, fail the fill, stop.
  void abort();

  void onUpstreamHead(ResponseHead&& head) override;
  void onUpstreamInterim(const ResponseHead& interim) override;
  void onUpstreamBody(const char* data, size_t n) override;
  void onUpstreamComplete() override;
  void onUpstreamError(Error error, bool afterHead) override;
  void onUpstreamWritable() override;
  void onUpstreamStalled() override;

 private:
  FillDriver(WorkerContext* wc, std::shared_ptr<cache::Fill> fill, cache::Fill::Fetch fetch,
             std::shared_ptr<const UpstreamTemplate> tmpl, BodySource* body);
  void startExchange();
  void headFresh(ResponseHead& head);
  void headRun(ResponseHead& head);
  void headRevalidation(ResponseHead& head);
  void runDone();
  void stopExchange();
  void failFill(Error e);
  void scheduleCheckpoint();
  void scheduleComplete();
  void done();
  bool unwanted() const;
  bool diskLow();  // free space under the reserve kept for the index

  WorkerContext* wc_;
  std::shared_ptr<cache::Fill> fill_;
  cache::Fill::Fetch fetch_;
  std::shared_ptr<const UpstreamTemplate> tmpl_;
  BodySource* body_;
  InterimSink* interim_ = nullptr;
  UpstreamExchange* ex_ = nullptr;
  int64_t requestTime_ = 0;
  uint64_t discard_ = 0;       // bytes of a 200 to skip before this run's start
  bool skipBody_ = false;      // this exchange's body is not for the fill (304, refused answer)
  bool revalidation_ = false;  // this exchange is the conditional request
  bool completing_ = false;
  bool finished_ = false;
  bool checkpointInFlight_ = false;
  FillWork* checkpointWork_ = nullptr;  // its completion clears checkpointInFlight_
  static void onCheckpointDone(FillWork* w);
  static void onCompleteDone(FillWork* w);
  int64_t lastCheckpointMs_ = 0;
  uint64_t sinceDiskCheck_ = 0;  // bytes since diskLow() last asked the file system
  bool diskChecked_ = false;
  // Relay backpressure: bytes the relay window could not take yet (at most
  // the rest of one read, 64 KiB), and whether the body ended behind them.
  void holdForRoom();
  void drainHeld();
  // Mirror cap (see the top of this file). The timer is a heap box (STYLE
  // libuv rules): done() closes it, its close callback frees it, a tick
  // after that finds data == nullptr.
  static constexpr int64_t kThrottleTickMs = 50;
  void throttle(size_t n);
  void armThrottle(int64_t ms);
  void throttleTick();
  uv_timer_t* throttleTimer_ = nullptr;  // made at the first pause
  bool throttled_ = false;               // reading is paused for the rate (resume only when also !held_)
  std::string held_;
  bool heldComplete_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // room wake-ups check it
  // Parents and peers (cache_nodes.h): the nodes this fill tries before the
  // origin, planned at its first exchange; attempt_ indexes the one the
  // current exchange goes to (past the end: the origin, node_ null). A
  // node that fails is marked down and the same run goes to the next; a
  // body cut mid-run resumes from its last whole block (Fill::fetcherCut)
  // with a Range request validated by If-Range.
  void nodeFailed(const std::string& why);
  void retryElsewhere();
  CacheNodes::Plan plan_;
  int attempt_ = 0;
  bool planned_ = false;
  CacheNodes::Node* node_ = nullptr;
  bool lengthKnown_ = true;  // false: chunked or close-delimited (bounded by bodyBytes_ instead)
  uint64_t bodyBytes_ = 0;   // body bytes this driver wrote (for the unknown-length bound)
};

}  // namespace orchard::server
