// Fuzz target: the upstream side. An origin answers with the input's bytes
// (any shape: framing, lengths, codings, 1xx, garbage), and a real,
// in-process Server parses them with its upstream llhttp parser and runs the
// fill behind it (store decision, block map, object file, commit).
//
// Setup (once per process): a raw origin thread on 127.0.0.1:0 that, for
// every connection, reads one request head, writes the current input as its
// answer (in one write, or for 1 input in 4 in two writes 5 ms apart) and
// closes; a Server with one worker on 127.0.0.1:0, a fresh mkdtemp storage
// dir, a 64 MiB cache, upstream.allow = origin.test resolved to the raw
// origin, a 1 s read timeout. Torn down at exit.
//
// One input = one origin answer. The client asks twice for a path of its
// own (/o<n>, so inputs never share an object), each time on a fresh
// connection with `Connection: close`, and reads until the box closes.
//
// Invariants:
//   - each answer arrives (or the connection closes) within 5 s;
//   - whatever the box writes starts with a well-formed status line;
//   - never a stored lie: when the second answer is a hit, the input was a
//     well-formed, complete response (strict llhttp, as the box parses it)
//     and the hit's body is exactly that response's body;
//   - afterwards the box still serves /api/v1/status, leaks no connection,
//     and its RSS stays under 2 GiB whatever length the input declared;
//   - no sanitizer report, crash or assertion.
// Seeds: corpus/upstream/*, raw responses (CRLF line ends).
#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/log.h"
#include "config/config.h"
#include "server/server.h"
#include "tests/fuzz/fuzz_server.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// The origin: answers every connection with the current input, then closes.
class RawOrigin {
 public:
  bool start() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0) return false;
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
    return true;
  }
  void stop() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  void set(std::string answer, bool split) {
    std::lock_guard<std::mutex> l(mu_);
    answer_ = std::move(answer);
    split_ = split;
  }

 private:
  void run() {
    while (!stopping_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stopping_) return;
        continue;
      }
      serve(c);
    }
  }
  void serve(int c) {
    std::string head;
    char buf[8192];
    const auto deadline = SteadyClock::now() + 2s;
    while (head.find("\r\n\r\n") == std::string::npos && SteadyClock::now() < deadline) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    std::string answer;
    bool split;
    {
      std::lock_guard<std::mutex> l(mu_);
      answer = answer_;
      split = split_;
    }
    auto sendAll = [c](std::string_view d) {
      while (!d.empty()) {
        ssize_t w = ::send(c, d.data(), d.size(), MSG_NOSIGNAL);
        if (w <= 0) return;
        d.remove_prefix(static_cast<size_t>(w));
      }
    };
    if (split && answer.size() > 1) {
      sendAll(std::string_view(answer).substr(0, answer.size() / 2));
      std::this_thread::sleep_for(5ms);
      sendAll(std::string_view(answer).substr(answer.size() / 2));
    } else {
      sendAll(answer);
    }
    ::shutdown(c, SHUT_WR);
    // Drain briefly so the close is a FIN, not a reset over unread bytes.
    pollfd p{c, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) (void)::recv(c, buf, sizeof buf, 0);
    ::close(c);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::string answer_;
  bool split_ = false;
};

struct Env {
  RawOrigin origin;
  fuzz::FuzzServer box;
  uint64_t n = 0;
};

Env* gEnv = nullptr;

void teardown() {
  if (!gEnv) return;
  gEnv->box.stop();
  gEnv->origin.stop();
  delete gEnv;
  gEnv = nullptr;
}

void setup() {
  if (gEnv) return;
  ::signal(SIGPIPE, SIG_IGN);
  log::setLevel(log::Level::Error);
  gEnv = new Env;
  FUZZ_CHECK(gEnv->origin.start(), "raw origin failed to start");
  gEnv->box.start(gEnv->origin.port(), [](config::Config& c) {
    c.cacheLimit = 64ull << 20;
    c.idleTimeoutMs = 30000;
    c.readTimeoutMs = 1000;
    c.connectTimeoutMs = 1000;
  });
  std::atexit(teardown);
}

int connectServer() { return gEnv->box.connect(); }

// Sends `req`, reads until the box closes. False on timeout.
bool exchange(const std::string& req, std::string* out) {
  int fd = connectServer();
  std::string_view d = req;
  while (!d.empty()) {
    ssize_t w = ::send(fd, d.data(), d.size(), MSG_NOSIGNAL);
    if (w <= 0) break;
    d.remove_prefix(static_cast<size_t>(w));
  }
  const auto deadline = SteadyClock::now() + 5s;
  char buf[64 * 1024];
  bool closed = false;
  while (SteadyClock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, 50);
    if (rc <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      closed = true;
      break;
    }
    if (out->size() < (4u << 20)) out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return closed;
}

using fuzz::statusLineOk;

// The input parsed as the box parses an origin's answer (strict llhttp):
// whether it holds one complete final response, and that response's body.
struct Parsed {
  bool complete = false;
  int status = 0;
  std::string body;
};

Parsed parseResponse(std::string_view input) {
  struct S {
    Parsed p;
    bool final = false;
  } s;
  llhttp_settings_t st;
  llhttp_settings_init(&st);
  st.on_headers_complete = [](llhttp_t* p) {
    auto* s = static_cast<S*>(p->data);
    s->final = p->status_code >= 200;
    if (s->final) s->p.status = p->status_code;
    return 0;
  };
  st.on_body = [](llhttp_t* p, const char* at, size_t n) {
    auto* s = static_cast<S*>(p->data);
    if (s->final && s->p.body.size() < (8u << 20)) s->p.body.append(at, n);
    return 0;
  };
  st.on_message_complete = [](llhttp_t* p) {
    auto* s = static_cast<S*>(p->data);
    if (!s->final) return 0;
    s->p.complete = true;
    return static_cast<int>(HPE_PAUSED);  // the box reads one answer per request
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &st);
  parser.data = &s;
  llhttp_errno_t e = llhttp_execute(&parser, input.data(), input.size());
  if (e == HPE_OK && !s.p.complete) llhttp_finish(&parser);  // close-delimited bodies end at EOF
  return s.p;
}

// Splits an answer into head and body (de-chunked when chunked). Good
// enough for answers the box itself framed.
std::string answerBody(std::string_view a) {
  size_t end = a.find("\r\n\r\n");
  if (end == std::string_view::npos) return {};
  std::string head(a.substr(0, end));
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = a.substr(end + 4);
  // A field line of its own (another field's value may contain the words).
  if (head.find("\r\ntransfer-encoding: chunked\r\n") == std::string::npos &&
      head.find("\r\ntransfer-encoding: chunked", head.size() - std::min<size_t>(head.size(), 28)) ==
          std::string::npos)
    return std::string(rest);
  std::string out;
  size_t pos = 0;
  while (pos < rest.size()) {
    size_t eol = rest.find("\r\n", pos);
    if (eol == std::string_view::npos) break;
    uint64_t n = std::strtoull(std::string(rest.substr(pos, eol - pos)).c_str(), nullptr, 16);
    pos = eol + 2;
    if (n == 0 || pos + n > rest.size()) break;
    out.append(rest.substr(pos, n));
    pos += n + 2;
  }
  return out;
}

size_t rssBytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

using fuzz::fnv;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  setup();
  std::string_view input = fuzz::asView(data, size);
  gEnv->origin.set(std::string(input), fnv(input) % 4 == 0);
  const std::string path = "/o" + std::to_string(++gEnv->n);
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n";

  std::string first, second;
  FUZZ_CHECK(exchange(req, &first), "no answer or close within 5 s to the first request (%zu bytes so far: %s)",
             first.size(), fuzz::escape(first, 300).c_str());
  if (!first.empty()) FUZZ_CHECK(statusLineOk(first), "malformed status line: %s", fuzz::escape(first, 300).c_str());
  FUZZ_CHECK(exchange(req, &second), "no answer or close within 5 s to the second request");
  if (!second.empty()) FUZZ_CHECK(statusLineOk(second), "malformed status line: %s", fuzz::escape(second, 300).c_str());

  size_t headEnd = second.find("\r\n\r\n");
  std::string head = second.substr(0, headEnd == std::string::npos ? second.size() : headEnd);
  if (head.find("Cache-Status: orchard; hit") != std::string::npos) {
    Parsed p = parseResponse(input);
    FUZZ_CHECK(p.complete, "a hit for an origin answer that was not one complete response:\n%s",
               fuzz::escape(input, 600).c_str());
    std::string got = answerBody(second);
    FUZZ_CHECK(second.rfind("HTTP/1.1 304", 0) == 0 || got == p.body,
               "the stored body differs from the origin's (%zu vs %zu bytes) for:\n%s", got.size(), p.body.size(),
               fuzz::escape(input, 600).c_str());
  }

  std::string status;
  const std::string sreq = "GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  FUZZ_CHECK(exchange(sreq, &status) && status.rfind("HTTP/1.1 200 ", 0) == 0,
             "the box no longer answers /api/v1/status after:\n%s", fuzz::escape(input, 600).c_str());
  const auto deadline = SteadyClock::now() + 3s;
  while (gEnv->box.server->openConnections() > 0 && SteadyClock::now() < deadline) std::this_thread::sleep_for(1ms);
  FUZZ_CHECK(gEnv->box.server->openConnections() == 0, "client connections still open 3 s after the client left");
  FUZZ_CHECK(rssBytes() < (2ull << 30), "RSS %zu bytes after:\n%s", rssBytes(), fuzz::escape(input, 600).c_str());
  return 0;
}
