// GET /pkgs/{name}/{version}/{filename}: a published package's bytes, sent
// by the body loop that sends cache hits (BodySender: RWF_NOWAIT reads,
// the thread pool for cold bytes, sendfile where the stream allows it).
// Conditionals and ranges are evaluated as for a stored object: the
// package is described by an ObjectMeta of its own (strong ETag from its
// SHA-256, Last-Modified from the publish time), so notModified(),
// ifRangeMatches() and the range layout are the cache's, unchanged.
//
// Hard parts: only a published version is reachable (the record is looked
// up per request, so a delete is a 404 at once), while a download already
// running keeps its descriptor of the (possibly unlinked) blob and
// finishes; a download is counted once, when a clean answer sent the
// file's last byte.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/policy.h"
#include "cache/range.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/catalog_routes.h"
#include "server/http/body_sender.h"
#include "server/http/local_handler.h"
#include "server/http/message.h"

namespace orchard::server {

namespace {

class PackageSender final : public RequestHandler, public BodySender {
 public:
  PackageSender(ResponseWriter* w, RequestHead req, std::shared_ptr<const catalog::PackageVersion> rec,
                const ServerContext* ctx, int fd)
      : BodySender(w->wc(), w), req_(std::move(req)), rec_(std::move(rec)), ctx_(ctx) {
    fd_ = fd;
  }

  void start() override {
    auto meta = std::make_shared<cache::ObjectMeta>();
    meta->status = 200;
    meta->size = rec_->size;
    meta->etag = "\"" + rec_->sha256 + "\"";
    char lm[30], now[30];
    cache::formatHttpDate(rec_->published, lm);
    cache::formatHttpDate(ctx_->clock->nowSeconds(), now);
    meta->lastModified = lm;
    meta->headers = {{"Date", now}};
    key_ = cache::CacheKey::fromText("pkgs/" + rec_->sha256);
    std::string out;
    const bool head = req_.method == "HEAD";
    if (cache::notModified(req_.headers, *meta)) {
      appendStatusLine(out, 304);
      out += "ETag: " + meta->etag + "\r\nLast-Modified: " + meta->lastModified + "\r\nDate: " + now + "\r\n";
      out += "Cache-Control: public, no-cache\r\n";
      if (!req_.keepAlive) out += "Connection: close\r\n";
      out += "\r\n";
      conn_->write(std::move(out));
      return finish(true);
    }
    cache::RangeResult rr;
    auto range = req_.header("Range");
    auto ifRange = req_.header("If-Range");
    if (range && (!ifRange || cache::ifRangeMatches(*ifRange, meta->etag, meta->lastModified, now)))
      rr = cache::evaluateRange(range, rec_->size);
    int status = 200;
    bool noBody = false;
    std::string framing;
    if (rr.outcome != cache::RangeOutcome::Full) {
      framing = layoutRanges(rr, rec_->size, "application/octet-stream", &status, &noBody);
    } else {
      framing = "Content-Length: " + std::to_string(rec_->size) + "\r\n";
      segs_.push_back(Segment{{}, 0, rec_->size});
      wholeBody_ = true;
    }
    const bool multipart = rr.outcome == cache::RangeOutcome::Partial && rr.ranges.size() > 1;
    appendStatusLine(out, status);
    if (!multipart) out += "Content-Type: application/octet-stream\r\n";
    out += framing;
    out += "Accept-Ranges: bytes\r\nETag: " + meta->etag + "\r\nLast-Modified: " + meta->lastModified +
           "\r\nDate: " + now + "\r\nCache-Control: public, no-cache\r\n";
    if (!req_.keepAlive) out += "Connection: close\r\n";
    out += "\r\n";
    storedMeta_ = std::move(meta);  // no block checksums: nothing to verify per block
    status_ = status;
    if (head || noBody || segs_.empty() || rec_->size == 0) {
      conn_->write(std::move(out));
      segs_.clear();
      return finish(true);
    }
    headOut_ = std::move(out);
    network_ = clientNetwork(conn_->peer());
    ctx_->catalog->deliveries().started(rec_->name, rec_->version, network_);
    beginBody();
  }
  void onRequestBody(const char*, size_t) override {}
  void onRequestComplete() override {}
  void onBodyWritten(int status) override { bodyWritten(status); }
  void onConnClosed() override {
    conn_ = nullptr;
    *alive_ = false;
    finished_ = true;
  }

 private:
  void finish(bool clean) override {
    if (done_) return;
    done_ = true;
    finished_ = true;
    releaseBuffer();
    // A clean answer that carried the file's last byte is a download.
    const bool whole = clean && status_ != 304 && req_.method == "GET" && !segs_.empty() && segs_.back().end == rec_->size;
    if (whole) ctx_->catalog->noteDownload(rec_->name, rec_->version);
    if (!network_.empty()) ctx_->catalog->deliveries().served(rec_->name, rec_->version, network_, bytesSent_, whole);
    if (conn_) conn_->endResponse(clean);
  }
  void fetchFrom(const cache::Fill::Fetch&) override {}  // a stored file: no fill, no fetcher

  RequestHead req_;
  std::shared_ptr<const catalog::PackageVersion> rec_;
  const ServerContext* ctx_;
  int status_ = 0;
  bool done_ = false;
  std::string network_;  // set once a body started: the delivery counts' key
};

}  // namespace

RequestHandler* makePackageSender(HandlerRequest&& r, const ServerContext* ctx) {
  auto rec = ctx->catalog->find(r.params.get("name"), r.params.get("version"));
  if (!rec || rec->filename != r.params.get("filename"))
    return FixedAnswer::error(r.writer, std::move(r.head), 404, "no such published package");
  // The blob is opened now: a delete from here on unlinks a file this
  // download still holds.
  int fd = ::open(ctx->catalog->blobPath(rec->sha256).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FixedAnswer::error(r.writer, std::move(r.head), 404, "no such published package");
  return new PackageSender(r.writer, std::move(r.head), std::move(rec), ctx, fd);
}

}  // namespace orchard::server
