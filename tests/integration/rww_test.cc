// The read-while-write matrix (STYLE.md "Tests", issue 2 "One origin fetch
// per object"): concurrent clients of one object share one origin fetch and
// stream it as it lands on disk; failures never pass a truncated body off
// as whole and never leave anything stored.
//
// Pattern of every concurrent case: the origin holds the response at a
// Gate (before the head, or after some body bytes); the test starts the
// leader, waits until the origin has the request, starts the followers,
// waits until the server counted them as collapsed onto the fill, then
// opens the gate. No fixed sleeps.
#include "tests/integration/harness.h"

namespace orchard::itest {
namespace {

// A whole, byte-exact generated body.
void expectWhole(const Response& r, uint64_t seed, uint64_t size, const char* who = "") {
  EXPECT_EQ(r.status, 200) << who << "\n" << r.describe();
  EXPECT_TRUE(r.complete) << who << "\n" << r.describe();
  EXPECT_EQ(r.bodyLength, size) << who;
  EXPECT_FALSE(r.mismatchAt.has_value()) << who << " first wrong byte at " << r.mismatchAt.value_or(0);
  EXPECT_EQ(r.bodyHash, genHash(seed, size)) << who;
}

bool contains(const std::optional<std::string>& v, std::string_view needle) {
  return v && v->find(needle) != std::string::npos;
}

ReadOptions verify(uint64_t seed) {
  ReadOptions o;
  o.expectSeed = seed;
  o.keepBodyLimit = 0;
  return o;
}

class ReadWhileWrite : public ServerTest {
 protected:
  void midBodyAbort(Script::Framing framing, const std::string& path);
};

TEST_F(ReadWhileWrite, NormalThreeClientsOneOriginFetch) {
  constexpr uint64_t kSeed = 11, kSize = 8 * kMiB;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(kSeed, kSize);
  s.headers = {{"ETag", "\"v1\""}, {"Cache-Control", "max-age=3600"}};
  s.bodyGate = gate;
  s.gateAt = 1 * kMiB;
  origin.script("/pkg/normal.bin", s);

  auto a = fetchAsync("/pkg/normal.bin", verify(kSeed));
  ASSERT_TRUE(origin.waitForRequests("/pkg/normal.bin", 1));
  auto b = fetchAsync("/pkg/normal.bin", verify(kSeed), "Range: bytes=0-99\r\n");
  auto c = fetchAsync("/pkg/normal.bin", verify(kSeed));
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 2; })) << "followers never attached to the fill";
  gate->open();

  Response ra = await(a), rb = await(b), rc = await(c);
  expectWhole(ra, kSeed, kSize, "leader");
  // A range follower gets its range from the growing file (bytes 0-99 of
  // the same generated stream), while the fill still fetches the whole.
  EXPECT_EQ(rb.status, 206) << rb.describe();
  EXPECT_EQ(rb.header("Content-Range").value_or(""), "bytes 0-99/" + std::to_string(kSize)) << rb.describe();
  EXPECT_EQ(rb.bodyLength, 100u);
  EXPECT_TRUE(rb.complete);
  EXPECT_FALSE(rb.mismatchAt.has_value());
  expectWhole(rc, kSeed, kSize, "follower 2");
  EXPECT_TRUE(contains(ra.header("Cache-Status"), "fwd=miss")) << ra.describe();
  EXPECT_TRUE(contains(rb.header("Cache-Status"), "collapsed")) << rb.describe();
  EXPECT_TRUE(contains(rc.header("Cache-Status"), "collapsed")) << rc.describe();

  EXPECT_EQ(origin.requests("/pkg/normal.bin"), 1);
  auto seen = origin.received("/pkg/normal.bin");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].header("Host").value_or(""), "origin.test");
  EXPECT_TRUE(contains(seen[0].header("Via"), "orchard")) << seen[0].head;
  EXPECT_FALSE(seen[0].header("Range").has_value()) << "a shared fill must fetch the whole object\n" << seen[0].head;

  auto t = counters();
  EXPECT_EQ(t.misses, 1u);
  EXPECT_EQ(t.collapsed, 2u);
  EXPECT_EQ(t.origin_requests, 1u);

  Response hit = fetchGet("/pkg/normal.bin", verify(kSeed));
  expectWhole(hit, kSeed, kSize, "hit");
  EXPECT_EQ(hit.header("Cache-Status").value_or(""), "orchard; hit") << hit.describe();
  EXPECT_TRUE(hit.hasHeader("Age"));
  EXPECT_EQ(hit.header("ETag").value_or(""), "\"v1\"");
  EXPECT_EQ(origin.requests("/pkg/normal.bin"), 1);
  EXPECT_EQ(storeStats().objects, 1u);
  EXPECT_EQ(storeStats().bytes, kSize);
}

TEST_F(ReadWhileWrite, OriginErrorBeforeHeadersAnswers502AndStoresNothing) {
  constexpr uint64_t kSeed = 12, kSize = 1 * kMiB;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(kSeed, kSize);
  s.beforeHead = gate;
  s.closeBeforeHead = true;
  origin.script("/pkg/nohead.bin", s);

  auto a = fetchAsync("/pkg/nohead.bin");
  ASSERT_TRUE(origin.waitForRequests("/pkg/nohead.bin", 1));
  auto b = fetchAsync("/pkg/nohead.bin");
  auto c = fetchAsync("/pkg/nohead.bin");
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 2; }));
  gate->open();

  for (auto* f : {&a, &b, &c}) {
    Response r = await(*f);
    EXPECT_EQ(r.status, 502) << r.describe();
    EXPECT_TRUE(r.complete) << "a 502 is a whole (small) answer\n" << r.describe();
  }
  EXPECT_EQ(origin.requests("/pkg/nohead.bin"), 1);
  EXPECT_TRUE(waitFor([&] { return fillsInFlight() == 0; }));
  EXPECT_EQ(storeStats().objects, 0u);
  EXPECT_GE(counters().origin_errors, 1u);

  // The failure is not remembered: the next request goes to the origin again.
  origin.script("/pkg/nohead.bin", Script::generated(kSeed, kSize));
  Response r = fetchGet("/pkg/nohead.bin", verify(kSeed));
  expectWhole(r, kSeed, kSize, "retry");
  EXPECT_TRUE(contains(r.header("Cache-Status"), "fwd=miss")) << r.describe();
  EXPECT_EQ(origin.requests("/pkg/nohead.bin"), 2);
}

// Origin closes mid-body: every client sees a broken message, nothing is stored.
void ReadWhileWrite::midBodyAbort(Script::Framing framing, const std::string& path) {
  constexpr uint64_t kSeed = 13, kSize = 4 * kMiB, kAbortAt = 2 * kMiB + 123;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(kSeed, kSize);
  s.framing = framing;
  s.bodyGate = gate;
  s.gateAt = 1 * kMiB;
  s.abortAfter = kAbortAt;
  origin.script(path, s);

  auto a = fetchAsync(path, verify(kSeed));
  ASSERT_TRUE(origin.waitForRequests(path, 1));
  auto b = fetchAsync(path, verify(kSeed));
  auto c = fetchAsync(path, verify(kSeed));
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 2; }));
  gate->open();

  uint64_t answered502 = 0;
  for (auto* f : {&a, &b, &c}) {
    Response r = await(*f);
    EXPECT_TRUE(r.headComplete) << r.describe();
    if (r.status == 502) {
      ++answered502;
      // A client whose response had not started when the fill failed gets a
      // clear error instead of a truncated body: also never a wrong "whole".
      EXPECT_TRUE(contains(r.header("Content-Type"), "json")) << r.describe();
      continue;
    }
    EXPECT_EQ(r.status, 200) << r.describe();
    EXPECT_FALSE(r.complete) << "a truncated body was passed off as whole\n" << r.describe();
    EXPECT_LE(r.bodyLength, kAbortAt);
    EXPECT_FALSE(r.mismatchAt.has_value()) << "wrong byte at " << r.mismatchAt.value_or(0);
    EXPECT_TRUE(r.eof) << r.describe();
  }
  EXPECT_EQ(origin.requests(path), 1);
  EXPECT_TRUE(waitFor([&] { return fillsInFlight() == 0; }));
  EXPECT_EQ(storeStats().objects, 0u);
  EXPECT_GE(counters().truncated_responses + answered502, 3u);

  // Next request: a fresh fill from the origin, never a hit on the broken bytes.
  origin.script(path, Script::generated(kSeed, kSize));
  Response r = fetchGet(path, verify(kSeed));
  expectWhole(r, kSeed, kSize, "refetch");
  EXPECT_TRUE(contains(r.header("Cache-Status"), "fwd=miss")) << r.describe();
  EXPECT_EQ(origin.requests(path), 2);
}

TEST_F(ReadWhileWrite, OriginErrorMidBodyContentLength) {
  midBodyAbort(Script::Framing::ContentLength, "/pkg/abort-cl.bin");
}

TEST_F(ReadWhileWrite, OriginErrorMidBodyChunked) {
  midBodyAbort(Script::Framing::Chunked, "/pkg/abort-chunked.bin");
}

TEST_F(ReadWhileWrite, FirstClientDisconnectsFillContinues) {
  constexpr uint64_t kSeed = 14, kSize = 8 * kMiB;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(kSeed, kSize);
  s.bodyGate = gate;
  s.gateAt = 2 * kMiB;
  origin.script("/pkg/leader-leaves.bin", s);

  ReadOptions leaderOpts = verify(kSeed);
  leaderOpts.stopAfter = 1 * kMiB;
  auto a = fetchAsync("/pkg/leader-leaves.bin", leaderOpts);
  ASSERT_TRUE(origin.waitForRequests("/pkg/leader-leaves.bin", 1));
  auto b = fetchAsync("/pkg/leader-leaves.bin", verify(kSeed));
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 1; }));

  // The leader reads 1 MiB (available: the origin sent 2 MiB) and hangs up.
  Response ra = await(a);
  EXPECT_TRUE(ra.disconnected) << ra.describe();
  EXPECT_EQ(ra.bodyLength, 1 * kMiB);
  EXPECT_FALSE(ra.mismatchAt.has_value());
  gate->open();

  Response rb = await(b);
  expectWhole(rb, kSeed, kSize, "follower");
  EXPECT_TRUE(waitFor([&] { return fillsInFlight() == 0; }));
  EXPECT_EQ(storeStats().objects, 1u);
  Response hit = fetchGet("/pkg/leader-leaves.bin", verify(kSeed));
  expectWhole(hit, kSeed, kSize, "hit");
  EXPECT_EQ(hit.header("Cache-Status").value_or(""), "orchard; hit");
  EXPECT_EQ(origin.requests("/pkg/leader-leaves.bin"), 1);
  EXPECT_TRUE(waitFor([&] { return counters().open_connections == 0; })) << "the leader's connection leaked";
}

TEST_F(ReadWhileWrite, FollowerDisconnectsOthersUnaffected) {
  constexpr uint64_t kSeed = 15, kSize = 8 * kMiB;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(kSeed, kSize);
  s.bodyGate = gate;
  s.gateAt = 2 * kMiB;
  origin.script("/pkg/follower-leaves.bin", s);

  auto a = fetchAsync("/pkg/follower-leaves.bin", verify(kSeed));
  ASSERT_TRUE(origin.waitForRequests("/pkg/follower-leaves.bin", 1));
  ReadOptions quitter = verify(kSeed);
  quitter.stopAfter = 1 * kMiB;
  auto b = fetchAsync("/pkg/follower-leaves.bin", quitter);
  auto c = fetchAsync("/pkg/follower-leaves.bin", verify(kSeed));
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 2; }));
  Response rb = await(b);
  EXPECT_TRUE(rb.disconnected) << rb.describe();
  EXPECT_EQ(rb.bodyLength, 1 * kMiB);
  gate->open();

  expectWhole(await(a), kSeed, kSize, "leader");
  expectWhole(await(c), kSeed, kSize, "other follower");
  EXPECT_TRUE(waitFor([&] { return fillsInFlight() == 0; }));
  EXPECT_EQ(storeStats().objects, 1u);
  Response hit = fetchGet("/pkg/follower-leaves.bin", verify(kSeed));
  EXPECT_EQ(hit.header("Cache-Status").value_or(""), "orchard; hit");
  expectWhole(hit, kSeed, kSize, "hit");
  EXPECT_EQ(origin.requests("/pkg/follower-leaves.bin"), 1);
  EXPECT_TRUE(waitFor([&] { return counters().open_connections == 0; }));
}

TEST_F(ReadWhileWrite, SlowFollowerDoesNotSlowTheFill) {
  constexpr uint64_t kSeed = 16, kSize = 8 * kMiB;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(kSeed, kSize);
  s.bodyGate = gate;
  s.gateAt = 1 * kMiB;
  origin.script("/pkg/slow.bin", s);

  auto fast = fetchAsync("/pkg/slow.bin", verify(kSeed));
  ASSERT_TRUE(origin.waitForRequests("/pkg/slow.bin", 1));

  // ~3 MB/s through a 64 KiB receive buffer: about 2.7 s for 8 MiB.
  std::atomic<uint64_t> slowProgress{0};
  std::atomic<bool> slowDone{false};
  uint16_t p = port();
  auto slow = std::async(std::launch::async, [&, p] {
    TestClient c(p, 64 * 1024);
    c.send(get("/pkg/slow.bin"));
    ReadOptions o = verify(kSeed);
    o.readSize = 16 * 1024;
    o.delayMsPerRead = 5;
    o.progress = &slowProgress;
    Response r = c.read(o);
    slowDone = true;
    return r;
  });
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 1; }));
  gate->open();

  expectWhole(await(fast), kSeed, kSize, "fast client");
  // The fill runs at origin speed: the origin finished and the object is a
  // stored hit while the slow reader is still far from the end.
  ASSERT_TRUE(waitFor([&] { return storeStats().objects == 1; }, 10s));
  EXPECT_TRUE(origin.responsesCompleted("/pkg/slow.bin") == 1);
  uint64_t progressAtCommit = slowProgress.load();
  EXPECT_FALSE(slowDone.load()) << "the slow client finished before the fill was stored";
  EXPECT_LT(progressAtCommit, kSize);
  Response hit = fetchGet("/pkg/slow.bin", verify(kSeed));
  EXPECT_EQ(hit.header("Cache-Status").value_or(""), "orchard; hit");
  expectWhole(hit, kSeed, kSize, "hit during slow read");
  EXPECT_FALSE(slowDone.load()) << "(the hit should have been served while the slow client was still reading)";

  Response rs = await(slow, 20s);
  expectWhole(rs, kSeed, kSize, "slow follower");
  EXPECT_EQ(origin.requests("/pkg/slow.bin"), 1);
}

TEST_F(ReadWhileWrite, UncacheableResponseEachClientGetsItsOwn) {
  constexpr uint64_t kSeed = 17, kSize = 1 * kMiB + 7;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(kSeed, kSize);
  s.headers = {{"Cache-Control", "no-store"}};
  s.beforeHead = gate;
  origin.script("/pkg/nostore.bin", s);

  auto a = fetchAsync("/pkg/nostore.bin", verify(kSeed));
  ASSERT_TRUE(origin.waitForRequests("/pkg/nostore.bin", 1));
  auto b = fetchAsync("/pkg/nostore.bin", verify(kSeed));
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 1; }));
  gate->open();

  Response ra = await(a), rb = await(b);
  expectWhole(ra, kSeed, kSize, "leader");
  expectWhole(rb, kSeed, kSize, "follower");
  EXPECT_FALSE(contains(ra.header("Cache-Status"), "stored")) << ra.describe();
  EXPECT_FALSE(contains(rb.header("Cache-Status"), "stored")) << rb.describe();
  EXPECT_EQ(ra.header("Cache-Control").value_or(""), "no-store");
  EXPECT_EQ(origin.requests("/pkg/nostore.bin"), 2) << "the follower must fetch its own copy";
  EXPECT_TRUE(waitFor([&] { return fillsInFlight() == 0; }));
  EXPECT_EQ(storeStats().objects, 0u);

  Response rc = fetchGet("/pkg/nostore.bin", verify(kSeed));
  expectWhole(rc, kSeed, kSize, "third");
  EXPECT_NE(rc.header("Cache-Status").value_or(""), "orchard; hit");
  EXPECT_EQ(origin.requests("/pkg/nostore.bin"), 3);
}

TEST_F(ReadWhileWrite, FollowersArrivingAfterCompletionAreHits) {
  constexpr uint64_t kSeed = 18, kSize = 3 * kMiB;
  origin.script("/pkg/after.bin", Script::generated(kSeed, kSize));
  expectWhole(fetchGet("/pkg/after.bin", verify(kSeed)), kSeed, kSize, "first");

  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 3; ++i) fs.push_back(fetchAsync("/pkg/after.bin", verify(kSeed)));
  for (auto& f : fs) {
    Response r = await(f);
    expectWhole(r, kSeed, kSize, "late");
    EXPECT_EQ(r.header("Cache-Status").value_or(""), "orchard; hit") << r.describe();
    EXPECT_EQ(r.header("Content-Length").value_or(""), std::to_string(kSize));
  }
  EXPECT_EQ(origin.requests("/pkg/after.bin"), 1);
  EXPECT_EQ(counters().hits, 3u);
}

}  // namespace
}  // namespace orchard::itest

namespace orchard::itest {
namespace {

// Vary follower: a request that joined a fill before its head was known,
// and selects another variant than the leader, must not receive the
// leader's variant: it fetches its own (and both variants are then stored).
TEST_F(ReadWhileWrite, VaryFollowerWithAnotherVariantFetchesItsOwn) {
  constexpr uint64_t kSeed = 21, kSize = 2 * kMiB;
  auto gate = std::make_shared<Gate>();
  Script s = Script::generated(kSeed, kSize);
  s.headers = {{"Cache-Control", "max-age=3600"}, {"Vary", "Accept-Language"}};
  s.beforeHead = gate;
  origin.script("/pkg/vary.bin", s);

  auto a = fetchAsync("/pkg/vary.bin", verify(kSeed), "Accept-Language: en\r\n");
  ASSERT_TRUE(origin.waitForRequests("/pkg/vary.bin", 1));
  auto b = fetchAsync("/pkg/vary.bin", verify(kSeed), "Accept-Language: fr\r\n");
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 1; }));
  gate->open();

  Response ra = await(a), rb = await(b);
  expectWhole(ra, kSeed, kSize, "leader (en)");
  expectWhole(rb, kSeed, kSize, "follower (fr)");
  // The follower went to the origin with its own Accept-Language.
  auto seen = origin.received("/pkg/vary.bin");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].header("Accept-Language").value_or(""), "en");
  EXPECT_EQ(seen[1].header("Accept-Language").value_or(""), "fr");
  // Each language is now a hit on its own variant; a third one is a miss.
  Response en = fetchGet("/pkg/vary.bin", verify(kSeed), "Accept-Language: en\r\n");
  Response fr = fetchGet("/pkg/vary.bin", verify(kSeed), "Accept-Language: fr\r\n");
  EXPECT_EQ(en.header("Cache-Status").value_or(""), "orchard; hit") << en.describe();
  EXPECT_EQ(fr.header("Cache-Status").value_or(""), "orchard; hit") << fr.describe();
  EXPECT_EQ(origin.requests("/pkg/vary.bin"), 2);
  Response de = fetchGet("/pkg/vary.bin", verify(kSeed), "Accept-Language: de\r\n");
  EXPECT_TRUE(contains(de.header("Cache-Status"), "fwd=miss")) << de.describe();
  EXPECT_EQ(origin.requests("/pkg/vary.bin"), 3);
}

// Follower wait timeout: the origin sends the head and some bytes, then
// stalls. Leader and follower are waiting on the fill; when the upstream
// read timeout fires, both see their responses end uncleanly (never a
// complete-looking body), promptly, and nothing is stored.
TEST_F(ReadWhileWrite, StalledOriginEndsEveryWaitingReaderAtTheReadTimeout) {
  restartServer([](config::Config& c) { c.readTimeoutMs = 700; });
  constexpr uint64_t kSeed = 22, kSize = 4 * kMiB;
  auto gate = std::make_shared<Gate>();  // never opened: the origin stalls mid-body
  Script s = Script::generated(kSeed, kSize);
  s.bodyGate = gate;
  s.gateAt = 1 * kMiB;
  origin.script("/pkg/stall.bin", s);

  auto t0 = std::chrono::steady_clock::now();
  auto a = fetchAsync("/pkg/stall.bin", verify(kSeed));
  ASSERT_TRUE(origin.waitForRequests("/pkg/stall.bin", 1));
  auto b = fetchAsync("/pkg/stall.bin", verify(kSeed));
  ASSERT_TRUE(waitFor([&] { return counters().collapsed >= 1; }));
  Response ra = await(a), rb = await(b);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  for (const Response* r : {&ra, &rb}) {
    EXPECT_FALSE(r->complete) << "a stalled fill was passed off as whole\n" << r->describe();
    EXPECT_LE(r->bodyLength, 1 * kMiB);
    EXPECT_FALSE(r->mismatchAt.has_value());
  }
  EXPECT_LT(elapsed, std::chrono::seconds(5)) << "readers waited past the read timeout";
  gate->open();
  EXPECT_TRUE(waitFor([&] { return fillsInFlight() == 0; }));
  EXPECT_EQ(storeStats().objects, 0u);
}

}  // namespace
}  // namespace orchard::itest
