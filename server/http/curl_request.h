// curlRequest(): one blocking HTTP request with libcurl, for the box's own
// threads that talk to a service beside the proxy path: Apple's OS-version
// feed (server/apple/os_feed.cc) and a hub's catalog API
// (server/catalog/follower.cc). Both want the same care, in one place:
//   - TLS verified (peer and name) against the system CAs plus an extra
//     PEM bundle for this request only (added to each connection's store);
//   - upstream.resolve honoured for the URL's host (CURLOPT_CONNECT_TO);
//   - no redirect followed, no proxy from the environment, http/https only;
//   - the body bounded (decoded bytes, whatever Content-Length says), and
//     the transfer abortable by a flag another thread sets.
// Not for the proxy's own fetches (those go through the event loops) nor
// for the box's fetches through its cache (server/apple/box_fetch.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/net.h"

namespace orchard::server {

struct CurlRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // sent when not empty
  std::string caFile;                // extra PEM CAs for this request; "" = the system's only
  std::string caFileKey;             // the config key it came from, for errors ("upstream.ca_file")
  std::map<std::string, config::ListenAddress> resolve;  // upstream.resolve
  int64_t connectTimeoutMs = 10'000;
  int64_t timeoutMs = 60'000;  // the whole transfer
  uint64_t maxBytes = 0;       // of the decoded body
  std::string userAgent = "orchard";
  const std::atomic<bool>* stop = nullptr;  // true: the transfer is aborted
};

struct CurlAnswer {
  int status = 0;       // 0 when no answer came
  std::string body;
  std::string error;    // a transport, TLS or CA-file failure, in words ("" otherwise)
  bool tooBig = false;  // the body passed maxBytes (error is set)
  bool stopped = false; // aborted by `stop` (error is set)
};

CurlAnswer curlRequest(const CurlRequest& req);

// The URL's host, lower case, without IPv6 brackets ("" when curl cannot
// parse the URL).
std::string curlUrlHost(const std::string& url);

}  // namespace orchard::server
