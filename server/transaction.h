// Transaction: one request and its response on a client connection.
//
// Steps (decided once from the head, then performed):
//   Local    probe, /metrics, /api/v1/status, errors: a small fixed answer
//   Hit      a complete stored object: head from its record, body from its file
//   Follow   a fill in flight (or one this transaction started as leader):
//            wait for the head, then stream bytes as they land on disk
//   Pass     not cacheable (method, credentials, HEAD miss): a private
//            fill with this transaction as its only reader
//
// The body loop is the same for Hit, Follow and Pass: "give me bytes past
// my cursor, or register me" (STYLE pattern 3), one reused buffer, one
// write in flight. Memory per transaction is that buffer, whatever the
// object size; a slow client only slows its own cursor.
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "cache/fill.h"
#include "cache/key.h"
#include "server/fill_driver.h"
#include "server/http.h"
#include "server/router.h"

namespace orchard::server {

class ClientConn;

class Transaction final : public BodySource {
 public:
  Transaction(ClientConn* conn, RequestHead req);
  ~Transaction() override;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const RequestHead& request() const { return req_; }
  void start();
  void onRequestBody(const char* data, size_t n);
  void onRequestComplete();
  // The connection is gone: drop every reference to it.
  void onConnClosed();

  void onBodyWritable() override;
  void onDriverGone() override { driver_ = nullptr; }

 private:
  void answer(int status, std::string_view contentType, std::string_view body, std::string_view extraHeaders = {});
  void answerError(int status, std::string_view detail);
  void local();
  void proxy();
  bool serveHit(const cache::CacheKey& key);
  void follow(std::shared_ptr<cache::Fill> fill, bool leader);
  void startPass(std::string cacheStatus);
  void startFill(std::shared_ptr<cache::Fill> fill, bool shared);
  UpstreamRequest upstreamRequest(bool shared) const;
  void waitHead();
  void sendFillHead(const cache::Fill::Snapshot& snap);
  void pump();
  static void onBodyWritten(Transaction* t, int status);
  void finish(bool clean);
  void accessLog() const;

  ClientConn* conn_;
  WorkerContext* wc_;
  RequestHead req_;
  Route route_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  // What is being delivered.
  std::shared_ptr<cache::Fill> fill_;
  bool leader_ = false;       // this transaction counts as a reader of fill_
  int fd_ = -1;               // hit: the object file (owned)
  uint64_t end_ = 0;          // hit: body length
  uint64_t cursor_ = 0;
  bool headOnly_ = false;     // HEAD: no body bytes
  bool chunkedOut_ = false;   // client framing when the length is unknown
  bool writing_ = false;
  bool finished_ = false;
  char* buf_ = nullptr;       // borrowed from the worker's BufferPool
  char chunkHead_[24];
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
