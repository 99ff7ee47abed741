// FillDriver: runs one upstream exchange and writes its response into a
// cache::Fill. It owns itself and lives on the worker loop that started it,
// independent of the client that caused it: when that client leaves, a
// shared fill keeps going for the others and completes into the store.
// A private fill, or a shared one whose answer turned out uncacheable, is
// cancelled once no reader is left.
//
// An optional BodySource (the client transaction of a pass-through request
// with a body) feeds request bytes; the two clear each other's pointers
// when either goes away (both live on the same loop).
#pragma once

#include <memory>

#include "cache/fill.h"
#include "server/context.h"
#include "server/upstream.h"

namespace orchard::server {

class BodySource {
 public:
  virtual ~BodySource() = default;
  virtual void onBodyWritable() = 0;  // the upstream can take more request body
  virtual void onDriverGone() = 0;    // the driver finished; stop feeding it
};

class FillDriver final : public UpstreamSink {
 public:
  struct RequestInfo {
    std::string method;
    std::string cacheControl;      // request Cache-Control
    bool hasAuthorization = false;
  };
  // Starts the exchange; the driver deletes itself when it ends.
  static FillDriver* start(WorkerContext* wc, std::shared_ptr<cache::Fill> fill, UpstreamRequest request,
                           RequestInfo info, BodySource* body);

  void writeBody(const char* data, size_t n);
  void endBody();
  size_t queuedBytes() const;
  void detachBody() { body_ = nullptr; }
  // Shutdown: fail the fill and stop.
  void abort();

  void onUpstreamHead(ResponseHead&& head) override;
  void onUpstreamBody(const char* data, size_t n) override;
  void onUpstreamComplete() override;
  void onUpstreamError(Error error, bool afterHead) override;
  void onUpstreamWritable() override;

 private:
  FillDriver(WorkerContext* wc, std::shared_ptr<cache::Fill> fill, RequestInfo info, BodySource* body);
  void done();
  bool unwanted() const;

  WorkerContext* wc_;
  std::shared_ptr<cache::Fill> fill_;
  RequestInfo info_;
  BodySource* body_;
  UpstreamExchange* ex_ = nullptr;
  int64_t requestTime_ = 0;
  bool finished_ = false;
};

}  // namespace orchard::server
