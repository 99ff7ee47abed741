// RateLimiter (common/rate_limiter.h): a table of takes on a fake clock
// (slack, debt, an idle bucket not saving up, a rate change, no cap), the
// accuracy a reader paused on 50 ms ticks gets (10 MiB at 2 MiB/s in 5 s),
// and concurrent takes losing no byte.
#include "common/rate_limiter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace orchard {
namespace {

constexpr uint64_t kMBps = 1'000'000;  // 1000 bytes cost 1 ms

TEST(RateLimiter, Table) {
  FakeClock clock;
  RateLimiter lim(clock, 20);
  struct Row {
    int64_t advanceMs;  // before the take
    uint64_t n;
    uint64_t rate;
    int64_t wantWait;
    const char* why;
  };
  const Row rows[] = {
      {0, 10'000, kMBps, 0, "10 ms of debt is inside the 20 ms slack"},
      {0, 10'000, kMBps, 0, "20 ms: exactly the slack"},
      {0, 1, kMBps, 1, "one byte past the slack: wait (rounded up to a whole ms)"},
      {5, 0, kMBps, 0, "5 ms later the debt is back inside the slack"},
      {0, 10'000, kMBps, 6, "25.001 ms ahead: 5.001 ms past the slack"},
      {1000, 1000, kMBps, 0, "an idle second saves nothing up: 1 ms of debt from now"},
      {0, 100'000, 10 * kMBps, 0, "a faster rate (reload): 10 ms for 100 kB"},
      {0, 100'000, kMBps, 91, "back to 1 MB/s: 100 ms more, 111 ms ahead"},
      {0, 0, 0, 91, "rate 0 (no cap) accounts nothing and tells the debt"},
      {90, 0, kMBps, 1, "90 ms later: 1 ms to go"},
      {1, 0, kMBps, 0, "paid"},
  };
  for (const Row& r : rows) {
    clock.advanceMs(r.advanceMs);
    EXPECT_EQ(lim.take(r.n, r.rate), r.wantWait) << r.why;
    EXPECT_EQ(lim.waitMs(), r.wantWait) << r.why;
  }
}

TEST(RateLimiter, NoSlackWaitsForEveryByte) {
  FakeClock clock;
  RateLimiter lim(clock, 0);
  EXPECT_EQ(lim.take(1000, kMBps), 1);
  clock.advanceMs(1);
  EXPECT_EQ(lim.waitMs(), 0);
}

TEST(RateLimiter, HugeTakesDoNotOverflow) {
  FakeClock clock;
  RateLimiter lim(clock, 20);
  const int64_t w = lim.take(UINT64_MAX, 1);
  EXPECT_GT(w, 0);
  EXPECT_GT(lim.take(UINT64_MAX, 1), w);  // still growing, still positive
}

// What FillDriver does: write a 64 KiB read, take it, and while the bucket
// is in debt look again every min(wait, 50 ms).
int64_t simulateMs(uint64_t total, uint64_t chunk, uint64_t rate) {
  FakeClock clock;
  RateLimiter lim(clock);
  const int64_t start = clock.monotonicMs();
  for (uint64_t sent = 0; sent < total; sent += chunk) {
    int64_t w = lim.take(std::min(chunk, total - sent), rate);
    while (w > 0) {
      clock.advanceMs(std::min<int64_t>(w, 50));
      w = lim.waitMs();
    }
  }
  return clock.monotonicMs() - start;
}

TEST(RateLimiter, TenMiBAtTwoMiBPerSecondTakesFiveSeconds) {
  const int64_t ms = simulateMs(10ull << 20, 64 << 10, 2ull << 20);
  EXPECT_GE(ms, 4900);
  EXPECT_LE(ms, 5000);
  // Reads of any size come out the same.
  EXPECT_NEAR(simulateMs(10ull << 20, 16 << 10, 2ull << 20), ms, 2);
  EXPECT_NEAR(simulateMs(10ull << 20, 1 << 20, 2ull << 20), ms, 2);
}

TEST(RateLimiter, ConcurrentTakesLoseNothing) {
  FakeClock clock;  // frozen: every byte is debt
  RateLimiter lim(clock, 20);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&lim] {
      for (int i = 0; i < 1000; ++i) lim.take(1000, kMBps);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(lim.waitMs(), 4000 - 20);
}

}  // namespace
}  // namespace orchard
