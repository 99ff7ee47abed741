// Http: orchardctl's one HTTP client, a thin owner of a libcurl easy handle.
//
// Every request goes to `baseUrl` + a path the caller has already escaped
// (escape() percent-encodes one path segment or query value). The bearer
// token, when there is one, rides on every request. An answer is a Reply:
// either the box answered (any status, with its body) or the transfer
// failed (cannot connect, reset, timeout), in which case `failure` holds
// "<base URL>: <why, in plain words>" ("http://10.0.0.5:8080: connection
// refused") and `status` is 0.
//
// Uploads stream from a FILE* through CURLOPT_READFUNCTION with the size
// given up front (Content-Length), and send `Expect: 100-continue` so the box
// can refuse from the head before a byte of body is sent. `onProgress` is
// called from inside the transfer with (bytes sent, total); it only draws.
//
// Single-threaded: one Http per process, used from main's thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace orchard::ctl {

struct Reply {
  long status = 0;        // HTTP status of the final answer; 0 on a transport failure
  std::string body;       // the answer's body as received
  std::string failure;    // non-empty: the transfer failed (curl's message + URL)

  bool transportOk() const { return failure.empty(); }
  bool success() const { return transportOk() && status >= 200 && status <= 299; }
};

using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;
using Headers = std::vector<std::pair<std::string, std::string>>;

class Http {
 public:
  Http(std::string baseUrl, std::string token);
  ~Http();
  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;

  // Percent-encodes one path segment or query value (every byte that is
  // not an RFC 3986 unreserved character).
  std::string escape(const std::string& raw) const;

  Reply get(const std::string& path);
  Reply del(const std::string& path);
  // POST a small JSON body held in memory (empty: no body).
  Reply postJson(const std::string& path, const std::string& body);
  // PUT a small JSON body held in memory (a prewarm list).
  Reply putJson(const std::string& path, const std::string& body);
  // PUT `size` bytes read from `file` (positioned at its start).
  Reply putFile(const std::string& path, std::FILE* file, uint64_t size, const Headers& extra,
                const ProgressFn& onProgress);

  const std::string& baseUrl() const { return baseUrl_; }
  // A bound on each whole request (0: none, the default; uploads have
  // none). `top` and `doctor` set a few seconds so a box that accepts and
  // never answers cannot hang them.
  void setTimeoutMs(long ms) { timeoutMs_ = ms; }

 private:
  Reply perform(const std::string& method, const std::string& path, const Headers& extra);
  Reply sendJson(const char* method, const std::string& path, const std::string& body);

  std::string baseUrl_;  // no trailing slash
  std::string token_;    // empty: no Authorization header
  void* curl_;           // CURL*: kept opaque so callers need no curl headers
  long timeoutMs_ = 0;
};

}  // namespace orchard::ctl
