// Transaction: one request and its response on a client connection.
//
// Steps (decided from the head and the store, then performed):
//   Local       probe, /metrics, /api/v1/status, errors: a small fixed answer
//   Hit         a stored object fresh enough for this request: head from its
//               record, body from its file (304 for a matching client
//               conditional, 206/multipart/416 for ranges, no body for HEAD)
//   Revalidate  a stale stored object: join or start the one conditional
//               request for it; a 304 turns into a Hit, a new body into Follow,
//               an origin failure into the stale Hit when stale-if-error allows
//   Follow      a fill in flight (or one this transaction started as leader):
//               wait for the head, then stream the wanted bytes as they land;
//               bytes far ahead of every fetcher start a fetcher of their own
//   Pass        not cacheable (method, credentials, HEAD miss): a private
//               fill with this transaction as its only reader
//
// The body loop is the same for Hit, Follow and Pass: a list of segments
// (the whole body, one range, or the parts of a multipart/byteranges), and
// for each "give me bytes past my cursor, or register me" (STYLE pattern 3),
// one reused buffer, one write in flight. Memory per transaction is that
// buffer, whatever the object size; a slow client only slows its own cursor.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "cache/fill.h"
#include "cache/key.h"
#include "cache/policy.h"
#include "server/http/handler.h"
#include "server/http/message.h"
#include "server/proxy/fill_driver.h"
#include "server/proxy/router.h"

namespace orchard::server {

class Transaction final : public RequestHandler, public BodySource {
 public:
  Transaction(ResponseWriter* conn, RequestHead req);
  ~Transaction() override;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const RequestHead& request() const { return req_; }
  void start() override;
  void onRequestBody(const char* data, size_t n) override;
  void onRequestComplete() override;
  void onBodyWritten(int status) override;
  // The connection is gone: drop every reference to it.
  void onConnClosed() override;

  void onBodyWritable() override;
  void onDriverGone() override { driver_ = nullptr; }

 private:
  struct Segment {
    std::string prefix;  // written before the bytes (multipart part headers)
    uint64_t first = 0;
    uint64_t end = 0;    // exclusive; UINT64_MAX: to the end of a body of unknown length
  };

  void answer(int status, std::string_view contentType, std::string_view body, std::string_view extraHeaders = {});
  void answerError(int status, std::string_view detail);
  void local();
  void proxy();
  void lookup();
  bool serveStored(std::shared_ptr<const cache::ObjectMeta> meta, std::string cacheStatus);
  void revalidate(std::shared_ptr<const cache::ObjectMeta> stale, bool staleIfError);
  void backgroundRevalidate(std::shared_ptr<const cache::ObjectMeta> stale);
  void miss();
  void follow(std::shared_ptr<cache::Fill> fill, bool leader);
  void startPass(std::string cacheStatus);
  std::shared_ptr<const UpstreamTemplate> upstreamTemplate(bool shared) const;
  void startDriver(const std::shared_ptr<cache::Fill>& fill, cache::Fill::Fetch fetch, bool feedBody);
  void waitHead();
  void sendFillHead(const cache::Fill::Snapshot& snap);
  // Builds status line, stored headers and the range framing; fills segs_.
  std::string responseHead(const cache::ObjectMeta& meta, std::optional<uint64_t> length, bool allowRanges,
                           int64_t age, bool* noBody);
  void pump();
  void flushHead();  // writes headOut_ alone (before a wait, a prefix or the end)
  void finish(bool clean);
  void accessLog() const;

  ResponseWriter* conn_;
  WorkerContext* wc_;
  SnapshotRef snap_;  // the config this request started with (see server/context.h)
  RequestHead req_;
  Route route_;
  cache::CacheKey key_;          // the key looked up (a Vary variant when the stub says so)
  std::string primaryKey_;       // the URI's key before any variant
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::shared_ptr<const UpstreamTemplate> template_;  // built once, shared by this request's drivers

  // What is being delivered.
  std::shared_ptr<cache::Fill> fill_;
  static constexpr uint32_t kNoCursor = UINT32_MAX;
  uint32_t fillCursor_ = kNoCursor;  // this reader's cursor in fill_ (relay backpressure)
  void stopReadingFill();            // no longer counted as fill_'s reader, cursor removed
  void leaveFill();                  // stopReadingFill(), then drops fill_
  bool leader_ = false;        // this transaction created fill_ (and started its driver)
  bool counted_ = false;       // this transaction counts as a reader of fill_ (addReader)
  bool revalidating_ = false;  // waiting on a revalidation fill for stale_
  bool staleIfError_ = false;
  std::shared_ptr<const cache::ObjectMeta> stale_;
  int fd_ = -1;                // hit: the object file (owned, or borrowed from the loop's OpenFileCache)
  bool cachedFd_ = false;
  uint64_t fdGen_ = 0;
  std::shared_ptr<void> pin_;  // hit: keeps the object from eviction while it is read
  std::shared_ptr<const cache::ObjectMeta> storedMeta_;  // hit: the entry served (its checksums, verified blocks)
  std::vector<Segment> segs_;
  size_t seg_ = 0;
  bool prefixSent_ = false;
  std::string trailer_;        // multipart closing boundary
  uint64_t cursor_ = 0;
  bool headOnly_ = false;      // HEAD: no body bytes
  bool chunkedOut_ = false;    // client framing when the length is unknown
  bool wholeBody_ = false;     // a 200 with the whole body (not a range)
  bool writing_ = false;
  bool finished_ = false;
  bool requestComplete_ = false;  // the request body (if any) was read to its end
  char* buf_ = nullptr;        // borrowed from the worker's BufferPool
  std::unique_ptr<char[]> small_;  // chunked answers under memory pressure: 16 KiB reads instead
  char chunkHead_[24];
  std::string headOut_;       // response head not written yet: goes out with the first bytes
  std::string headInFlight_;  // the head inside the body write in flight
  FillDriver* driver_ = nullptr;  // pass with a request body

  // For the access log and Cache-Status.
  std::string cacheStatus_;
  int status_ = 0;
  uint64_t bytesSent_ = 0;
  int64_t startMs_ = 0;
};

// Local route bodies (also used by tests).
std::string renderMetrics(const ServerContext& ctx);
std::string renderStatus(const ServerContext& ctx);

}  // namespace orchard::server
