// BoxFetch: the box's own requests through its own proxy path (Apple's
// catalog, mirror and prewarm jobs, package imports). Each is an HTTP GET
// to one of the box's plain listeners on loopback in the content-cache form
// (/path?source=host[:port]&sourceScheme=https), so it is looked up,
// filled, coalesced with Macs asking for the same object, stored,
// revalidated and resumed exactly as a Mac's request would be: there is no
// second fetch path to keep in step with the first.
//
// The request carries `X-Orchard-Internal: <ServerContext::internalSecret>`
// (a random secret made at each start, never sent upstream): the box's own
// jobs are not subject to access.allow_clients, and with `capped` the fill
// it starts is held to apple.mirror_rate (lifted when a Mac joins it).
//
// libcurl (easy interface), blocking: call it from a job thread, never
// from a loop. Bodies stream to the caller's sink; nothing is buffered here.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"

namespace orchard::server {

struct ServerContext;

// curl_global_init, once per process (BoxFetch and the OS-version feed).
void curlGlobalInit();

struct BoxFetchOptions {
  bool capped = false;         // the fill this starts is a mirror fill (apple.mirror_rate)
  bool head = false;           // HEAD instead of GET
  uint64_t rangeFrom = 0;      // > 0: Range: bytes=<rangeFrom>-
  int64_t timeoutMs = 0;       // whole transfer; 0 = none (mirrors of 15 GB objects)
  int64_t stallMs = 120'000;   // give up when no byte arrived for this long
  // Polled about every 100 ms and between writes: true stops the transfer
  // (the result is then Errc::Closed, "box fetch: stopped").
  const std::atomic<bool>* stop = nullptr;
};

struct BoxFetchResult {
  int status = 0;                              // the box's answer (200, 206, 304, 404, 502, ...)
  uint64_t bodyBytes = 0;                      // bytes given to the sink
  std::map<std::string, std::string> headers;  // lower-case names, last value wins
  std::string cacheStatus;                     // the Cache-Status header
};

class BoxFetch {
 public:
  // Returns false to stop the transfer (the result is then Errc::Closed).
  using Sink = std::function<bool(const char* data, size_t n)>;

  explicit BoxFetch(const ServerContext* ctx) : ctx_(ctx) {}

  // The loopback URL for an origin URL ("https://swcdn.apple.com/a/b.pkg"):
  // Errc::Invalid when it is not an absolute http(s) URL; Errc::Busy
  // when the box has no plain listener bound (yet).
  Result<std::string> localUrl(std::string_view originUrl) const;

  // GETs `originUrl` through the box. A transport failure (the box did not
  // answer) is an error; any HTTP answer, 4xx and 5xx included, is a result
  // whose body went to `sink` (pass nullptr to drop it).
  Result<BoxFetchResult> get(std::string_view originUrl, const Sink& sink, const BoxFetchOptions& options = {}) const;

  // GETs a small document (a catalog, a .dist, a chunklist) into memory,
  // refusing more than maxBytes (Errc::NoSpace, "box fetch: larger than the
  // limit"); a status other than 200 is Errc::Protocol with the status in
  // *statusOut. *answer, when given, gets the answer's status and headers.
  // Without a timeout in `options` the transfer may take 2 minutes.
  Result<std::string> getSmall(std::string_view originUrl, uint64_t maxBytes, int* statusOut = nullptr,
                               const BoxFetchOptions& options = {}, BoxFetchResult* answer = nullptr) const;

  // The cache key text the box stores `originUrl` under (the router's own
  // normalisation, with the running snapshot's upstream.ignore_query and
  // scheme_in_key); Errc::Invalid when the URL is not one the box would
  // proxy (not http(s), or its host not in upstream.allow).
  Result<std::string> cacheKeyText(std::string_view originUrl) const;

 private:
  const ServerContext* ctx_;
};

}  // namespace orchard::server
