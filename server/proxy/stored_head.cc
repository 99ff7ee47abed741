// The heads the proxy writes for a stored (or filling) object: the status
// line and stored headers with the framing of what is sent (whole body,
// one range, multipart/byteranges, 416, chunked or close-delimited when the
// length is unknown), Age and Cache-Status; and the 304 for a client whose
// conditional matches. responseHead() also lays out the body's segments for
// the BodySender. The hard part is If-Range: a range is honoured only when
// the validator matches the stored object (else the whole body goes).
#include <algorithm>

#include "cache/range.h"
#include "cache/targeted_control.h"
#include "server/context.h"
#include "server/proxy/transaction.h"

namespace orchard::server {

std::string Transaction::responseHead(const cache::ObjectMeta& meta, std::optional<uint64_t> length, bool allowRanges,
                                      int64_t age, bool* noBody) {
  int status = meta.status;
  const bool bodiless = status == 204 || status == 304 || (status >= 100 && status < 200);
  segs_.clear();
  seg_ = 0;
  trailer_.clear();
  std::string framing;
  std::string contentType(meta.header("Content-Type"));

  cache::RangeResult rr;
  if (allowRanges && length && status == 200 && !bodiless) {
    auto range = req_.header("Range");
    auto ifRange = req_.header("If-Range");
    if (range && (!ifRange || cache::ifRangeMatches(*ifRange, meta.etag, meta.lastModified, meta.header("Date"))))
      rr = cache::evaluateRange(range, *length);
  }
  if (rr.outcome != cache::RangeOutcome::Full) {
    framing = layoutRanges(rr, *length, contentType, &status, noBody);
  } else if (headOnly_) {
    // A stored object's size, or the length the origin declared to a HEAD.
    if (!bodiless) framing = "Content-Length: " + std::to_string(meta.size) + "\r\n";
  } else if (bodiless) {
    *noBody = true;
  } else if (length) {
    framing = "Content-Length: " + std::to_string(*length) + "\r\n";
    segs_.push_back(Segment{{}, 0, *length});
    wholeBody_ = true;
  } else if (req_.versionMajor == 1 && req_.versionMinor >= 1) {
    wholeBody_ = true;
    chunkedOut_ = true;
    framing = "Transfer-Encoding: chunked\r\n";
    segs_.push_back(Segment{{}, 0, kToEnd});
  } else {
    if (conn_) conn_->disableKeepAlive();  // close-delimited for HTTP/1.0 clients
    req_.keepAlive = false;
    segs_.push_back(Segment{{}, 0, kToEnd});
    wholeBody_ = true;
  }
  if (headOnly_) *noBody = true;
  status_ = status;

  std::string out;
  out.reserve(512);
  appendStatusLine(out, status, status == 206 || status == 416 ? std::string_view() : std::string_view(meta.reason));
  const bool multipart = rr.outcome == cache::RangeOutcome::Partial && rr.ranges.size() > 1;
  for (const auto& [k, v] : meta.headers) {
    if (iequals(k, "Age") || iequals(k, "Accept-Ranges")) continue;
    if (iequals(k, cache::kOwnTargetedField)) continue;  // for this box alone (RFC 9213)
    if (multipart && iequals(k, "Content-Type")) continue;
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += framing;
  if (length) out += "Accept-Ranges: bytes\r\n";
  if (age >= 0) out += "Age: " + std::to_string(age) + "\r\n";
  out += "Cache-Status: " + cacheStatus_ + "\r\n";
  if (!req_.keepAlive) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

std::string Transaction::notModifiedHead(const cache::ObjectMeta& meta, int64_t now) const {
  std::string out;
  appendStatusLine(out, 304);
  for (const auto& [k, v] : meta.headers) {
    if (iequals(k, "ETag") || iequals(k, "Cache-Control") || iequals(k, "Expires") || iequals(k, "Vary") ||
        iequals(k, "Date") || iequals(k, "Last-Modified") || iequals(k, "Content-Location"))
      out += k + ": " + v + "\r\n";
  }
  out += "Age: " + std::to_string(cache::currentAge(meta, now)) + "\r\n";
  out += "Cache-Status: " + cacheStatus_ + "\r\n";
  if (!req_.keepAlive) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

}  // namespace orchard::server
