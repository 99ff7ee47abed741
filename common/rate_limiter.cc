// RateLimiter; see rate_limiter.h.
#include "common/rate_limiter.h"

#include <algorithm>

namespace orchard {
namespace {

// Ten years: a cost larger than this (a huge n at 1 B/s) is clamped, so the
// sums below never overflow.
constexpr int64_t kMaxCostUs = 10ll * 365 * 24 * 3600 * 1'000'000;

int64_t costUs(uint64_t n, uint64_t bytesPerSecond) {
  const unsigned __int128 us = static_cast<unsigned __int128>(n) * 1'000'000u / bytesPerSecond;
  return us > static_cast<unsigned __int128>(kMaxCostUs) ? kMaxCostUs : static_cast<int64_t>(us);
}

int64_t toWaitMs(int64_t aheadUs) { return aheadUs <= 0 ? 0 : (aheadUs + 999) / 1000; }

}  // namespace

RateLimiter::RateLimiter(const Clock& clock, int64_t slackMs)
    : clock_(clock), slackUs_(std::max<int64_t>(0, slackMs) * 1000), paidAtUs_(clock.monotonicMs() * 1000) {}

int64_t RateLimiter::take(uint64_t n, uint64_t bytesPerSecond) {
  const int64_t now = nowUs();
  if (bytesPerSecond == 0) return toWaitMs(paidAtUs_.load(std::memory_order_relaxed) - now - slackUs_);
  const int64_t cost = costUs(n, bytesPerSecond);
  int64_t seen = paidAtUs_.load(std::memory_order_relaxed);
  int64_t next;
  do {
    next = std::max(seen, now) + cost;
  } while (!paidAtUs_.compare_exchange_weak(seen, next, std::memory_order_relaxed));
  return toWaitMs(next - now - slackUs_);
}

int64_t RateLimiter::waitMs() const {
  return toWaitMs(paidAtUs_.load(std::memory_order_relaxed) - nowUs() - slackUs_);
}

}  // namespace orchard
