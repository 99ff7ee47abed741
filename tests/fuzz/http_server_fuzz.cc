// Fuzz target: HTTP request parsing and handling in a real, in-process
// Server (ClientConn's llhttp strict parser with its head limits, the
// router, transactions, the cache), fed raw bytes over a socket.
//
// Setup (once per process, as tests/integration/harness.h does): a
// TestOrigin on 127.0.0.1:0 with a few scripted paths, and a Server with one
// worker on 127.0.0.1:0, a fresh mkdtemp storage dir, upstream.allow =
// origin.test, upstream.resolve pointing origin.test at the TestOrigin (no
// input ever waits on DNS), and a 30 s idle timeout. Torn down at exit
// (drain, stop, remove the dir) so leak checking sees a clean shutdown.
//
// One input = the bytes one client sends on one connection. The input's
// hash picks how it is sent: normally all at once then a half-close
// (shutdown(SHUT_WR)), so every request either completes or ends at EOF and
// the server never has a reason to wait; 1 in 8 inputs are sent in three
// pieces; 1 in 8 are followed by an abortive close (RST) without reading.
//
// Invariants:
//   - the server answers or closes the connection within 5 s of the
//     half-close (no hang, no leaked connection it forgets to close);
//   - whatever it writes starts with a well-formed status line
//     ("HTTP/1.1 NNN ");
//   - every complete keep-alive GET/HEAD pipelined before the half-close is
//     answered (counted by parsing the input with llhttp as ClientConn does
//     and the answers with their framing; see checkPipelineAnswered for the
//     cases left out);
//   - afterwards it still serves: /api/v1/status answers 200 and a proxied
//     GET of origin.test/small answers 200 "hello" on a fresh connection;
//   - its open-connection count returns to 0 within 3 s (nothing leaked);
//   - and no sanitizer report, crash or assertion anywhere in the server.
// Seeds: corpus/http_server/*, raw requests (CRLF line ends). FUZZ_VERBOSE=1
// prints each answer (escaped) to stderr, for reading what a reproducer does.
#include <arpa/inet.h>
#include <llhttp.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "config/config.h"
#include "server/server.h"
#include "tests/fuzz/fuzz_server.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/integration/test_origin.h"

namespace {

using namespace orchard;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Env {
  itest::TestOrigin origin;
  fuzz::FuzzServer box;
};

Env* gEnv = nullptr;

void teardown() {
  if (!gEnv) return;
  gEnv->box.stop();
  gEnv->origin.stop();
  delete gEnv;
  gEnv = nullptr;
}

void scriptOrigin(itest::TestOrigin& o) {
  o.script("/small", itest::Script::text("hello"));
  o.script("/obj", itest::Script::generated(1, 5000));
  itest::Script big = itest::Script::generated(3, 200000);
  big.headers.push_back({"ETag", "\"big1\""});
  o.script("/big", big);
  itest::Script chunked = itest::Script::generated(2, 3000);
  chunked.framing = itest::Script::Framing::Chunked;
  chunked.chunkSize = 1000;
  o.script("/chunked", chunked);
  itest::Script close = itest::Script::text("close-delimited");
  close.framing = itest::Script::Framing::Close;
  o.script("/close", close);
  itest::Script vary = itest::Script::text("varies");
  vary.headers.push_back({"Vary", "Accept-Encoding, X-Fuzz"});
  o.script("/vary", vary);
  itest::Script etag = itest::Script::text("tagged");
  etag.headers = {{"Cache-Control", "max-age=0, must-revalidate"},
                  {"ETag", "\"e1\""},
                  {"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"}};
  o.script("/etag", etag);
  itest::Script nostore = itest::Script::text("private");
  nostore.headers = {{"Cache-Control", "no-store"}};
  o.script("/nostore", nostore);
  itest::Script redirect = itest::Script::text("");
  redirect.status = 301;
  redirect.reason = "Moved Permanently";
  redirect.headers.push_back({"Location", "http://origin.test/small"});
  o.script("/redirect", redirect);
  itest::Script echo = itest::Script::text("");
  echo.echoRequestBody = true;
  echo.headers = {{"Cache-Control", "no-store"}};
  o.script("/echo", echo);
}

void setup() {
  if (gEnv) return;
  ::signal(SIGPIPE, SIG_IGN);  // as orchardd's main() does
  log::setLevel(log::Level::Error);
  gEnv = new Env;
  FUZZ_CHECK(gEnv->origin.start(), "test origin failed to start");
  scriptOrigin(gEnv->origin);

  gEnv->box.start(gEnv->origin.port(), [](config::Config& c) {
    // Longer than the 5 s answer-or-close deadline, so a connection the
    // server forgets to close after the client's half-close is caught rather
    // than rescued by the idle timer.
    c.idleTimeoutMs = 30000;
    c.readTimeoutMs = 2000;
    c.connectTimeoutMs = 1000;
  });
  std::atexit(teardown);
}

int connectServer() { return gEnv->box.connect(); }

// Sends everything; false if the server closed or reset first (allowed: it
// may refuse a request before reading all of it).
bool sendAll(int fd, std::string_view d) {
  while (!d.empty()) {
    ssize_t w = ::send(fd, d.data(), d.size(), MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    d.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

// Reads until EOF or reset. False on timeout.
bool readToClose(int fd, std::string* out, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  char buf[64 * 1024];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;  // EOF, or reset (ECONNRESET): closed either way
    // Keep the start for checks; count the rest.
    if (out->size() < (1u << 20)) out->append(buf, static_cast<size_t>(n));
  }
}

using fuzz::fnv;
using fuzz::statusLineOk;

void checkStillServing(std::string_view input) {
  int fd = connectServer();
  const std::string req =
      "GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n"
      "GET /small HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n";
  std::string got;
  bool sent = sendAll(fd, req);
  bool closed = readToClose(fd, &got, 5s);
  ::close(fd);
  FUZZ_CHECK(sent && closed, "health check after the input: %s", sent ? "no answer within 5 s" : "send failed");
  size_t second = got.find("HTTP/1.1 ", 1);
  FUZZ_CHECK(got.rfind("HTTP/1.1 200 ", 0) == 0 && second != std::string::npos &&
                 got.compare(second, 13, "HTTP/1.1 200 ") == 0 && got.size() >= 5 &&
                 got.compare(got.size() - 5, 5, "hello") == 0,
             "server no longer serves well-formed requests after the input; it answered:\n%s",
             fuzz::escape(got, 600).c_str());
}

void checkNoOpenConnections() {
  const auto deadline = Clock::now() + 3s;
  while (gEnv->box.server->openConnections() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  FUZZ_CHECK(gEnv->box.server->openConnections() == 0, "%lld client connections still open 3 s after the client left",
             static_cast<long long>(gEnv->box.server->openConnections()));
}


// ---- pipelining: every complete request sent before the half-close is answered ----

struct SentRequest {
  std::string method;
  std::string target;
  bool keepAlive = true;
  bool body = false;
  bool upgrade = false;
};

// The requests the input holds, parsed as ClientConn parses them (llhttp,
// strict defaults), up to the first error or the first incomplete one.
std::vector<SentRequest> completeRequests(std::string_view input) {
  struct State {
    std::vector<SentRequest> done;
    SentRequest cur;
  } st;
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_begin = [](llhttp_t* p) {
    static_cast<State*>(p->data)->cur = SentRequest{};
    return 0;
  };
  settings.on_url = [](llhttp_t* p, const char* at, size_t n) {
    static_cast<State*>(p->data)->cur.target.append(at, n);
    return 0;
  };
  settings.on_headers_complete = [](llhttp_t* p) {
    auto& c = static_cast<State*>(p->data)->cur;
    c.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
    c.keepAlive = llhttp_should_keep_alive(p) != 0;
    c.body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
    c.upgrade = p->upgrade != 0;
    return 0;
  };
  settings.on_message_complete = [](llhttp_t* p) {
    auto* s = static_cast<State*>(p->data);
    s->done.push_back(s->cur);
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = &st;
  llhttp_execute(&parser, input.data(), input.size());
  return st.done;
}

struct Answers {
  size_t count = 0;         // final (non-1xx) responses
  bool connectionClose = false;
  bool serverError = false;  // a 5xx (an origin problem may end the connection)
};

// Walks the server's answers with their own framing; `reqs` says which
// answered a HEAD (no body).
Answers countAnswers(std::string_view s, const std::vector<SentRequest>& reqs) {
  Answers a;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find("\r\n\r\n", pos);
    if (end == std::string_view::npos || s.compare(pos, 9, "HTTP/1.1 ") != 0) break;
    std::string_view head = s.substr(pos, end - pos);
    pos = end + 4;
    int status = std::atoi(std::string(head.substr(9, 3)).c_str());
    uint64_t length = 0;
    bool hasLength = false, chunked = false;
    size_t line = head.find("\r\n");
    while (line != std::string_view::npos) {
      size_t next = head.find("\r\n", line + 2);
      std::string h(head.substr(line + 2, next == std::string_view::npos ? std::string_view::npos : next - line - 2));
      for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (h.rfind("content-length:", 0) == 0) hasLength = true, length = std::strtoull(h.c_str() + 15, nullptr, 10);
      if (h.rfind("transfer-encoding:", 0) == 0 && h.find("chunked") != std::string::npos) chunked = true;
      if (h.rfind("connection:", 0) == 0 && h.find("close") != std::string::npos) a.connectionClose = true;
      line = next;
    }
    if (status >= 100 && status < 200) continue;
    if (status >= 500) a.serverError = true;
    const bool headReq = a.count < reqs.size() && reqs[a.count].method == "HEAD";
    ++a.count;
    if (headReq || status == 204 || status == 304) continue;
    if (chunked) {
      while (true) {
        size_t eol = s.find("\r\n", pos);
        if (eol == std::string_view::npos) return a;
        uint64_t n = std::strtoull(std::string(s.substr(pos, eol - pos)).c_str(), nullptr, 16);
        pos = eol + 2;
        if (n == 0) {
          size_t t = s.find("\r\n\r\n", pos - 2);
          if (t == std::string_view::npos) return a;
          pos = t + 4;
          break;
        }
        pos += n + 2;
        if (pos > s.size()) return a;
      }
    } else if (hasLength) {
      pos += length;
    } else {
      break;  // close-delimited: the rest is its body
    }
  }
  return a;
}

// Requests a keep-alive client pipelined before its half-close must all be
// answered, in order, up to the first one that asks to close. Inputs where
// the server may rightly stop early are left out: bodies and unsafe methods
// (an upload may be refused early), upgrades, 5xx answers, close-delimited
// origin answers (/close), and answers that announce Connection: close.
void checkPipelineAnswered(std::string_view input, std::string_view got) {
  std::vector<SentRequest> reqs = completeRequests(input);
  size_t expected = 0;
  for (const auto& r : reqs) {
    if ((r.method != "GET" && r.method != "HEAD") || r.body || r.upgrade ||
        r.target.find("/close") != std::string::npos)
      return;
    ++expected;
    if (!r.keepAlive) break;
  }
  Answers a = countAnswers(got, reqs);
  if (a.connectionClose || a.serverError) return;
  // More answers than complete requests is fine: an incomplete upload may be
  // refused before its body ends. Fewer means a complete request was dropped.
  FUZZ_CHECK(a.count >= expected,
             "%zu complete pipelined request(s) sent before the half-close, %zu answered; the answers:\n%s", expected,
             a.count, fuzz::escape(got, 600).c_str());
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  setup();
  std::string_view input = fuzz::asView(data, size);
  const uint64_t h = fnv(input);
  const int mode = static_cast<int>(h % 8);  // 0: abortive close, 1: three pieces, else: one piece

  int fd = connectServer();
  bool sent = true;
  if (mode == 1 && size >= 3) {
    size_t a = static_cast<size_t>((h >> 8) % size), b = static_cast<size_t>((h >> 24) % size);
    if (a > b) std::swap(a, b);
    sent = sendAll(fd, input.substr(0, a)) && sendAll(fd, input.substr(a, b - a)) && sendAll(fd, input.substr(b));
  } else {
    sent = sendAll(fd, input);
  }
  if (mode == 0) {
    linger l{1, 0};  // RST on close
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
  } else {
    ::shutdown(fd, SHUT_WR);
    std::string got;
    bool closed = readToClose(fd, &got, 5s);
    ::close(fd);
    FUZZ_CHECK(closed, "the server neither closed nor finished within 5 s of the client's half-close "
                       "(sent=%d, %zu bytes answered so far: %s)",
               sent, got.size(), fuzz::escape(got, 300).c_str());
    if (std::getenv("FUZZ_VERBOSE")) std::fprintf(stderr, "answer: %s\n", fuzz::escape(got, 2000).c_str());
    if (!got.empty()) {
      FUZZ_CHECK(statusLineOk(got), "malformed status line in the answer: %s", fuzz::escape(got, 300).c_str());
    }
    if (sent) checkPipelineAnswered(input, got);
  }
  checkStillServing(input);
  checkNoOpenConnections();
  return 0;
}
