// Large bodies over every send path of the body sender (issue 9, "many large
// downloads at line rate"): copy (pread + write: the default, and the path
// TLS will take), sendfile and splice, and a kernel path that
// fails with EINVAL (a file system without sendfile), which must fall back
// to copying without losing or repeating a byte. Each case checks every
// byte against the origin's generated stream (offset-exact, plus a hash of
// the whole body): whole hits, ranges, a multipart range, a fill in
// progress read by a follower, a slow reader with a 4 KiB receive buffer
// (the socket fills: the wait-for-writable path), and the send timeout of a
// client that stops reading.
#include "server/net/tcp_stream.h"
#include "tests/integration/harness.h"

namespace orchard::itest {
namespace {

using FilePath = server::TcpStream::FilePath;

constexpr uint64_t kSeed = 41;
constexpr uint64_t kSize = 24 * kMiB + 123;  // not a multiple of the 1 MiB block or a buffer

ReadOptions verify(uint64_t seed, std::chrono::milliseconds timeout = 30s) {
  ReadOptions o;
  o.expectSeed = seed;
  o.keepBodyLimit = 0;
  o.timeout = timeout;
  return o;
}

void expectWhole(const Response& r, uint64_t seed, uint64_t size, const char* who) {
  EXPECT_EQ(r.status, 200) << who << "\n" << r.describe();
  EXPECT_TRUE(r.complete) << who << "\n" << r.describe();
  EXPECT_EQ(r.bodyLength, size) << who;
  EXPECT_FALSE(r.mismatchAt.has_value()) << who << ": first wrong byte at " << r.mismatchAt.value_or(0);
  EXPECT_EQ(r.bodyHash, genHash(seed, size)) << who;
}

// FNV-1a of bytes [first, first + n) of the generated stream.
uint64_t rangeHash(uint64_t seed, uint64_t first, uint64_t n) {
  std::vector<char> buf(1 << 20);
  uint64_t h = kFnvInit;
  for (uint64_t off = 0; off < n;) {
    size_t k = static_cast<size_t>(std::min<uint64_t>(buf.size(), n - off));
    genBytes(seed, first + off, buf.data(), k);
    h = fnv(h, buf.data(), k);
    off += k;
  }
  return h;
}

std::string pathName(FilePath p) {
  switch (p) {
    case FilePath::Sendfile: return "Sendfile";
    case FilePath::Splice: return "Splice";
    case FilePath::Copy: return "Copy";
    case FilePath::Einval: return "EinvalFallsBackToCopy";
  }
  return "?";
}

class LargeSend : public ServerTest, public ::testing::WithParamInterface<FilePath> {
 protected:
  void SetUp() override {
    server::TcpStream::setFilePath(GetParam());
    ServerTest::SetUp();
  }
  void TearDown() override {
    ServerTest::TearDown();
    server::TcpStream::setFilePath(server::TcpStream::kDefaultFilePath);
  }
  bool kernel() const { return GetParam() == FilePath::Sendfile || GetParam() == FilePath::Splice; }

  // Stores /big (a miss that fills it) and checks the fill's bytes.
  void storeBig() {
    origin.script("/big", Script::generated(kSeed, kSize));
    expectWhole(fetchGet("/big", verify(kSeed)), kSeed, kSize, "miss");
    ASSERT_TRUE(waitFor([&] { return storeStats().objects >= 1; }));
  }

  // The counters say which path the hits took.
  void expectPathUsed() {
    auto c = counters();
    if (kernel()) {
      EXPECT_GT(c.bytes_kernel_path, 0u);
    } else {
      EXPECT_EQ(c.bytes_kernel_path, 0u);
    }
    if (GetParam() == FilePath::Einval) {
      EXPECT_GT(c.kernel_path_fallbacks, 0u);
    } else {
      EXPECT_EQ(c.kernel_path_fallbacks, 0u);
    }
  }
};

TEST_P(LargeSend, WholeHitsAndRangesAreByteExact) {
  storeBig();
  expectWhole(fetchGet("/big", verify(kSeed)), kSeed, kSize, "hit");
  expectWhole(fetchGet("/big", verify(kSeed)), kSeed, kSize, "second hit");
  EXPECT_GE(counters().hits, 2u);

  // A range that starts and ends inside blocks, long enough for the kernel path.
  const uint64_t first = 3 * kMiB + 5, last = 20 * kMiB + 7;
  ReadOptions o;
  o.keepBodyLimit = 0;
  o.timeout = 30s;
  Response r = fetchGet("/big", o, "Range: bytes=" + std::to_string(first) + "-" + std::to_string(last) + "\r\n");
  EXPECT_EQ(r.status, 206) << r.describe();
  EXPECT_TRUE(r.complete) << r.describe();
  EXPECT_EQ(r.bodyLength, last - first + 1);
  EXPECT_EQ(r.bodyHash, rangeHash(kSeed, first, last - first + 1));

  // A suffix range: the end of the object.
  r = fetchGet("/big", o, "Range: bytes=-" + std::to_string(5 * kMiB) + "\r\n");
  EXPECT_EQ(r.status, 206) << r.describe();
  EXPECT_EQ(r.bodyLength, 5 * kMiB);
  EXPECT_EQ(r.bodyHash, rangeHash(kSeed, kSize - 5 * kMiB, 5 * kMiB));

  // Multipart: part headers written between the file bytes keep their place.
  ReadOptions keep;
  keep.keepBodyLimit = 16 * kMiB;
  keep.timeout = 30s;
  r = fetchGet("/big", keep, "Range: bytes=0-99,1048576-9437183\r\n");
  EXPECT_EQ(r.status, 206) << r.describe();
  ASSERT_TRUE(r.complete) << r.describe();
  const std::string part2 = genString(kSeed, 9437184).substr(1048576);
  EXPECT_NE(r.body.find(genString(kSeed, 100)), std::string::npos);
  EXPECT_NE(r.body.find(part2), std::string::npos) << "second part not byte-exact";
  expectPathUsed();
}

TEST_P(LargeSend, SlowReaderWithASmallReceiveBufferGetsEveryByte) {
  storeBig();
  TestClient c(port(), 4096);  // the socket fills at once: the sender waits for it to drain
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(get("/big")));
  ReadOptions o = verify(kSeed, 60s);
  o.readSize = 16 * 1024;
  expectWhole(c.read(o), kSeed, kSize, "slow reader");
  expectPathUsed();
}

TEST_P(LargeSend, FillInProgressFollowersAndLaterHits) {
  // The origin sends 16 MiB at 32 MiB/s: a follower joins mid-fill and reads
  // what has landed (the fill path), a range follower too; later clients hit.
  const uint64_t size = 16 * kMiB + 17;
  Script s = Script::generated(kSeed + 1, size);
  s.bytesPerSecond = 32 * kMiB;
  origin.script("/filling", s);
  auto leader = fetchAsync("/filling", verify(kSeed + 1));
  ASSERT_TRUE(origin.waitForRequests("/filling", 1));
  ASSERT_TRUE(waitFor([&] { return fillsInFlight() >= 1; }));
  auto follower = fetchAsync("/filling", verify(kSeed + 1));
  ReadOptions o;
  o.keepBodyLimit = 0;
  o.timeout = 30s;
  const uint64_t first = 2 * kMiB + 1, last = 14 * kMiB;
  uint16_t p = port();
  auto ranged = std::async(std::launch::async, [p, o, first, last] {
    return fetch(p, get("/filling", "Range: bytes=" + std::to_string(first) + "-" + std::to_string(last) + "\r\n"), o);
  });
  expectWhole(await(leader, 30s), kSeed + 1, size, "leader");
  expectWhole(await(follower, 30s), kSeed + 1, size, "follower");
  Response r = await(ranged, 30s);
  EXPECT_EQ(r.status, 206) << r.describe();
  EXPECT_TRUE(r.complete) << r.describe();
  EXPECT_EQ(r.bodyHash, rangeHash(kSeed + 1, first, last - first + 1));
  EXPECT_EQ(origin.requests("/filling"), 1);
  ASSERT_TRUE(waitFor([&] { return fillsInFlight() == 0; }));
  expectWhole(fetchGet("/filling", verify(kSeed + 1)), kSeed + 1, size, "hit after the fill");
  expectPathUsed();
}

TEST_P(LargeSend, ClientThatStopsReadingIsClosedAtTheSendTimeout) {
  restartServer([](config::Config& c) { c.sendTimeoutMs = 400; });
  storeBig();
  TestClient c(port(), 4096);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(get("/big")));
  EXPECT_TRUE(waitFor([&] { return counters().send_timeouts >= 1; }, 10s));
  EXPECT_TRUE(c.waitClosed(10s));
  // The box still serves everyone else.
  expectWhole(fetchGet("/big", verify(kSeed)), kSeed, kSize, "hit after the timeout");
}

INSTANTIATE_TEST_SUITE_P(Paths, LargeSend,
                         ::testing::Values(FilePath::Sendfile, FilePath::Splice, FilePath::Copy, FilePath::Einval),
                         [](const ::testing::TestParamInfo<FilePath>& i) { return pathName(i.param); });

}  // namespace
}  // namespace orchard::itest
