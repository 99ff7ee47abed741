// The HTTP engine from the outside (issue 2 "HTTP engine"): keep-alive,
// pipelining, limits and malformed input, request bodies passed through,
// HEAD, the Apple probe, routing refusals, upstream failures and timeouts,
// upstream connection reuse and /metrics.
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace orchard::itest {
namespace {

bool contains(const std::optional<std::string>& v, std::string_view needle) {
  return v && v->find(needle) != std::string::npos;
}

// A port with nothing listening on it (bound once, then closed).
uint16_t closedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class HttpEngine : public ServerTest {};

TEST_F(HttpEngine, KeepAliveServesTwoRequestsOnOneConnection) {
  origin.script("/ka.bin", Script::generated(21, 200 * kKiB));
  TestClient c(port());
  ASSERT_TRUE(c.connected());
  ReadOptions o;
  o.expectSeed = 21;
  ASSERT_TRUE(c.send(get("/ka.bin")));
  Response r1 = c.read(o);
  EXPECT_EQ(r1.status, 200) << r1.describe();
  EXPECT_TRUE(r1.complete);
  EXPECT_EQ(r1.bodyLength, 200 * kKiB);
  EXPECT_FALSE(r1.eof);
  ASSERT_TRUE(c.send(get("/ka.bin")));
  Response r2 = c.read(o);
  EXPECT_EQ(r2.status, 200) << r2.describe();
  EXPECT_TRUE(r2.complete);
  EXPECT_EQ(r2.bodyLength, 200 * kKiB);
  EXPECT_FALSE(r2.mismatchAt.has_value());
  EXPECT_EQ(r2.header("Cache-Status").value_or(""), "orchard; hit");
  auto t = counters();
  EXPECT_EQ(t.connections_accepted, 1u);
  EXPECT_EQ(t.requests, 2u);
  EXPECT_EQ(origin.requests("/ka.bin"), 1);
}

TEST_F(HttpEngine, PipelinedRequestsAreAnsweredInOrder) {
  origin.script("/p1", Script::text("first answer"));
  origin.script("/p2", Script::text("the second, longer answer"));
  origin.script("/p3", Script::generated(22, 300 * kKiB));
  // Warm /p2 so the pipeline mixes a miss, a hit and a big miss.
  ASSERT_EQ(fetchGet("/p2").status, 200);

  TestClient c(port());
  ASSERT_TRUE(c.send(get("/p1") + get("/p2") + get("/p3")));  // one write
  Response r1 = c.read(), r2 = c.read();
  ReadOptions o;
  o.expectSeed = 22;
  Response r3 = c.read(o);
  EXPECT_EQ(r1.status, 200) << r1.describe();
  EXPECT_EQ(r1.body, "first answer");
  EXPECT_EQ(r2.status, 200) << r2.describe();
  EXPECT_EQ(r2.body, "the second, longer answer");
  EXPECT_EQ(r2.header("Cache-Status").value_or(""), "orchard; hit");
  EXPECT_EQ(r3.status, 200) << r3.describe();
  EXPECT_TRUE(r3.complete);
  EXPECT_EQ(r3.bodyLength, 300 * kKiB);
  EXPECT_FALSE(r3.mismatchAt.has_value());
  EXPECT_EQ(counters().connections_accepted, 2u);
}

// A request head over the limits (64 KiB, or 256 fields) is answered with
// 431 and Connection: close, counted as a bad request, and the connection
// closes (the codec, server/http/codec.cc, tells a limit from a syntax
// error). Reads are bounded to keep the suite fast if that regresses.
TEST_F(HttpEngine, RequestHeadOver64KiBIs431) {
  ReadOptions quick;
  quick.timeout = 2s;
  // One huge header...
  {
    TestClient c(port());
    std::string big = "X-Big: " + std::string(70 * 1024, 'a') + "\r\n";
    ASSERT_TRUE(c.send(get("/big", big)));
    Response r = c.read(quick);
    EXPECT_EQ(r.status, 431) << "KNOWN BUG: no answer to an oversized head (see comment)\n" << r.describe();
    EXPECT_EQ(r.header("Connection").value_or(""), "close");
    EXPECT_TRUE(c.waitClosed(2s)) << "connection not closed after 431";
  }
  // ...and many small ones adding up to more than 64 KiB.
  {
    TestClient c(port());
    std::string many;
    for (int i = 0; i < 100; ++i) many += "X-H" + std::to_string(i) + ": " + std::string(1000, 'b') + "\r\n";
    ASSERT_TRUE(c.send(get("/big", many)));
    Response r = c.read(quick);
    EXPECT_EQ(r.status, 431) << "KNOWN BUG: no answer to an oversized head (see comment)\n" << r.describe();
    EXPECT_TRUE(c.waitClosed(2s));
  }
  EXPECT_EQ(origin.totalRequests(), 0);
  EXPECT_EQ(counters().bad_requests, 2u);
}

// Same path as above: the 256-header cap in onHeaderField returns -1.
TEST_F(HttpEngine, TooManyHeadersGetAClearAnswer) {
  ReadOptions quick;
  quick.timeout = 2s;
  TestClient c(port());
  std::string many;
  for (int i = 0; i < 300; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  ASSERT_TRUE(c.send(get("/many", many)));
  Response r = c.read(quick);
  EXPECT_TRUE(r.status == 431 || r.status == 400) << "KNOWN BUG: no answer past 256 headers\n" << r.describe();
  EXPECT_TRUE(c.waitClosed(2s));
  EXPECT_EQ(origin.totalRequests(), 0);
}

TEST_F(HttpEngine, MalformedRequestIs400AndClose) {
  const std::vector<std::string> bad = {
      "NOT A REQUEST\r\n\r\n",                                    // bad request line
      "GET /x HTTP/1.1\r\nHost origin.test\r\n\r\n",             // header without colon
      "GET /x HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",  // conflicting lengths
  };
  for (const auto& raw : bad) {
    TestClient c(port());
    ASSERT_TRUE(c.send(raw));
    Response r = c.read();
    EXPECT_EQ(r.status, 400) << raw << "\n" << r.describe();
    EXPECT_EQ(r.header("Connection").value_or(""), "close") << raw;
    EXPECT_TRUE(c.waitClosed(5s)) << "connection not closed after 400 for: " << raw;
  }
  EXPECT_EQ(origin.totalRequests(), 0);
}

TEST_F(HttpEngine, PostWithContentLengthPassesThroughUncached) {
  Script echo;
  echo.echoRequestBody = true;
  origin.script("/upload", echo);
  const std::string payload = genString(23, 300 * kKiB + 5);
  for (int i = 0; i < 2; ++i) {
    TestClient c(port());
    ASSERT_TRUE(c.send(request("POST", "/upload", "origin.test",
                               "Content-Length: " + std::to_string(payload.size()) + "\r\n") +
                       payload));
    Response r = c.read();
    EXPECT_EQ(r.status, 200) << r.describe();
    EXPECT_TRUE(contains(r.header("Cache-Status"), "fwd=method")) << r.describe();
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.bodyLength, payload.size());
    EXPECT_TRUE(r.body == payload) << "echoed body differs";
  }
  auto seen = origin.received("/upload");
  ASSERT_EQ(seen.size(), 2u) << "a POST must never be answered from the cache";
  for (const auto& s : seen) {
    EXPECT_EQ(s.method, "POST");
    EXPECT_TRUE(s.bodyComplete);
    EXPECT_EQ(s.body.size(), payload.size());
    EXPECT_TRUE(s.body == payload) << "request body altered on the way";
  }
  EXPECT_EQ(storeStats().objects, 0u);
  EXPECT_EQ(counters().passes, 2u);
}

TEST_F(HttpEngine, PostWithChunkedBodyPassesThroughUncached) {
  Script echo;
  echo.echoRequestBody = true;
  origin.script("/upload-chunked", echo);
  const std::string payload = genString(24, 200 * kKiB + 3);
  std::string raw = request("POST", "/upload-chunked", "origin.test", "Transfer-Encoding: chunked\r\n");
  // Uneven chunks.
  size_t sizes[] = {1, 4096, 70000, 17};
  size_t off = 0, k = 0;
  while (off < payload.size()) {
    size_t n = std::min(sizes[k++ % 4], payload.size() - off);
    char len[24];
    std::snprintf(len, sizeof len, "%zx\r\n", n);
    raw += len;
    raw.append(payload, off, n);
    raw += "\r\n";
    off += n;
  }
  raw += "0\r\n\r\n";
  TestClient c(port());
  ASSERT_TRUE(c.send(raw));
  Response r = c.read();
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(contains(r.header("Cache-Status"), "fwd=method")) << r.describe();
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(r.body == payload);
  auto seen = origin.received("/upload-chunked");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].bodyComplete);
  EXPECT_EQ(seen[0].body.size(), payload.size());
  EXPECT_TRUE(seen[0].body == payload);
  // The connection stays usable after a streamed upload.
  origin.script("/after", Script::text("ok"));
  ASSERT_TRUE(c.send(get("/after")));
  Response r2 = c.read();
  EXPECT_EQ(r2.status, 200) << r2.describe();
  EXPECT_EQ(r2.body, "ok");
  EXPECT_EQ(storeStats().objects, 1u);  // only /after
}

TEST_F(HttpEngine, HeadMissPassesThroughHeadHitFromStore) {
  constexpr uint64_t kSize = 100 * kKiB;
  origin.script("/h.bin", Script::generated(25, kSize));
  TestClient c(port());
  ASSERT_TRUE(c.send(request("HEAD", "/h.bin")));
  ReadOptions head;
  head.headRequest = true;
  Response r1 = c.read(head);
  EXPECT_EQ(r1.status, 200) << r1.describe();
  EXPECT_EQ(r1.header("Content-Length").value_or(""), std::to_string(kSize));
  EXPECT_TRUE(contains(r1.header("Cache-Status"), "fwd=miss")) << r1.describe();
  auto seen = origin.received("/h.bin");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "HEAD");
  EXPECT_EQ(storeStats().objects, 0u);

  // No body bytes followed the HEAD answer: the next answer parses cleanly.
  ASSERT_TRUE(c.send(get("/h.bin")));
  ReadOptions o;
  o.expectSeed = 25;
  Response r2 = c.read(o);
  EXPECT_EQ(r2.status, 200) << r2.describe();
  EXPECT_TRUE(r2.complete);
  EXPECT_EQ(r2.bodyLength, kSize);
  EXPECT_FALSE(r2.mismatchAt.has_value());

  ASSERT_TRUE(c.send(request("HEAD", "/h.bin")));
  Response r3 = c.read(head);
  EXPECT_EQ(r3.status, 200) << r3.describe();
  EXPECT_EQ(r3.header("Cache-Status").value_or(""), "orchard; hit");
  EXPECT_EQ(r3.header("Content-Length").value_or(""), std::to_string(kSize));
  EXPECT_EQ(origin.requests("/h.bin"), 2);  // HEAD miss + GET; the HEAD hit stayed local
  // And still in sync.
  ASSERT_TRUE(c.send(get("/h.bin")));
  Response r4 = c.read(o);
  EXPECT_EQ(r4.status, 200) << r4.describe();
  EXPECT_EQ(r4.bodyLength, kSize);
}

TEST_F(HttpEngine, AppleProbeAnswers200WithAcceptRanges) {
  Response r = fetch(port(), request("GET", "/", "127.0.0.1", "Max-Forwards: 0\r\n"));
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.header("Accept-Ranges").value_or(""), "bytes");
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(origin.totalRequests(), 0);
}

TEST_F(HttpEngine, DisallowedHostIs403AndOriginSeesNothing) {
  origin.script("/x", Script::text("must not be fetched"));
  Response r1 = fetch(port(), request("GET", "/x", "evil.test"));
  EXPECT_EQ(r1.status, 403) << r1.describe();
  Response r2 = fetch(port(), request("GET", "http://evil.test/x", "evil.test"));
  EXPECT_EQ(r2.status, 403) << r2.describe();
  Response r3 = fetch(port(), request("GET", "/x?source=evil.test", "127.0.0.1"));
  EXPECT_EQ(r3.status, 403) << r3.describe();
  EXPECT_EQ(origin.totalRequests(), 0);
  EXPECT_EQ(origin.connectionsAccepted(), 0);
  EXPECT_EQ(counters().denied, 3u);
}

TEST_F(HttpEngine, AllThreeFormsShareOneStoredObject) {
  constexpr uint64_t kSize = 64 * kKiB;
  origin.script("/forms.bin", Script::generated(26, kSize));
  ReadOptions o;
  o.expectSeed = 26;
  Response r1 = fetch(port(), request("GET", "/forms.bin?source=origin.test", "127.0.0.1"), o);
  EXPECT_EQ(r1.status, 200) << r1.describe();
  EXPECT_EQ(r1.bodyLength, kSize);
  Response r2 = fetch(port(), get("/forms.bin"), o);
  EXPECT_EQ(r2.header("Cache-Status").value_or(""), "orchard; hit") << r2.describe();
  Response r3 = fetch(port(), request("GET", "http://origin.test/forms.bin", "origin.test"), o);
  EXPECT_EQ(r3.header("Cache-Status").value_or(""), "orchard; hit") << r3.describe();
  EXPECT_FALSE(r3.mismatchAt.has_value());
  EXPECT_EQ(origin.requests("/forms.bin"), 1);
  auto seen = origin.received("/forms.bin");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/forms.bin") << "source parameter leaked upstream";
}

TEST_F(HttpEngine, ChunkedOriginIsStoredAndHitHasContentLength) {
  constexpr uint64_t kSize = 1 * kMiB + 11;
  Script s = Script::generated(27, kSize);
  s.framing = Script::Framing::Chunked;
  s.chunkSize = 10000;
  origin.script("/chunked.bin", s);
  ReadOptions o;
  o.expectSeed = 27;
  Response r1 = fetchGet("/chunked.bin", o);
  EXPECT_EQ(r1.status, 200) << r1.describe();
  EXPECT_TRUE(r1.complete);
  EXPECT_EQ(r1.bodyLength, kSize);
  EXPECT_FALSE(r1.mismatchAt.has_value());
  Response r2 = fetchGet("/chunked.bin", o);
  EXPECT_EQ(r2.header("Cache-Status").value_or(""), "orchard; hit") << r2.describe();
  EXPECT_EQ(r2.header("Content-Length").value_or(""), std::to_string(kSize));
  EXPECT_EQ(r2.bodyLength, kSize);
  EXPECT_FALSE(r2.mismatchAt.has_value());
}

TEST_F(HttpEngine, OriginConnectRefusedIs502) {
  uint16_t dead = closedPort();
  restartServer([&](config::Config& c) {
    c.upstreamAllow.push_back("refused.test");
    c.upstreamResolve["refused.test"] = config::ListenAddress::parse("127.0.0.1:" + std::to_string(dead)).value();
  });
  Response r = fetch(port(), request("GET", "/x", "refused.test"));
  EXPECT_EQ(r.status, 502) << r.describe();
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(storeStats().objects, 0u);
  EXPECT_GE(counters().origin_errors, 1u);
}

TEST_F(HttpEngine, OriginReadTimeoutIs504) {
  restartServer([](config::Config& c) { c.readTimeoutMs = 500; });
  Script s = Script::text("too late");
  s.delayMs = 5000;
  origin.script("/slow-head", s);
  auto t0 = std::chrono::steady_clock::now();
  Response r = fetchGet("/slow-head");
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 504) << r.describe();
  EXPECT_LT(elapsed, 3s) << "the read timeout did not fire";
  EXPECT_GE(elapsed, 400ms);
  EXPECT_EQ(storeStats().objects, 0u);
}

TEST_F(HttpEngine, UpstreamKeepAliveReusesOneOriginConnection) {
  origin.script("/k1", Script::text("one"));
  origin.script("/k2", Script::text("two"));
  TestClient c(port());  // one client connection: both misses run on one worker's pool
  ASSERT_TRUE(c.send(get("/k1")));
  Response r1 = c.read();
  ASSERT_TRUE(c.send(get("/k2")));
  Response r2 = c.read();
  EXPECT_EQ(r1.body, "one") << r1.describe();
  EXPECT_EQ(r2.body, "two") << r2.describe();
  EXPECT_EQ(origin.totalRequests(), 2);
  EXPECT_EQ(origin.connectionsAccepted(), 1) << "the second miss did not reuse the pooled origin connection";
  auto seen = origin.allReceived();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].connection, seen[1].connection);
}

TEST_F(HttpEngine, MetricsReturnsPrometheusText) {
  origin.script("/m", Script::text("m"));
  ASSERT_EQ(fetchGet("/m").status, 200);
  Response r = fetch(port(), request("GET", "/metrics", "127.0.0.1:" + std::to_string(port())));
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(contains(r.header("Content-Type"), "text/plain")) << r.describe();
  EXPECT_NE(r.body.find("# TYPE orchard_requests_total counter"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\norchard_requests_total "), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\norchard_misses_total 1\n"), std::string::npos) << r.body;
  EXPECT_EQ(origin.requests("/metrics"), 0);
}

TEST_F(HttpEngine, ConnectionCloseRequestIsHonoured) {
  origin.script("/cc", Script::text("bye"));
  TestClient c(port());
  ASSERT_TRUE(c.send(get("/cc", "Connection: close\r\n")));
  Response r = c.read();
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.body, "bye");
  EXPECT_EQ(r.header("Connection").value_or(""), "close");
  EXPECT_TRUE(c.waitClosed(5s));
}

TEST_F(HttpEngine, Http10ClientGetsCloseDelimitedBodyForUnknownLength) {
  constexpr uint64_t kSize = 256 * kKiB + 1;
  Script s = Script::generated(28, kSize);
  s.framing = Script::Framing::Chunked;
  origin.script("/http10.bin", s);
  ReadOptions o;
  o.expectSeed = 28;
  Response r = fetch(port(), "GET /http10.bin HTTP/1.0\r\nHost: origin.test\r\n\r\n", o);
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_FALSE(r.hasHeader("Transfer-Encoding")) << "chunked sent to an HTTP/1.0 client";
  EXPECT_TRUE(r.complete) << r.describe();
  EXPECT_EQ(r.bodyLength, kSize);
  EXPECT_FALSE(r.mismatchAt.has_value());
}

TEST_F(HttpEngine, DrainLetsAnInFlightTransferFinish) {
  constexpr uint64_t kSize = 4 * kMiB;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(29, kSize);
  s.bodyGate = gate;
  s.gateAt = 1 * kMiB;
  origin.script("/drain.bin", s);
  ReadOptions o;
  o.expectSeed = 29;
  auto a = fetchAsync("/drain.bin", o);
  ASSERT_TRUE(origin.waitForRequests("/drain.bin", 1));
  uint16_t p = port();
  std::atomic<bool> drained{false};
  std::thread drainer([&] {
    server->drain(10000);
    drained = true;
  });
  // Listeners close: a new client cannot get in (probe an unscripted path so
  // a probe that still gets in is answered 404 at once instead of joining the fill).
  EXPECT_TRUE(waitFor([&] {
    TestClient c(p);
    if (!c.connected()) return true;
    c.send(get("/drain-probe"));
    return !c.read(ReadOptions{.timeout = 500ms}).headComplete;
  }));
  EXPECT_FALSE(drained.load()) << "drain returned with a transfer in flight";
  gate->open();
  Response r = await(a);
  drainer.join();
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(r.complete) << r.describe();
  EXPECT_EQ(r.bodyLength, kSize);
  EXPECT_FALSE(r.mismatchAt.has_value());
  EXPECT_TRUE(drained.load());
}

}  // namespace
}  // namespace orchard::itest
