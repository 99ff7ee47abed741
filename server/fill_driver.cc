#include "server/fill_driver.h"

#include "cache/policy.h"
#include "common/log.h"

namespace orchard::server {

FillDriver::FillDriver(WorkerContext* wc, std::shared_ptr<cache::Fill> fill, RequestInfo info, BodySource* body)
    : wc_(wc), fill_(std::move(fill)), info_(std::move(info)), body_(body) {}

FillDriver* FillDriver::start(WorkerContext* wc, std::shared_ptr<cache::Fill> fill, UpstreamRequest request,
                              RequestInfo info, BodySource* body) {
  auto* d = new FillDriver(wc, std::move(fill), std::move(info), body);
  wc->drivers.insert(d);
  d->requestTime_ = wc->server->clock->nowSeconds();
  wc->counters.add(wc->counters.origin_requests);
  d->ex_ = wc->upstream.start(std::move(request), d);
  return d;
}

void FillDriver::writeBody(const char* data, size_t n) {
  if (ex_) ex_->writeBody(data, n);
}
void FillDriver::endBody() {
  if (ex_) ex_->endBody();
}
size_t FillDriver::queuedBytes() const { return ex_ ? ex_->queuedBytes() : 0; }

bool FillDriver::unwanted() const {
  // A shared cacheable fill is wanted by the table even with no reader.
  auto s = fill_->snapshot();
  if (fill_->shared() && (s.state == cache::Fill::State::Pending || s.cacheable)) return false;
  return fill_->readers() == 0;
}

void FillDriver::onUpstreamHead(ResponseHead&& head) {
  int64_t now = wc_->server->clock->nowSeconds();
  cache::ObjectMeta meta;
  meta.status = head.status;
  meta.reason = head.reason.empty() ? reasonPhrase(head.status) : head.reason;
  meta.headers = endToEndHeaders(head.headers);
  if (auto v = findHeader(head.headers, "ETag")) meta.etag = std::string(*v);
  if (auto v = findHeader(head.headers, "Last-Modified")) meta.lastModified = std::string(*v);
  meta.requestTime = requestTime_;
  meta.responseTime = now;
  meta.size = head.contentLength.value_or(0);

  cache::StoreInput in;
  in.method = info_.method;
  in.status = head.status;
  in.requestCacheControl = info_.cacheControl;
  std::string respCc;
  for (const auto& [k, v] : head.headers) {
    if (iequals(k, "Cache-Control")) {
      if (!respCc.empty()) respCc += ", ";
      respCc += v;
    }
  }
  in.responseCacheControl = respCc;
  in.requestHasAuthorization = info_.hasAuthorization;
  in.lengthKnown = head.contentLength.has_value() || head.chunked;
  auto verdict = cache::decideStore(in);

  std::optional<uint64_t> bodyLength;
  if (head.noBody) bodyLength = 0;
  else if (head.contentLength) bodyLength = head.contentLength;
  auto r = fill_->begin(std::move(meta), verdict == cache::StoreVerdict::Store, bodyLength);
  if (!r) {
    OLOG_RATE(log::Level::Warn, "fill %s: %s", fill_->key().text.c_str(), r.error().message().c_str());
    fill_->fail(r.error());
    if (ex_) ex_->cancel();
    ex_ = nullptr;
    done();
    return;
  }
  if (unwanted()) {
    fill_->fail(Error{Errc::Closed, 0, "fill: no reader left"});
    if (ex_) ex_->cancel();
    ex_ = nullptr;
    done();
  }
}

void FillDriver::onUpstreamBody(const char* data, size_t n) {
  if (finished_) return;
  wc_->counters.add(wc_->counters.bytes_from_origin, n);
  auto r = fill_->append(data, n);
  if (!r || unwanted()) {
    if (!r) OLOG_RATE(log::Level::Warn, "fill %s: %s", fill_->key().text.c_str(), r.error().message().c_str());
    fill_->fail(r ? Error{Errc::Closed, 0, "fill: no reader left"} : r.error());
    if (ex_) ex_->cancel();
    ex_ = nullptr;
    done();
  }
}

void FillDriver::onUpstreamComplete() {
  ex_ = nullptr;
  if (finished_) return;
  fill_->finish(wc_->server->clock->nowSeconds());
  auto s = fill_->snapshot();
  if (s.state == cache::Fill::State::Complete && s.cacheable) wc_->counters.add(wc_->counters.bytes_stored, s.committed);
  done();
}

void FillDriver::onUpstreamError(Error error, bool afterHead) {
  ex_ = nullptr;
  if (finished_) return;
  wc_->counters.add(wc_->counters.origin_errors);
  OLOG_RATE(log::Level::Warn, "origin fetch for %s failed: %s", fill_->key().text.c_str(), error.message().c_str());
  fill_->fail(error);
  done();
}

void FillDriver::onUpstreamWritable() {
  if (body_) body_->onBodyWritable();
}

void FillDriver::abort() {
  if (finished_) return;
  fill_->fail(Error{Errc::Closed, 0, "server shutting down"});
  if (ex_) ex_->cancel();
  ex_ = nullptr;
  done();
}

void FillDriver::done() {
  if (finished_) return;
  finished_ = true;
  if (body_) body_->onDriverGone();
  body_ = nullptr;
  wc_->drivers.erase(this);
  wc_->worker->deferDelete(this);
}

}  // namespace orchard::server
