// TestOrigin: a scriptable HTTP/1.1 origin for the integration tests.
//
// Role: stands in for a CDN behind the in-process Server. It listens on
// 127.0.0.1:0 with plain blocking POSIX sockets and runs one std::thread per
// accepted connection. Tests register a Script per path (the request target
// up to '?') and afterwards assert on what the origin saw: requests per
// path, every request head and body, accepted connections.
//
// Lifecycle: TestOrigin() -> start() -> (serving on port()) -> stop().
// stop() is prompt: it shuts down the listening socket and every client
// socket, opens every Gate the scripts hold and interrupts delays, then
// joins all threads. It is idempotent and run by the destructor.
//
// Bodies are generated, never materialised: byte i of (seed, size) is
// genByte(seed, i), produced 64 KiB at a time, so an object of any size
// costs one block of memory.
//
// Threading: script() and the accessors may be called from any thread;
// the connection threads read scripts under the same mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace orchard::itest {

// ---- deterministic bodies ----

// Byte i of the stream named by seed: 8 bytes per 64-bit mix, so any offset
// error shows up as a mismatch.
inline uint64_t genWord(uint64_t seed, uint64_t word) {
  uint64_t x = word + 0x9E3779B97F4A7C15ull * (seed + 1);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
inline uint8_t genByte(uint64_t seed, uint64_t i) { return static_cast<uint8_t>(genWord(seed, i / 8) >> (8 * (i % 8))); }
// Fills out[0, n) with bytes [offset, offset + n) of the stream.
void genBytes(uint64_t seed, uint64_t offset, char* out, size_t n);
// The whole stream as a string (small sizes only).
std::string genString(uint64_t seed, uint64_t size);
// FNV-1a 64 of a byte range, incremental: h = fnv(h, data, n), start with kFnvInit.
constexpr uint64_t kFnvInit = 0xcbf29ce484222325ull;
uint64_t fnv(uint64_t h, const char* data, size_t n);
// FNV-1a 64 of the generated stream (seed, size).
uint64_t genHash(uint64_t seed, uint64_t size);

// ---- gates ----

// A one-shot barrier the test opens to let an origin response continue.
// wait() returns true once open, false on timeout; TestOrigin::stop() opens
// every gate so no connection thread hangs at teardown.
class Gate {
 public:
  void open() {
    {
      std::lock_guard<std::mutex> l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool isOpen() const {
    std::lock_guard<std::mutex> l(mu_);
    return open_;
  }
  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return open_; });
  }
  // How many connection threads reached wait() (tests poll it).
  int arrived() const { return arrived_.load(); }
  void noteArrival() { arrived_.fetch_add(1); }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::atomic<int> arrived_{0};
};

// ---- scripts ----

struct Script {
  int status = 200;
  std::string reason = "OK";
  // Extra response headers. By default explicit freshness, as a CDN sends,
  // so that a second request is a plain hit; tests of freshness replace it.
  std::vector<std::pair<std::string, std::string>> headers{{"Cache-Control", "max-age=3600"}};

  // Body: `literal` if set, else the generated stream (seed, size).
  std::optional<std::string> literal;
  uint64_t seed = 1;
  uint64_t size = 0;

  enum class Framing { ContentLength, Chunked, Close };
  Framing framing = Framing::ContentLength;
  size_t chunkSize = 64 * 1024;  // chunked: bytes per chunk (also the write size)

  int delayMs = 0;                        // before the status line
  std::shared_ptr<Gate> beforeHead;       // wait for it before the status line
  std::shared_ptr<Gate> bodyGate;         // wait for it once gateAt body bytes are sent
  uint64_t gateAt = 0;
  bool closeBeforeHead = false;           // read the request, then close without answering
  std::optional<uint64_t> abortAfter;     // close after this many body bytes (headers declare the full size)
  uint64_t bytesPerSecond = 0;            // 0: as fast as the socket takes it
  bool keepAlive = true;                  // false: "Connection: close" and close after the response
  bool echoRequestBody = false;           // literal body = the request body received

  // Convenience builders.
  static Script generated(uint64_t seed, uint64_t size) {
    Script s;
    s.seed = seed;
    s.size = size;
    return s;
  }
  static Script text(std::string body) {
    Script s;
    s.literal = std::move(body);
    return s;
  }
  uint64_t bodySize() const { return literal ? literal->size() : size; }
};

// What the origin received.
struct ReceivedRequest {
  std::string method;
  std::string target;
  std::string path;  // target up to '?'
  std::string head;  // the raw head, request line to the blank line
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;           // decoded request body (content-length or chunked)
  bool bodyComplete = true;   // the whole declared body arrived
  bool chunked = false;
  int connection = 0;         // index of the accepted connection it came on
  std::optional<std::string> header(const std::string& name) const;
};

class TestOrigin {
 public:
  TestOrigin() = default;
  ~TestOrigin() { stop(); }
  TestOrigin(const TestOrigin&) = delete;
  TestOrigin& operator=(const TestOrigin&) = delete;

  // Binds 127.0.0.1:0 and starts accepting. Returns false on failure.
  bool start();
  void stop();
  uint16_t port() const { return port_; }

  // Registers (or replaces) the script for `path` (target up to '?').
  // Paths without a script answer 404.
  void script(const std::string& path, Script s);

  int requests(const std::string& path) const;
  int totalRequests() const;
  int connectionsAccepted() const { return accepted_.load(); }
  // Responses whose body was sent to the end (not aborted, not cut by the peer).
  int responsesCompleted(const std::string& path) const;
  std::vector<ReceivedRequest> received(const std::string& path) const;
  std::vector<ReceivedRequest> allReceived() const;
  // Polls until requests(path) >= n or the timeout passes.
  bool waitForRequests(const std::string& path, int n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  bool waitForCompleted(const std::string& path, int n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

 private:
  struct Conn {
    int fd = -1;
    std::thread thread;
  };
  void acceptLoop();
  void serve(int fd, int index);
  // Returns false if the connection must close.
  bool respond(int fd, const ReceivedRequest& req, const Script& s);
  bool sendAll(int fd, const char* data, size_t n);
  // Sleeps up to ms; returns false if the origin is stopping.
  bool sleepFor(std::chrono::microseconds d);
  std::optional<Script> scriptFor(const std::string& path) const;

  int listenFd_ = -1;
  uint16_t port_ = 0;
  std::thread acceptThread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable stopCv_;
  std::map<std::string, Script> scripts_;
  std::map<std::string, int> requests_;
  std::map<std::string, int> completed_;
  std::vector<ReceivedRequest> received_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<int> openFds_;  // client sockets not closed yet (stop() shuts them down)
  std::vector<std::shared_ptr<Gate>> gates_;  // every gate ever scripted (stop() opens them)
};

}  // namespace orchard::itest
