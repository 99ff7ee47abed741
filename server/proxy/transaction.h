// Transaction: the proxy's handler for one request (RequestHandler), from
// the routed head to the end of its response.
//
// It decides nothing itself: cache::decide() (cache/request_decision.h)
// picks the step from the request, the stored record and the time, and
// cache::decideOnHead() what to do once a fill's head is known. The
// transaction carries the chosen action out:
//   ServeStored      head from the record, body from its file by the
//                    BodySender (304 for a matching client conditional,
//                    206/multipart/416 for ranges, no body for HEAD)
//   ServeAndRefresh  the same, and a background revalidation (GET)
//   Revalidate       join or start the one conditional request for a stale
//                    object; a 304 serves the refreshed object, a new body
//                    is followed, an origin failure serves the stale one
//                    when stale-if-error allows
//   Fetch            join or start the shared fill (at byte N for a range
//                    far in) and follow it: wait for the head, then stream
//                    the wanted bytes as they land
//   Pass             a private fill with this transaction as its only
//                    reader (methods, credentials, HEAD misses)
//   Answer           a synthesized status (504 for only-if-cached)
// Its phase is explicit (Phase below); the step it took names its counter
// and its Cache-Status (ORCHARD_STEPS).
#pragma once

#include <memory>
#include <string>

#include "cache/fill.h"
#include "cache/key.h"
#include "cache/request_decision.h"
#include "server/http/body_sender.h"
#include "server/http/handler.h"
#include "server/http/message.h"
#include "server/proxy/fill_driver.h"
#include "server/proxy/internal_request.h"
#include "server/context.h"
#include "server/proxy/router.h"

namespace orchard::server {

// Whether the client is itself a cache (its Via names an Orchard): a
// child, or a peer (from access.peer_clients). Its bytes are counted apart
// (TotalBytesReturnedToChildren / ToPeers) and a peer's miss is never sent
// on to another peer.
enum class CacheClient : uint8_t { None, Child, Peer };

class Transaction final : public RequestHandler, public BodySender, public BodySource, public InterimSink {
 public:
  Transaction(ResponseWriter* conn, RequestHead req, Route route, CacheClient client = CacheClient::None);
  ~Transaction() override;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // RequestHandler
  void start() override;
  void onRequestBody(const char* data, size_t n) override;
  void onRequestComplete() override;
  void onBodyWritten(int status) override { bodyWritten(status); }
  void onConnClosed() override;
  // BodySource (a pass with a request body)
  void onBodyWritable() override;
  void onDriverGone() override { driver_ = nullptr; }
  // InterimSink (the exchange this request started)
  void onInterim(const ResponseHead& interim) override;
  void onInterimGone() override { interimDriver_ = nullptr; }

 private:
  enum class Phase : uint8_t {
    Deciding,    // before an action was taken
    WaitingHead, // following a fill whose head is not known yet
    Sending,     // a head is chosen; the BodySender sends the body
    Finished,    // the response ended (or the connection went)
  };

  // BodySender
  void finish(bool clean) override;
  void fetchFrom(const cache::Fill::Fetch& fetch) override;

  void act(const cache::Action& a, std::shared_ptr<const cache::ObjectMeta> stored);
  void enter(cache::Step step);  // counts the step, starts its Cache-Status
  std::shared_ptr<const cache::ObjectMeta> lookupStored();  // follows a Vary stub to the variant
  void answer(int status, std::string_view contentType, std::string_view body, std::string_view extraHeaders = {});
  void answerError(int status, std::string_view detail);
  // False when the object cannot be served (file gone, corrupt first
  // blocks): nothing was sent. `status`: a Cache-Status other than the step's.
  bool serveStored(std::shared_ptr<const cache::ObjectMeta> meta, cache::Step step, std::string status = {});
  void revalidate(std::shared_ptr<const cache::ObjectMeta> stale, const cache::Action& a);
  void backgroundRevalidate(std::shared_ptr<const cache::ObjectMeta> stale);
  void fetch(const cache::Action& a);
  // Whether this is the box's own request (server/proxy/internal_request.h).
  // Reads the header: on misses (creating or joining a fill) only, never on
  // the hit path.
  InternalKind internal() const;
  // A fill this request joined or asks more of: a client that is not the
  // box lifts its mirror cap (the box's capped request set it at creation,
  // FillTable::acquire).
  void liftCap(cache::Fill& fill, InternalKind kind);
  void refetchWithoutStored();  // the stored object could not be used: decide again without it
  void follow(std::shared_ptr<cache::Fill> fill, bool leader);
  void startPass(cache::Step step);
  // feedBody: this request's body goes upstream; interim: the origin's 1xx
  // answers come to this client (only before its head is chosen).
  void startDriver(const std::shared_ptr<cache::Fill>& fill, cache::Fill::Fetch fetch, bool feedBody, bool interim);
  void waitHead();
  void sendFillHead(const cache::Fill::Snapshot& snap);
  // Builds status line, stored headers and the range framing; fills segs_.
  std::string responseHead(const cache::ObjectMeta& meta, std::optional<uint64_t> length, bool allowRanges,
                           int64_t age, bool* noBody);
  std::string notModifiedHead(const cache::ObjectMeta& meta, int64_t now) const;
  void stopReadingFill();  // no longer counted as fill_'s reader, cursor removed
  void leaveFill();        // stopReadingFill(), then drops fill_
  // Counts the body bytes sent in the key's row of the loop's top-objects
  // table.
  void countServed();

  SnapshotRef snap_;  // the config this request started on (it finishes on it across a reload)
  RequestHead req_;
  Route route_;
  CacheClient client_ = CacheClient::None;
  bool hasNodes() const;  // the box has parents or peers a miss may go to
  cache::RequestFacts facts_;  // what decide() is told about req_ (views into req_)
  Phase phase_ = Phase::Deciding;
  std::string primaryKey_;     // the URI's key before any variant (key_ is the one looked up)
  std::shared_ptr<const UpstreamTemplate> template_;  // built once, shared by this request's drivers
  bool leader_ = false;        // this transaction created fill_ (and started its driver)
  bool counted_ = false;       // this transaction counts as a reader of fill_ (addReader)
  bool staleIfError_ = false;
  bool staleIfDisconnected_ = false;
  std::shared_ptr<const cache::ObjectMeta> stale_;  // the stale object a revalidation may fall back to
  bool headOnly_ = false;      // HEAD: no body bytes
  bool requestComplete_ = false;  // the request body (if any) was read to its end
  FillDriver* driver_ = nullptr;  // pass with a request body
  FillDriver* interimDriver_ = nullptr;  // the exchange whose 1xx answers come here

  // For /metrics, the access log and Cache-Status (told to the connection
  // when the response ends: ResponseWriter::noteOutcome).
  std::string cacheStatus_;
  RequestResult result_ = RequestResult::Miss;
  bool revalidated_ = false;  // a 304 refreshed the stale object this serves
  int status_ = 0;
};

}  // namespace orchard::server
