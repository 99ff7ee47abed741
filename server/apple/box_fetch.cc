#include "server/apple/box_fetch.h"

#include <curl/curl.h>

#include <chrono>
#include <mutex>

#include "catalog/apple/sucatalog.h"
#include "common/ascii.h"
#include "common/log.h"
#include "server/context.h"
#include "server/proxy/router.h"

namespace orchard::server {

namespace {

constexpr const char* kInternalHeader = "X-Orchard-Internal";

struct Transfer {
  const BoxFetch::Sink* sink = nullptr;
  BoxFetchResult* result = nullptr;
  const std::atomic<bool>* stop = nullptr;
  bool sinkStopped = false;
};

size_t onHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  std::string_view line(data, len);
  if (line.rfind("HTTP/", 0) == 0) {
    t->result->headers.clear();  // an interim answer's headers are not the final one's
    return len;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(asciiLower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.remove_suffix(1);
  if (t->result->headers.size() < 128) t->result->headers[name] = std::string(value);
  return len;
}

size_t onBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (t->stop && t->stop->load(std::memory_order_relaxed)) return 0;
  if (t->sink && *t->sink && !(*t->sink)(data, len)) {
    t->sinkStopped = true;
    return 0;
  }
  t->result->bodyBytes += len;
  return len;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->stop && t->stop->load(std::memory_order_relaxed) ? 1 : 0;
}

}  // namespace

void curlGlobalInit() {
  static const bool once = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  if (!once) OLOG_WARN("libcurl did not initialise: the box cannot fetch for itself");
}

Result<std::string> BoxFetch::localUrl(std::string_view originUrl) const {
  const BoundListener* plain = nullptr;
  for (const BoundListener& l : ctx_->listeners)
    if (!l.tls) {
      plain = &l;
      break;
    }
  if (!plain) return Error{Errc::Busy, 0, "box fetch: the box has no plain HTTP listener bound"};
  std::string host = plain->host;
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  else if (host == "::") host = "[::1]";
  else if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  // The same content-cache form the rewritten sucatalog hands to tools.
  auto url = catalog::apple::contentCacheUrl("http://" + host + ":" + std::to_string(plain->port), originUrl);
  if (!url) return Error{Errc::Invalid, 0, "box fetch: not an absolute http(s) URL"};
  return std::move(*url);
}

Result<std::string> BoxFetch::cacheKeyText(std::string_view originUrl) const {
  // The very target get() sends, keyed by the router as that request is.
  auto target = catalog::apple::contentCacheUrl("", originUrl);
  if (!target) return Error{Errc::Invalid, 0, "box fetch: not an absolute http(s) URL"};
  if (!ctx_->control) return Error{Errc::Busy, 0, "box fetch: no running configuration"};
  auto snap = ctx_->control->snapshot();
  RouteInput in;
  in.method = "GET";
  in.target = *target;
  Route r = route(in, snap->router);
  if (r.kind != Route::Kind::Proxy) return Error{Errc::Invalid, 0, "box fetch: the URL's host is not in upstream.allow"};
  return r.keyText;
}

Result<BoxFetchResult> BoxFetch::get(std::string_view originUrl, const Sink& sink,
                                     const BoxFetchOptions& options) const {
  auto url = localUrl(originUrl);
  if (!url) return url.error();
  curlGlobalInit();
  CURL* c = curl_easy_init();
  if (!c) return Error{Errc::Io, 0, "box fetch: curl_easy_init failed"};
  BoxFetchResult result;
  Transfer t;
  t.sink = &sink;
  t.result = &result;
  t.stop = options.stop;
  struct curl_slist* hdrs = nullptr;
  std::string marker = std::string(kInternalHeader) + ": " + ctx_->internalSecret + (options.capped ? "; capped" : "");
  hdrs = curl_slist_append(hdrs, marker.c_str());
  hdrs = curl_slist_append(hdrs, "Accept-Encoding: identity");
  std::string range;
  if (options.rangeFrom > 0) {
    range = std::to_string(options.rangeFrom) + "-";
    curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  }
  curl_easy_setopt(c, CURLOPT_URL, url->c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROXY, "");  // never through an environment proxy: this is loopback
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &onHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &onBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &onProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10'000L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "orchardd (box fetch)");
  if (options.head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (options.timeoutMs > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeoutMs));
  if (options.stallMs > 0) {
    // Below 1 byte/s for stallMs: the box (or its origin) stopped sending.
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>((options.stallMs + 999) / 1000));
  }
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(c);
  result.status = static_cast<int>(status);
  if (auto it = result.headers.find("cache-status"); it != result.headers.end()) result.cacheStatus = it->second;
  if (rc == CURLE_OK) return result;
  if (options.stop && options.stop->load(std::memory_order_relaxed))
    return Error{Errc::Closed, 0, "box fetch: stopped"};
  if (t.sinkStopped) return Error{Errc::Closed, 0, "box fetch: the reader stopped"};
  if (rc == CURLE_OPERATION_TIMEDOUT) return Error{Errc::Timeout, 0, "box fetch: timed out or stalled"};
  if (rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)
    return Error{Errc::Protocol, static_cast<int>(rc), "box fetch: the answer ended early"};
  if (rc == CURLE_COULDNT_CONNECT) return Error{Errc::Closed, static_cast<int>(rc), "box fetch: cannot connect to the box"};
  return Error{Errc::Io, static_cast<int>(rc), "box fetch: transfer failed"};
}

Result<std::string> BoxFetch::getSmall(std::string_view originUrl, uint64_t maxBytes, int* statusOut,
                                       const BoxFetchOptions& options, BoxFetchResult* answer) const {
  std::string body;
  bool tooBig = false;
  Sink sink = [&](const char* d, size_t n) {
    if (body.size() + n > maxBytes) {
      tooBig = true;
      return false;
    }
    body.append(d, n);
    return true;
  };
  BoxFetchOptions o = options;
  if (o.timeoutMs == 0) o.timeoutMs = 120'000;
  auto r = get(originUrl, sink, o);
  if (tooBig) return Error{Errc::NoSpace, 0, "box fetch: larger than the limit"};
  if (!r) return r.error();
  if (statusOut) *statusOut = r->status;
  if (answer) *answer = *r;
  if (r->status != 200) return Error{Errc::Protocol, r->status, "box fetch: the box did not answer 200"};
  return body;
}

}  // namespace orchard::server
