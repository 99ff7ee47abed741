// TestClient: a blocking HTTP/1.1 client on a raw socket, for driving the
// in-process Server byte by byte.
//
// Requests are raw bytes (send()), so tests can pipeline, send malformed
// heads or huge headers. Responses are read with their own framing
// (content-length, chunked, or until close) and reported with whether the
// message ended cleanly: `complete` is true only when the framing says the
// body is whole. A body cut short by the server closing is `complete ==
// false`, which is what the read-while-write tests assert on origin
// failures.
//
// Bodies are hashed (FNV-1a 64) and optionally verified on the fly against
// the generated stream of TestOrigin (expectSeed), so an 8 MiB body never
// has to be kept; the first `keepBodyLimit` bytes are kept for small
// answers.
//
// Every read is bounded by a deadline (poll), so a server that hangs fails
// the test instead of hanging the suite. Not thread-safe: one thread per
// TestClient.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/integration/test_origin.h"

namespace orchard::itest {

struct ReadOptions {
  bool headRequest = false;            // the request was HEAD: no body follows the head
  size_t readSize = 64 * 1024;         // bytes per recv()
  int delayMsPerRead = 0;              // slow reader: sleep after each recv()
  std::optional<uint64_t> stopAfter;   // disconnect after this many body bytes
  size_t keepBodyLimit = 1 << 20;      // keep at most this many body bytes in Response::body
  std::optional<uint64_t> expectSeed;  // verify the body against genBytes(seed, offset)
  std::chrono::milliseconds timeout{15000};  // overall deadline for this response
  std::atomic<uint64_t>* progress = nullptr; // body bytes read so far (for tests that watch)
};

struct Response {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                     // first keepBodyLimit bytes
  uint64_t bodyLength = 0;              // body bytes received
  uint64_t bodyHash = kFnvInit;         // FNV-1a 64 of every body byte received
  std::optional<uint64_t> mismatchAt;   // first offset that differed from expectSeed
  bool headComplete = false;            // a whole status line + headers arrived
  bool complete = false;                // the framing ended cleanly (whole message)
  bool closeDelimited = false;          // body framed by the connection closing
  bool eof = false;                     // the server closed the connection
  bool timedOut = false;
  bool disconnected = false;            // we closed it (stopAfter)
  std::string error;                    // framing error text, if any

  std::optional<std::string> header(std::string_view name) const;
  bool hasHeader(std::string_view name) const { return header(name).has_value(); }
  // Helpful in assertion messages.
  std::string describe() const;
};

class TestClient {
 public:
  // Connects to 127.0.0.1:port. rcvbuf > 0 sets SO_RCVBUF before connecting
  // (small buffers make a slow reader push back on the server quickly).
  explicit TestClient(uint16_t port, int rcvbuf = 0);
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool send(std::string_view raw);
  Response read(const ReadOptions& opts = {});
  // Waits until the server closes the connection (EOF or reset). False on
  // timeout. Bytes that arrive meanwhile are appended to *extra if given.
  bool waitClosed(std::chrono::milliseconds timeout, std::string* extra = nullptr);
  void close();

 private:
  enum class Got { Data, Eof, Timeout };
  // Reads more into buf_ (at most `max` bytes) before the deadline.
  Got more(std::chrono::steady_clock::time_point deadline, size_t max);
  bool readLine(std::string* line, std::chrono::steady_clock::time_point deadline, Response* r);
  // Consumes up to n body bytes from buf_ (reading more if needed).
  void body(Response* r, const ReadOptions& opts, const char* data, size_t n);

  int fd_ = -1;
  std::string buf_;  // received, not yet consumed (pipelined responses stay here)
};

// "GET <target> HTTP/1.1\r\nHost: <host>\r\n<extra>\r\n".
std::string request(std::string_view method, std::string_view target, std::string_view host = "origin.test",
                    std::string_view extraHeaders = {});
inline std::string get(std::string_view target, std::string_view extra = {}) {
  return request("GET", target, "origin.test", extra);
}

// One request on a fresh connection.
Response fetch(uint16_t port, const std::string& raw, const ReadOptions& opts = {});

}  // namespace orchard::itest
